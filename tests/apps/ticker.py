"""An app with a Python thread of its own (a metrics exporter, an error reporter's sender),
started when the app is imported: `/ticks` says how often it has run. It must keep running
while the worker waits for requests and while it serves them."""

import threading
import time

TICKS = 0


def _tick():
    global TICKS
    while True:
        time.sleep(0.005)
        TICKS += 1


threading.Thread(target=_tick, name="ticker", daemon=True).start()


def app(environ, start_response):
    body = str(TICKS).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
