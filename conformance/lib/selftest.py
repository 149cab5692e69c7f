"""--self-test: prove the suite catches a broken candidate and is quiet on an identical one."""
import copy
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SUBSET = "flask/sync/default/http.*,flask/gthread/hooks/logging.*,django/gthread/default/django.home"


def broken_command():
    return "%s %s" % (sys.executable, os.path.join(HERE, "broken_gunicorn.py"))


def _run(args, **over):
    from .main import run
    a = copy.copy(args)
    a.filter, a.no_cli, a.report, a.dump, a.list = SUBSET, True, None, None, False
    for k, v in over.items():
        setattr(a, k, v)
    rc = run(a, quiet=True)
    return rc, a._outcomes


def run_self_test(args):
    problems = []
    # 1. identical candidate: no differences
    rc, outs = _run(args, candidate=args.baseline)
    if rc != 0 or any(o.diffs for o in outs):
        problems.append("baseline vs itself reported differences")
    # 2. broken candidate: header order and access log differences must be reported
    rc, outs = _run(args, candidate=broken_command())
    fields = {f for o in outs for f, _, _ in o.unexpected}
    if rc == 0:
        problems.append("broken candidate passed")
    if not any(f.endswith("headers") for f in fields):
        problems.append("reordered Server/Date headers not reported")
    if "access_log" not in fields:
        problems.append("corrupted access log not reported")
    # 3. blessing works, and a stale entry fails the run
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write('[[difference]]\ncase = "*"\nfield = "*headers"\nreason = "self-test: header order"\n'
                '[[difference]]\ncase = "*"\nfield = "access_log"\nreason = "self-test: access log"\n')
        blessed = f.name
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write('[[difference]]\ncase = "flask/sync/default/http.get_close"\nfield = "resp0.body"\nreason = "never happens"\n')
        stale = f.name
    try:
        rc, outs = _run(args, candidate=broken_command(), known=blessed)
        if rc != 0:
            problems.append("blessed differences still fail: %s" % sorted({f for o in outs for f, _, _ in o.unexpected}))
        rc, outs = _run(args, candidate=args.baseline, known=stale)
        if rc == 0:
            problems.append("stale known difference did not fail the run")
    finally:
        os.unlink(blessed)
        os.unlink(stale)
    for p in problems:
        print("SELF-TEST FAILURE: %s" % p)
    print("self-test %s" % ("passed" if not problems else "FAILED"))
    return 1 if problems else 0
