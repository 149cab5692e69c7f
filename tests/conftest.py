"""Fixtures: `spawn` (function scope) and `module_spawn` (module scope) start servers and always stop them."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from support import GUNICORN, RGUN, Server  # noqa: E402

# test_config_cli.py finds the binaries through these (or PATH); point them at the venv's.
os.environ.setdefault("RGUN", RGUN)
os.environ.setdefault("GUNICORN", GUNICORN)


class _Spawner:
    def __init__(self, tmpdir):
        self.tmpdir = tmpdir
        self.servers = []

    def __call__(self, args, start=True, **kw):
        kw.setdefault("tmpdir", self.tmpdir)
        srv = Server(args, **kw)
        self.servers.append(srv)
        if start:
            srv.start()
        return srv

    def stop_all(self):
        errors = []
        for s in reversed(self.servers):
            try:
                s.stop()
            except Exception as e:  # keep stopping the others
                errors.append(e)
        if errors:
            raise errors[0]


@pytest.fixture
def spawn(tmp_path):
    sp = _Spawner(tmp_path)
    try:
        yield sp
    finally:
        sp.stop_all()


@pytest.fixture(scope="module")
def module_spawn(tmp_path_factory):
    sp = _Spawner(tmp_path_factory.mktemp("srv"))
    try:
        yield sp
    finally:
        sp.stop_all()
