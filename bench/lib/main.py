"""bench/run's Python side: parse options, run the rounds, write results.jsonl and report.md.

Usage (through bench/run, which prepares the venv, wrk and hyper-hello first):
  bench/run [--quick] [--scenarios S1,S2,...] [--servers a,b,...] [--rounds N]
            [--duration S] [--short-duration S] [--warmup S] [--port P] [--out DIR]
  bench/run --report bench/out/<stamp>/results.jsonl     # re-render a report
  bench/run --list                                       # scenarios and servers
"""
import argparse
import datetime
import os
import platform
import shutil
import signal
import subprocess
import sys

from . import procs, report, scenarios, servers
from .runner import Runner


def parse(argv):
    ap = argparse.ArgumentParser(prog="bench/run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 1 round, 3 s measurements, S2/S3/S4 flask/S5 10 MB/S7 20 MB, fewer servers")
    ap.add_argument("--scenarios", help="comma list of S1..S11 or scenario keys (default: all)")
    ap.add_argument("--servers", help="comma list of server names (default: all; see --list)")
    ap.add_argument("--rounds", type=int, help="rounds (default 3; --quick: 1)")
    ap.add_argument("--duration", type=float, help="seconds per headline measurement (default 10; quick 3)")
    ap.add_argument("--short-duration", type=float, help="seconds per secondary measurement (default 5; quick 3)")
    ap.add_argument("--warmup", type=float, help="warm-up seconds per server start (default 3; quick 1)")
    ap.add_argument("--port", type=int, default=18765)
    ap.add_argument("--foreign-max", type=float, default=15.0, help="%% of one core used by other processes "
                    "above which a window is flagged noisy (default 15)")
    ap.add_argument("--rate-tool", choices=("auto", "oha", "fixed-rate"), default="auto",
                    help="S10 client: oha -q if installed (auto), else bench's own fixed-rate client")
    ap.add_argument("--max-minutes", type=float, help="hard bound on the whole run (default 80; quick 6)")
    ap.add_argument("--out", help="output directory (default bench/out/<timestamp>)")
    ap.add_argument("--report", help="only render the report of an existing results.jsonl")
    ap.add_argument("--list", action="store_true")
    o = ap.parse_args(argv)
    q = o.quick
    o.rounds = o.rounds or (1 if q else 3)
    o.duration = o.duration or (3 if q else 10)
    o.short_duration = o.short_duration or (3 if q else 5)
    o.warmup = o.warmup if o.warmup is not None else (1 if q else 3)
    o.max_minutes = o.max_minutes or (6 if q else 80)
    return o


def select(o):
    want = set(o.scenarios.split(",")) if o.scenarios else None
    srv = set(o.servers.split(",")) if o.servers else None
    if srv:
        unknown = srv - set(servers.SERVERS)
        if unknown:
            sys.exit(f"unknown servers: {', '.join(sorted(unknown))} (see --list)")
    groups, gservers = {}, {}
    for g in scenarios.GROUPS:
        scs = [s for s in g.scenarios
               if (want is None and (not o.quick or s.quick)) or (want and (s.sid in want or s.key in want))]
        # S11 is measured in every start; asking for S11 alone runs the hello and flask starts' S2/S4
        if want and "S11" in want and not scs and g.key in ("hello", "flask"):
            scs = g.scenarios[:1]
        if not scs:
            continue
        names = g.servers
        if o.quick and not o.servers:
            names = scenarios.QUICK_GROUP_SERVERS.get(g.key, tuple(x for x in names if x in scenarios.QUICK_SERVERS))
        names = tuple(x for x in names if srv is None or x in srv)
        if names:
            groups[g.key], gservers[g.key] = scs, names
    return groups, gservers


def machine():
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    wrkv = (wrk.stdout + wrk.stderr).split("[")[0].strip()
    return (f"{os.cpu_count()} vCPU ({cpu}), {mem:.0f} GiB RAM, Linux {platform.release()}, "
            f"Python {platform.python_version()}, {wrkv}")


def main(argv=None):
    o = parse(argv if argv is not None else sys.argv[1:])
    if o.list:
        for g in scenarios.GROUPS:
            print(f"group {g.key}: app {g.module}, {g.workers} worker(s){', pinned' if g.pin else ''}"
                  f"{f', {g.threads} threads' if g.threads else ''}; servers: {', '.join(g.servers)}")
            for s in g.scenarios:
                print(f"  {s.sid:4} {s.key:22} {s.title}{'  [quick]' if s.quick else ''}")
        print("  S11  (memory: PSS after warm-up and after load, in every start)")
        for k, (_, d) in servers.SERVERS.items():
            print(f"server {k:17} {d}")
        return 0
    if o.report:
        print(report.render(o.report))
        return 0
    if not os.access(servers.RGUN, os.X_OK):
        sys.exit(f"rgun not found at {servers.RGUN}: run `bash scripts/setup` (or set RGUN=...)")
    groups, gservers = select(o)
    if not groups:
        sys.exit("nothing selected")
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = o.out or os.path.join(servers.BENCH, "out", stamp + ("-quick" if o.quick else ""))
    os.makedirs(out, exist_ok=True)
    cmdline = "bench/run " + " ".join(argv if argv is not None else sys.argv[1:])
    meta = (f"Run {stamp} — `{cmdline}` — {machine()} — rounds {o.rounds}, {o.duration:g} s headline / "
            f"{o.short_duration:g} s secondary measurements, {o.warmup:g} s warm-up — S10 client: "
            f"{'oha' if o.rate_tool == 'oha' or (o.rate_tool == 'auto' and shutil.which('oha')) else 'bench fixed-rate (Rust, open loop)'}\n")
    print(meta)
    for g, scs in groups.items():
        print(f"  {g}: {', '.join(s.key for s in scs)} × {', '.join(gservers[g])}")
    r = Runner(o, out)
    meta += f"rgun: {r.rgun_id}\n"
    print(f"rgun: {r.rgun_id}")

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    try:
        r.run(groups, gservers, o.rounds)
    except KeyboardInterrupt as e:
        print(f"interrupted: {e}")
    finally:
        procs.stop_all()
    if not os.path.exists(r.results):
        print("no results")
        return 1
    md = report.render(r.results, meta)
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write(md)
    print("\n" + md)
    print(f"results: {r.results}\nreport: {os.path.join(out, 'report.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
