"""The run loop: rounds x groups x servers, one server start per (round, group, server)."""
import json
import os
import subprocess
import sys
import time

from . import check as checkmod
from . import loadgen, procs, servers
from .scenarios import GROUPS, QUICK_SKIP

THREADED = {"rgun-gt1": "rgun-gthread", "rgun-gt4": "rgun-gthread", "gunicorn-gthread": "gunicorn-gthread",
            "uwsgi": "uwsgi-threads"}
FALLBACK_RATE = {"low": 3500, "high": 45000}


def rgun_identity():
    """rgun's version and the repo's commit (+dirty) at the start of the run."""
    try:
        v = subprocess.run([servers.RGUN, "--version"], capture_output=True, text=True, timeout=20)
        ver = (v.stdout or v.stderr).strip().splitlines()[0]
    except Exception:  # noqa: BLE001
        ver = "?"
    try:
        g = subprocess.run(["git", "-C", servers.REPO, "describe", "--always", "--dirty"], capture_output=True,
                           text=True, timeout=20).stdout.strip()
    except Exception:  # noqa: BLE001
        g = "?"
    return f"{ver} ({servers.RGUN}; repo {g})"


def label(server, group):
    if group.threads and server in THREADED:
        return f"{THREADED[server]}{group.threads}"
    return server


class Runner:
    def __init__(self, opts, out_dir):
        self.o = opts
        self.out = out_dir
        self.results = os.path.join(out_dir, "results.jsonl")
        self.deadline = time.time() + opts.max_minutes * 60
        self.s2 = {}  # server -> list of S2 req/s (for the S10 rates)
        os.makedirs(os.path.join(out_dir, "logs"), exist_ok=True)
        self.rgun_id = rgun_identity()

    # ---- bookkeeping -------------------------------------------------------------------
    def emit(self, rec):
        rec["ts"] = time.time()
        with open(self.results, "a") as f:
            f.write(json.dumps(rec) + "\n")

    def say(self, msg):
        print(msg, flush=True)

    def dur(self, sc):
        return self.o.duration if sc.dur == "main" else self.o.short_duration

    # ---- server start ------------------------------------------------------------------
    def start(self, server, group, first_check):
        port = self.o.port
        if procs.port_open(port):
            raise RuntimeError(f"port {port} busy before starting {server}")
        argv, env = servers.spec(server, group.module, port, group.workers,
                                 threads=group.threads if server in THREADED else None,
                                 pin_cpu=0 if group.pin else None, keep_alive=group.keep_alive)
        log = os.path.join(self.out, "logs", f"{group.key}-{server}.log")
        p = procs.start(argv, servers.APPS, env, log)
        t0 = time.time()
        err = "did not open the port"
        while time.time() - t0 < 30:
            if p.poll() is not None:
                raise RuntimeError(f"{server} exited with {p.returncode} (log: {log})")
            if procs.port_open(port):
                err = checkmod.check(port, first_check)
                if err is None:
                    break
            time.sleep(0.1)
        else:
            procs.stop(p, port)
            raise RuntimeError(f"{server} not ready after 30 s: {err}")
        ready = time.time() - t0
        # let every worker boot: wait until the process count is stable for 0.5 s (at most 8 s)
        n, since, t1 = -1, time.time(), time.time()
        while time.time() - t1 < 8:
            k = len(procs.tree(p.pid))
            if k != n:
                n, since = k, time.time()
            elif time.time() - since >= 0.5:
                break
            time.sleep(0.2)
        return p, ready, " ".join(argv)

    def _script(self, sc):
        if not sc.request:
            return None
        path = os.path.join(self.out, f"{sc.key}.lua")
        if not os.path.exists(path):
            loadgen.lua_script(path, self.o.port, sc.request)
        return path

    def _wrk(self, sc, group, duration):
        pin = group.pin
        return loadgen.wrk(self.o.port, sc.request["path"] if sc.request else sc.path, conns=sc.conns,
                           threads=1 if pin else sc.threads, duration=duration,
                           headers=["Connection: close"] if sc.close else [], script=self._script(sc),
                           cpu=1 if pin else None)

    def rate_for(self, sc):
        src = servers.BASELINE if sc.rate == "low" else "rgun-gt1"
        xs = self.s2.get(src)
        if xs:
            return max(100, int(sorted(xs)[len(xs) // 2] * 0.5))
        return FALLBACK_RATE[sc.rate]

    # ---- one measurement ---------------------------------------------------------------
    def measure(self, p, server, group, sc, rec):
        duration = self.dur(sc)
        tree = procs.tree(p.pid)
        holder = None
        if sc.kind == "idle":
            rec["threads_before"] = procs.threads(tree)
            holder = subprocess.Popen([sys.executable, "-m", "lib.idle", str(self.o.port), "1000",
                                       str(duration + 15)], cwd=servers.BENCH, stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, text=True)
            line = holder.stdout.readline().split()  # READY n (the holder is bounded by its own timer)
            rec["idle_open_at_start"] = int(line[1]) if len(line) == 2 else None
            time.sleep(0.5)
            tree = procs.tree(p.pid)
            rec["threads_idle"] = procs.threads(tree)
        foreign = procs.Foreign()
        k0 = loadgen.children_cpu()
        b0 = procs.machine_busy()
        c0 = procs.cpu_seconds(tree)
        t0 = time.time()
        try:
            if sc.kind == "rate":
                rate = self.rate_for(sc)
                own = rec.get("own_s2_rps")
                if own is not None and own < rate * 1.05:
                    return {"skipped": f"over capacity: S2 max {own:.0f} < 1.05 x rate {rate}", "target_rate": rate}
                res = loadgen.fixed_rate(self.o.port, sc.path, rate, duration, conns=sc.conns, tool=self.o.rate_tool)
            else:
                res = self._wrk(sc, group, duration)
            t1 = time.time()
            tree1 = procs.tree(p.pid)
            c1 = procs.cpu_seconds(set(tree) | set(tree1))
            if sc.kind == "idle":
                res["threads_during"] = procs.threads(tree1)
        finally:
            if holder is not None:
                holder.terminate()  # our child, by PID
                try:
                    out, _ = holder.communicate(timeout=10)
                    res_idle = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
                except Exception:  # noqa: BLE001
                    holder.kill()
                    holder.communicate()
                    res_idle = {}
        b1 = procs.machine_busy()
        res["foreign_cpu_pct"], res["steal_pct"] = foreign.finish(c1 - c0, loadgen.children_cpu() - k0)
        res["machine_busy_pct"] = (b1[0] - b0[0]) / max(1, b1[1] - b0[1]) * 100 * os.cpu_count()
        res["noisy"] = res["foreign_cpu_pct"] > self.o.foreign_max
        res["server_cpu_s"] = c1 - c0
        res["server_cpu_pct"] = (c1 - c0) / (t1 - t0) * 100
        n = res.get("requests") or res.get("rps", 0) * duration
        res["cpu_us_per_req"] = (c1 - c0) / n * 1e6 if n else None
        if sc.bytes_per_req and res.get("rps"):
            res["gbps"] = res["rps"] * sc.bytes_per_req / 1e9
        if holder is not None:
            res["idle"] = res_idle
        return res

    # ---- one server start: all of its measurements -------------------------------------
    def run_start(self, rnd, group, server, scs):
        lab = label(server, group)
        base = {"round": rnd, "group": group.key, "server": lab, "server_name": server, "workers": group.workers,
                "pinned": group.pin}
        try:
            p, startup, cmd = self.start(server, group, scs[0].check)
        except Exception as e:  # noqa: BLE001
            for sc in scs:
                self.emit(dict(base, scenario=sc.key, sid=sc.sid, error=str(e)[:300]))
            self.say(f"  r{rnd} {group.key:12} {lab:18} START FAILED: {str(e)[:160]}")
            return
        try:
            base["cmd"] = cmd
            if server.startswith("rgun"):
                base["rgun"] = self.rgun_id
            base["startup_s"] = round(startup, 2)
            first = scs[0]
            self._wrk(first, group, self.o.warmup) if first.kind != "rate" else None
            tree = procs.tree(p.pid)
            pss, rss, per = procs.memory(tree)
            base.update(pss_mb=round(pss, 1), rss_mb=round(rss, 1), pss_per_proc=per, nproc=len(tree),
                        threads=procs.threads(tree))
            own_s2 = None
            for sc in scs:
                if time.time() > self.deadline:
                    self.emit(dict(base, scenario=sc.key, sid=sc.sid, error="run deadline reached"))
                    continue
                rec = dict(base, scenario=sc.key, sid=sc.sid, own_s2_rps=own_s2)
                err = checkmod.check(self.o.port, sc.check)
                if err:
                    rec["error"] = "check failed: " + err
                    self.emit(rec)
                    self.say(f"  r{rnd} {sc.key:22} {lab:18} CHECK FAILED: {err}")
                    continue
                time.sleep(0.2)
                res = self.measure(p, server, group, sc, rec)
                rec.update(res)
                if sc.key == "S2-hello-ka" and res.get("rps"):
                    own_s2 = res["rps"]
                    self.s2.setdefault(server, []).append(res["rps"])
                self.emit(rec)
                self.say(self.line(rnd, sc, lab, rec))
            tree = procs.tree(p.pid)
            pss2, rss2, per2 = procs.memory(tree)
            self.emit(dict(base, scenario="S11-memory", sid="S11", pss_after_mb=round(pss2, 1),
                           rss_after_mb=round(rss2, 1), pss_after_per_proc=per2))
        finally:
            procs.stop(p, self.o.port)

    @staticmethod
    def line(rnd, sc, lab, r):
        if r.get("skipped"):
            return f"  r{rnd} {sc.key:22} {lab:18} skipped ({r['skipped']})"
        f = lambda x, d=0: "-" if x is None else f"{x:,.{d}f}"  # noqa: E731
        extra = f" {r['gbps']:.2f}GB/s" if r.get("gbps") else ""
        if r.get("idle"):
            extra += f" idle_open={r['idle'].get('open_min')} thr={r.get('threads_idle')}/{r.get('threads_during')}"
        return (f"  r{rnd} {sc.key:22} {lab:18} {f(r.get('rps')):>9} req/s{extra} cpu={f(r.get('cpu_us_per_req'), 1)}us "
                f"p50={f(r.get('p50'), 2)} p99={f(r.get('p99'), 2)} err={r.get('errors')} pss={r.get('pss_mb')} "
                f"fgn={f(r.get('foreign_cpu_pct'))}%{' NOISY' if r.get('noisy') else ''}")

    def run(self, groups_sel, servers_sel, rounds):
        for rnd in range(rounds):
            self.say(f"== round {rnd + 1}/{rounds}")
            for group in GROUPS:
                scs_all = groups_sel.get(group.key)
                if not scs_all:
                    continue
                for server in group.servers:
                    if server not in servers_sel.get(group.key, ()):
                        continue
                    if time.time() > self.deadline:
                        self.say("  run deadline reached: skipping the rest")
                        return
                    scs = [s for s in scs_all if (not s.servers or server in s.servers)
                           and not (self.o.quick and not self.o.servers and (s.key, server) in QUICK_SKIP)]
                    if scs:
                        self.run_start(rnd, group, server, scs)
