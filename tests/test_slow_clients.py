"""Slow clients must not starve normal ones: a short run of `tests/slowloris.py` (200
connections dribbling request heads one byte every 0.5 s for 6 s) against rgun `-w 2`,
sync and gthread, while a prober sends a normal request every 0.25 s. Every probe must be
answered within 1 s. (gunicorn 27's sync worker fails this by design: a slow client holds
a whole worker while it reads the head.) The full-size run (500 connections x 20 s) is
`python tests/slowloris.py 127.0.0.1:PORT`.
"""

import pytest

import slowloris


@pytest.mark.parametrize("worker", ["sync", "gthread"])
def test_probes_answered_under_slowloris(spawn, worker):
    srv = spawn(["-w", "2", "-k", worker, "hello:app"], workers=2, name=f"slow-{worker}")
    res = slowloris.run(srv.address, conns=200, seconds=6.0, byte_interval=0.5,
                        probe_interval=0.25, deadline=1.0, probe_timeout=3.0)
    s = res.summary()
    assert s["slow_opened"] >= 200 and s["slow_connect_failures"] == 0, s
    # The slow clients were still connected (not just dropped to make room).
    assert s["slow_closed_by_server"] == 0, s
    assert s["probes"] >= 20, s
    assert res.ok, s
