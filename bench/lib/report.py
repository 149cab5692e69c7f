"""Markdown report from results.jsonl: medians over rounds, ratios to gunicorn sync and granian
measured in the same round, the S9/S10/S11 tables and issue 6's targets."""
import json
import statistics
from collections import OrderedDict, defaultdict

from .scenarios import GROUPS
from .servers import BASELINE, GRANIAN

ORDER = [s.key for g in GROUPS for s in g.scenarios]
TITLES = {s.key: s.title for g in GROUPS for s in g.scenarios}


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, nd=0):
    if x is None:
        return "-"
    return f"{x:,.{nd}f}"


class Table:
    def __init__(self, recs):
        self.recs = recs
        self.by = defaultdict(list)  # (scenario, server) -> records with numbers
        self.err = defaultdict(list)
        self.mem = defaultdict(list)  # (group, server) -> S11 records
        self.servers = OrderedDict()
        for r in recs:
            if r.get("sid") == "S11":
                self.mem[(r["group"], r["server"])].append(r)
                continue
            self.servers.setdefault(r["server"], None)
            if r.get("error") or r.get("skipped") or r.get("rps") is None:
                self.err[(r["scenario"], r["server"])].append(r.get("error") or r.get("skipped")
                                                             or r.get("stderr") or "no result")
                continue
            self.by[(r["scenario"], r["server"])].append(r)

    def use(self, sc, srv):
        """Records for a cell: the clean ones if any, else all (then the cell is marked noisy)."""
        rs = self.by.get((sc, srv), [])
        clean = [r for r in rs if not r.get("noisy")]
        return (clean, False) if clean else (rs, bool(rs))

    def value(self, sc, srv, field="rps"):
        rs, _ = self.use(sc, srv)
        return med([r.get(field) for r in rs])

    def ratio(self, sc, srv, base):
        """Median over rounds of srv/base in the same round (base median if no same round)."""
        rs, _ = self.use(sc, srv)
        bs, _ = self.use(sc, base)
        if not rs or not bs:
            return None
        field = "rps"  # same request in both, so the req/s ratio is also the GB/s ratio
        per = []
        for r in rs:
            same = [b for b in bs if b["round"] == r["round"]]
            if same and same[0].get(field):
                per.append(r[field] / same[0][field])
        if per:
            return med(per)
        bm = med([b.get(field) for b in bs])
        return med([r.get(field) for r in rs]) / bm if bm else None


def scenario_table(t, sc, lines):
    rows = [s for s in t.servers if (sc, s) in t.by or (sc, s) in t.err]
    if not rows:
        return
    gb = any(r.get("gbps") for s in rows for r in t.by.get((sc, s), []))
    lines.append(f"\n### {sc}: {TITLES.get(sc, '')}\n")
    head = "| server | req/s |" + (" GB/s |" if gb else "") + \
        " CPU µs/req | p50 ms | p99 ms | errors | PSS MB | × gunicorn | × granian | rounds (clean/all) |"
    lines.append(head)
    lines.append("|" + "---|" * (head.count("|") - 1))
    for s in rows:
        rs, noisy = t.use(sc, s)
        if not rs:
            why = "; ".join(sorted(set(" ".join(str(e).split()) for e in t.err[(sc, s)])))[:150]
            lines.append(f"| {s} | failed: {why} |")
            continue
        alln = len(t.by[(sc, s)])
        cells = [s + (" ~noisy" if noisy else ""), fmt(t.value(sc, s))]
        if gb:
            cells.append(fmt(t.value(sc, s, "gbps"), 2))
        errs = med([r.get("errors") for r in rs])
        cells += [fmt(t.value(sc, s, "cpu_us_per_req"), 1), fmt(t.value(sc, s, "p50"), 2),
                  fmt(t.value(sc, s, "p99"), 2), fmt(errs), fmt(t.value(sc, s, "pss_mb"), 1),
                  fmt(t.ratio(sc, s, BASELINE), 2), fmt(t.ratio(sc, s, GRANIAN), 2),
                  f"{len([r for r in rs if not r.get('noisy')])}/{alln}"]
        lines.append("| " + " | ".join(cells) + " |")
    if any(t.err.get((sc, s)) for s in rows):
        for s in rows:
            if t.err.get((sc, s)) and t.by.get((sc, s)):
                lines.append(f"\n{s}: some rounds failed: {t.err[(sc, s)][0][:150]}")


def idle_table(t, lines):
    sc = "S9-hello-idle1000"
    rows = [s for s in t.servers if (sc, s) in t.by or (sc, s) in t.err]
    if not rows:
        return
    lines.append(f"\n### {sc}: {TITLES[sc]}\n")
    lines.append("| server | req/s with 1,000 idle | × own S2 (no idle) | errors | idle conns open (min) | "
                 "after a request (min) | never sent (min) | reopened | connect failed | "
                 "threads before → with idle → under load |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for s in rows:
        rs, noisy = t.use(sc, s)
        if not rs:
            lines.append(f"| {s} | failed: {t.err[(sc, s)][0][:120]} |")
            continue
        s2 = t.value("S2-hello-ka", s)
        rps = t.value(sc, s)
        idle = [r.get("idle") or {} for r in rs]
        lines.append(f"| {s}{' ~noisy' if noisy else ''} | {fmt(rps)} | {fmt(rps / s2 if s2 else None, 2)} | "
                     f"{fmt(med([r.get('errors') for r in rs]))} | {fmt(med([i.get('open_min') for i in idle]))} | "
                     f"{fmt(med([i.get('open_min_req') for i in idle]))} | "
                     f"{fmt(med([i.get('open_min_silent') for i in idle]))} | "
                     f"{fmt(med([i.get('reopened') for i in idle]))} | {fmt(med([i.get('connect_failed') for i in idle]))} | "
                     f"{fmt(med([r.get('threads_before') for r in rs]))} → {fmt(med([r.get('threads_idle') for r in rs]))}"
                     f" → {fmt(med([r.get('threads_during') for r in rs]))} |")


def rate_table(t, lines):
    for sc in ("S10-rate-low", "S10-rate-high"):
        rows = [s for s in t.servers if (sc, s) in t.by or (sc, s) in t.err]
        if not rows:
            continue
        lines.append(f"\n### {sc}: {TITLES[sc]}\n")
        lines.append("| server | target req/s | achieved req/s | p50 ms | p99 ms | p99.9 ms | errors | CPU µs/req | tool |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---|")
        for s in rows:
            rs, noisy = t.use(sc, s)
            if not rs:
                lines.append(f"| {s} | {t.err[(sc, s)][0][:120]} |")
                continue
            lines.append(f"| {s}{' ~noisy' if noisy else ''} | {fmt(t.value(sc, s, 'target_rate'))} | {fmt(t.value(sc, s))} | "
                         f"{fmt(t.value(sc, s, 'p50'), 2)} | {fmt(t.value(sc, s, 'p99'), 2)} | "
                         f"{fmt(t.value(sc, s, 'p999'), 2)} | {fmt(t.value(sc, s, 'errors'))} | "
                         f"{fmt(t.value(sc, s, 'cpu_us_per_req'), 1)} | {rs[0].get('tool')} |")


def memory_table(t, lines):
    groups = [g for g in ("hello", "flask", "django", "hello-pinned") if any(k[0] == g for k in t.mem)]
    if not groups:
        return
    lines.append("\n### S11: memory, PSS MB summed over master + workers (after warm-up → after the load)\n")
    lines.append("| server | " + " | ".join(groups) + " | processes (hello) | per-process PSS after load (hello) |")
    lines.append("|---|" + "---:|" * len(groups) + "---:|---|")
    for s in t.servers:
        cells = []
        for g in groups:
            ms = t.mem.get((g, s), [])
            cells.append(f"{fmt(med([m.get('pss_mb') for m in ms]), 1)} → {fmt(med([m.get('pss_after_mb') for m in ms]), 1)}"
                         if ms else "-")
        if all(c == "-" for c in cells):
            continue
        h = t.mem.get(("hello", s), [])
        lines.append(f"| {s} | " + " | ".join(cells) + f" | {h[0].get('nproc') if h else '-'} | "
                     f"{h[-1].get('pss_after_per_proc') if h else '-'} |")


def targets(t, lines):
    """Issue 6's targets, evaluated on whatever this run measured."""
    out = []

    def rat(sc, a, b, goal, what):
        r = t.ratio(sc, a, b)
        if r is None:
            out.append(f"| {what} | ≥ {goal}× | n/a (not measured) | - |")
        else:
            out.append(f"| {what} | ≥ {goal}× | {r:.2f}× | {'**met**' if r >= goal else 'missed'} |")

    rat("S2-hello-ka", "rgun-gt1", GRANIAN, 1.8, "hello keep-alive, gthread 1 vs granian (S2)")
    rat("S2-hello-ka", "rgun-gt1", "bjoern", 1.0, "hello keep-alive, gthread 1 vs bjoern (S2)")
    rat("S2-hello-ka", "rgun-gt1", "hyper", 0.8, "hello keep-alive, gthread 1 vs hyper (S2)")
    rat("S2-hello-ka", "rgun-gt4", GRANIAN, 1.5, "hello keep-alive, gthread 4 vs granian (S2)")
    rat("S3-hello-close", "rgun-sync", "uwsgi", 1.0, "hello `Connection: close`, sync vs uWSGI (S3)")
    rat("S4-flask-ka", "rgun-gt1", GRANIAN, 2.2, "Flask keep-alive, gthread 1 vs granian default (S4)")
    rat("S4-flask-ka", "rgun-gt1", "bjoern", 1.0, "Flask keep-alive, gthread 1 vs bjoern (S4)")
    rat("S4-flask-close", "rgun-sync", "uwsgi", 1.0, "Flask close, sync vs uWSGI (S4)")
    for sc in ("S2-hello-ka", "S1-hello-pinned"):
        v = t.value(sc, "rgun-gt1", "cpu_us_per_req")
        out.append(f"| server CPU per hello request, gthread 1 ({sc[:2]}) | ≤ 10 µs | {fmt(v, 1)} µs | "
                   f"{'-' if v is None else ('**met**' if v <= 10 else 'missed')} |")
    a, b = t.value("S2-hello-ka", "rgun-gt1", "p99"), t.value("S2-hello-ka", GRANIAN, "p99")
    out.append(f"| p99 at 64 conns, gthread 1 vs granian (S2) | ≤ granian | {fmt(a, 2)} vs {fmt(b, 2)} ms | "
               f"{'-' if a is None or b is None else ('**met**' if a <= b else 'missed')} |")
    for g in ("hello", "flask"):
        for srv in ("rgun-gt1", "rgun-sync"):
            a = med([m.get("pss_mb") for m in t.mem.get((g, srv), [])])
            b = med([m.get("pss_mb") for m in t.mem.get((g, BASELINE), [])])
            if a is None and b is None:
                continue
            out.append(f"| PSS {g}, {srv} vs gunicorn sync (S11) | ≤ gunicorn | {fmt(a, 1)} vs {fmt(b, 1)} MB | "
                       f"{'-' if a is None or b is None else ('**met**' if a <= b else 'missed')} |")
    for srv in ("rgun-gt1", "rgun-gt4", "rgun-sync"):
        rs, _ = t.use("S9-hello-idle1000", srv)
        if not rs:
            continue
        r = rs[0]
        thr = (r.get("threads_before"), r.get("threads_idle"), r.get("threads_during"))
        s2 = t.value("S2-hello-ka", srv)
        keep = t.value("S9-hello-idle1000", srv) / s2 if s2 else None
        idle = r.get("idle") or {}
        # Held open: the half that never sends, and the kept-alive half where the worker keeps
        # alive (a sync worker closes after every response, as gunicorn's does).
        held = (idle.get("open_min_silent") or 0) >= 450 and (
            srv == "rgun-sync" or (idle.get("open_min_req") or 0) >= 450)
        ok = thr[0] == thr[1] and (keep or 0) >= 0.8 and held
        out.append(f"| 1,000 idle conns cost no worker/thread, {srv} (S9) | threads unchanged, req/s kept, "
                   f"idle held | threads {thr[0]}→{thr[1]}, req/s {fmt(keep, 2)}× S2, min open "
                   f"{idle.get('open_min')} ({idle.get('open_min_req')} kept alive, "
                   f"{idle.get('open_min_silent')} never sent) | {'**met**' if ok else 'missed'} |")
    for sc, what in (("S5-download-10m-c1", "10 MB download, 1 conn"), ("S7-upload-20m-c1", "20 MB upload, 1 conn")):
        v = t.value(sc, "rgun-gt1", "gbps")
        out.append(f"| {what}, gthread 1 | ≥ 1 GB/s | {fmt(v, 2)} GB/s | "
                   f"{'-' if v is None else ('**met**' if v >= 1 else 'missed')} |")
    lines.append("\n### Issue 6 targets (rgun)\n")
    lines.append("| target | goal | measured | status |")
    lines.append("|---|---|---|---|")
    lines += out


def render(path, meta=None):
    t = Table(load(path))
    lines = []
    if meta:
        lines.append(meta)
    targets(t, lines)
    for sc in ORDER:
        if sc.startswith("S9"):
            idle_table(t, lines)
        elif sc.startswith("S10"):
            if sc == "S10-rate-low":
                rate_table(t, lines)
        else:
            scenario_table(t, sc, lines)
    memory_table(t, lines)
    lines.append("\nColumns: medians over rounds (noisy rounds, foreign CPU above the limit, are left out "
                 "when a clean one exists; `~noisy` marks a cell made only of noisy rounds). "
                 "× gunicorn / × granian: median over rounds of the ratio to gunicorn-sync / granian "
                 "(default pool) in the same round and scenario. CPU µs/req: user+system CPU of every "
                 "server process during the window ÷ requests. PSS: master + workers after warm-up. "
                 "errors: wrk socket errors + non-2xx (uWSGI `--http-socket` closes without "
                 "`Connection: close`, so wrk counts a read error per request there).")
    return "\n".join(lines) + "\n"
