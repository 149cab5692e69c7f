#!/usr/bin/env python3
"""Record the standard-library modules gunicorn's master has imported when it forks a worker,
into compat/master_modules.txt.

Run with a Python that has gunicorn installed (the version in compat/gunicorn-version):

    /path/to/python compat/extract_master_modules.py

It starts gunicorn on a loopback port with a hello app and a `post_fork` hook that writes
`sys.modules` as the new worker sees it (what it inherited from the master), keeps the modules
of the standard library, and stops gunicorn. rgun's master imports the same modules before it
forks (`src/python/shared_modules.rs`), so workers inherit them as gunicorn's do.
"""

import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))

CONFIG = """
import os, sys
bind = "127.0.0.1:0"
workers = 1
def post_fork(server, worker):
    with open(os.environ["RGUN_MODULES_OUT"] + ".tmp", "w") as f:
        f.write("\\n".join(sorted(sys.modules)))
    os.rename(os.environ["RGUN_MODULES_OUT"] + ".tmp", os.environ["RGUN_MODULES_OUT"])
"""

APP = "def app(environ, start_response):\n    start_response('200 OK', [])\n    return [b'']\n"


def main():
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "conf.py"), "w") as f:
            f.write(CONFIG)
        with open(os.path.join(tmp, "hello.py"), "w") as f:
            f.write(APP)
        out = os.path.join(tmp, "modules.txt")
        env = dict(os.environ, RGUN_MODULES_OUT=out)
        gunicorn = os.path.join(os.path.dirname(sys.executable), "gunicorn")
        proc = subprocess.Popen([gunicorn, "-c", "conf.py", "hello:app"],
                                cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while not os.path.exists(out):
                if time.monotonic() > deadline or proc.poll() is not None:
                    sys.exit("gunicorn did not fork a worker")
                time.sleep(0.05)
        finally:
            proc.terminate()
            proc.wait(10)
        with open(out) as f:
            names = f.read().split()
    std = [n for n in names if n.split(".")[0] in sys.stdlib_module_names and n != "__main__"]
    import gunicorn

    with open(os.path.join(HERE, "master_modules.txt"), "w") as f:
        f.write("# The standard-library modules gunicorn %s's master has imported when it forks a\n"
                "# worker (Python %d.%d), by compat/extract_master_modules.py. One per line.\n"
                % (gunicorn.__version__, *sys.version_info[:2]))
        f.write("\n".join(std) + "\n")
    print("%d modules" % len(std))


if __name__ == "__main__":
    main()
