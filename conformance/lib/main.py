"""Command-line entry point for conformance/run."""
import argparse
import fnmatch
import os
import shutil
import subprocess
import sys
import tempfile
import time

from . import known as known_mod
from . import report
from .matrix import APPS, ROOT, build

HERE = os.path.dirname(os.path.abspath(__file__))


def _default(name):
    return os.path.join(os.path.dirname(sys.executable), name)


def _matches(pattern, case_id):
    if not pattern:
        return True
    pats = [p for p in pattern.split(",") if p]
    return any(fnmatch.fnmatchcase(case_id, p) if any(ch in p for ch in "*?[") else p in case_id for p in pats)


def migrate(db_path):
    env = dict(os.environ, CONFORMANCE_DB=db_path, DJANGO_SETTINGS_MODULE="confsite.settings")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0", "--no-input"], cwd=APPS["django"]["cwd"],
                   env=env, check=True, timeout=300)


def parse_args(argv):
    p = argparse.ArgumentParser(prog="conformance/run", description="Differential conformance suite: baseline vs candidate server.")
    p.add_argument("--baseline", default=_default("gunicorn"), help="baseline command (default: gunicorn next to python)")
    p.add_argument("--candidate", default=_default("rgun"), help="candidate command (default: rgun next to python)")
    p.add_argument("--report", help="write a Markdown report to FILE")
    p.add_argument("--filter", help="only case ids containing this (comma-separated; globs allowed)")
    p.add_argument("--known", default=os.path.join(ROOT, "known_differences.toml"))
    p.add_argument("--jobs", type=int, default=2, help="matrix setups run in parallel (default 2)")
    p.add_argument("--no-cli", action="store_true", help="skip --print-config/--check-config/startup-error cases")
    p.add_argument("--list", action="store_true", help="list case ids and exit")
    p.add_argument("--self-test", action="store_true", help="prove that a deliberately broken candidate fails")
    p.add_argument("--keep-tmp", action="store_true")
    p.add_argument("--dump", metavar="FILE", help="write every normalised observation (both sides) as JSON")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.self_test:
        from .selftest import run_self_test
        return run_self_test(args)
    return run(args)


def run(args, quiet=False):
    from .cases import all_cases
    from .cli import CLI_CASES, run_cli_cases
    from .engine import run_matrix

    t0 = time.monotonic()
    commands = {"baseline": args.baseline, "candidate": args.candidate}
    cases = all_cases()
    tmproot = tempfile.mkdtemp(prefix="conformance-")
    setups = build(os.path.join(tmproot, "db.sqlite3"))
    plan = {}
    for s in setups:
        todo = [c for c in cases if c.applies(s) and _matches(args.filter, c.case_id(s))]
        lifecycle = [x for x in ("startup", "shutdown", "hooks") if _matches(args.filter, "%s/lifecycle.%s" % (s.name, x))]
        if todo or (lifecycle and not args.filter):
            plan[s.name] = (s, todo)
    cli = [] if args.no_cli else [c for c in CLI_CASES if _matches(args.filter, c.case_id)]
    if args.list:
        for s, todo in plan.values():
            for c in todo:
                print(c.case_id(s))
        for c in cli:
            print(c.case_id)
        return 0
    for cmd in commands.values():
        exe = cmd.split()[0]
        if not shutil.which(exe):
            print("error: command not found: %s" % exe, file=sys.stderr)
            return 2
    total = sum(len(t) for _, t in plan.values())
    done = [0]

    def progress():
        done[0] += 1
        if not quiet and (done[0] % 50 == 0 or done[0] == total):
            print("  ... %d/%d server cases" % (done[0], total), file=sys.stderr, flush=True)

    try:
        if any(s.app == "django" for s, _ in plan.values()) or cli:
            migrate(os.path.join(tmproot, "db.sqlite3"))
        outcomes = []
        if plan:
            outcomes += _run_plan(plan, commands, tmproot, args.jobs, progress)
        if cli:
            outcomes += run_cli_cases(cli, commands, tmproot)
    finally:
        if not args.keep_tmp:
            shutil.rmtree(tmproot, ignore_errors=True)
    known = known_mod.Known.load(args.known)
    for o in outcomes:
        known.note_case(o.case_id)
        for field, b, c in o.diffs:
            entry = known.match(o.case_id, field)
            if entry:
                o.known.append((field, entry))
            else:
                o.unexpected.append((field, b, c))
    stale = known.stale()
    failed_cases = [o for o in outcomes if o.unexpected]
    passed = len(outcomes) - len(failed_cases)
    failed = len(failed_cases) + len(stale)
    elapsed = time.monotonic() - t0
    if not quiet:
        for o in failed_cases:
            print("FAIL %s: %s" % (o.case_id, ", ".join(f for f, _, _ in o.unexpected)))
            for field, b, c in o.unexpected:
                print("  %s\n    baseline:  %s\n    candidate: %s" % (field, _short(b), _short(c)))
        for e in stale:
            print("STALE known difference %s [%s]: no longer occurs" % (e["case"], e["field"]))
    if getattr(args, "dump", None):
        import json
        with open(args.dump, "w", encoding="utf-8") as f:
            json.dump([{"case": o.case_id, "diffs": [d[0] for d in o.diffs], "baseline": o.base, "candidate": o.cand}
                       for o in outcomes], f, indent=1, ensure_ascii=False, default=str)
    if args.report:
        report.write(args.report, outcomes, stale, commands, elapsed, passed, failed)
    args._outcomes = outcomes
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


def _short(value, limit=300):
    """One line of a compared value, cut at `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "... (%d chars)" % len(text)


def _run_plan(plan, commands, tmproot, jobs, progress):
    from .engine import run_setup
    from concurrent.futures import ThreadPoolExecutor
    import traceback
    from .engine import Outcome

    def one(item):
        s, todo = item
        try:
            return run_setup(s, todo, commands, tmproot, progress)
        except Exception:
            return [Outcome("%s/lifecycle.runner" % s.name, "lifecycle", s.name,
                            [("runner_exception", traceback.format_exc(), "")])]

    out = []
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        for res in pool.map(one, plan.values()):
            out.extend(res)
    return out
