"""bjoern has no process manager: bind once, then fork N single-threaded workers.

Usage: python run_bjoern.py MODULE PORT WORKERS
"""
import importlib
import os
import signal
import sys

import bjoern

mod, port, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
app = importlib.import_module(mod).app
sock = bjoern.bind_and_listen("127.0.0.1", port)
kids = []
for _ in range(workers):
    pid = os.fork()
    if pid == 0:
        bjoern.server_run(sock, app)
        os._exit(0)
    kids.append(pid)


def stop(*_):
    for k in kids:
        try:
            os.kill(k, signal.SIGKILL)
        except ProcessLookupError:
            pass
    os._exit(0)


signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
for _ in kids:
    os.wait()
