"""pytest entry point: the suite must flag a deliberately broken candidate.

Run: python -m pytest conformance/test_runner.py
"""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def _gunicorn():
    return os.path.join(os.path.dirname(sys.executable), "gunicorn")


def test_self_test_detects_broken_candidate():
    proc = subprocess.run([sys.executable, os.path.join(HERE, "run"), "--self-test", "--baseline", _gunicorn()],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "self-test passed"


def test_broken_candidate_run_fails_with_summary_line():
    broken = "%s %s" % (sys.executable, os.path.join(HERE, "lib", "broken_gunicorn.py"))
    proc = subprocess.run([sys.executable, os.path.join(HERE, "run"), "--baseline", _gunicorn(), "--candidate", broken,
                           "--filter", "flask/sync/default/http.get_close", "--no-cli"],
                          capture_output=True, text=True, timeout=600)
    last = proc.stdout.strip().splitlines()[-1]
    assert proc.returncode == 1
    assert last.endswith(" failed") and not last.endswith(" 0 failed"), last
    assert "resp0.headers" in proc.stdout and "access_log" in proc.stdout
    # Each unexpected difference shows both sides' values.
    assert "    baseline:  " in proc.stdout and "    candidate: " in proc.stdout
