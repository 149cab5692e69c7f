"""Run every case of one matrix setup against baseline and candidate, then diff."""
import os
import re
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor

from .compare import diff
from .matrix import APPS_DIR
from .normalise import ERR_PREFIX, Normaliser
from .servers import Server


class Outcome:
    def __init__(self, case_id, area, setup, diffs, base=None, cand=None, desc=""):
        self.case_id = case_id
        self.area = area
        self.setup = setup
        self.diffs = diffs          # [(field, baseline, candidate)]
        self.base = base
        self.cand = cand
        self.known = []             # [(field, entry)]
        self.unexpected = []        # [(field, b, c)]
        self.desc = desc


def _run_case(server, case, case_id):
    obs = {}
    try:
        obs = case.run(server)
    except Exception as exc:  # a client-side failure is itself an observation
        obs = {"error": "%s: %s" % (type(exc).__name__, exc), "exchanges": []}
    ok = server.mark(case_id)
    if ok:
        obs["_out"], obs["_err"] = server.case_out, server.case_err
    else:
        obs["_out"], obs["_err"] = [], []
        obs["error"] = (obs.get("error") or "") + " [log marker failed: server unresponsive]"
    return obs


def _normalise_obs(norm, obs):
    out = {"exchanges": []}
    if obs.get("error"):
        out["error"] = norm.text(obs["error"])
    for ex in obs.get("exchanges", []):
        out["exchanges"].append({
            "responses": [norm.response(r) for r in ex["responses"]],
            "end": ex["end"], "extra": norm.tail(ex.get("extra") or ""),
            "error": ex.get("error")})
    out["access_log"] = norm.access_log(obs.get("_out", []))
    out["error_log"] = norm.error_log(obs.get("_err", []))
    return out


def _role_split(norm, lines, master_pid):
    master, worker, other = [], [], []
    for line in lines:
        m = ERR_PREFIX.match(line)
        if not m:
            other.append(line)  # unprefixed output (tracebacks, prints): cross-process order races
        elif int(m.group(1)) == master_pid:
            master.append(line)
        else:
            worker.append(line)
    return {"master_log": norm.error_log(master), "worker_log": norm.error_log(worker), "log": norm.error_log(other)}


def _hooks_split(norm, lines):
    if lines is None:
        return {}
    roles = {"master": [], "worker": []}
    for line in lines:
        parts = line.split(" ", 2)
        role = parts[1] if len(parts) > 1 and parts[1] in roles else "master"
        roles[role].append(norm.hook_log([line.replace(" %s " % role, " ", 1)])[0])
    return {"master_log": roles["master"], "worker_log": roles["worker"]}


def _master_pid(server):
    for line in server.err.lines:
        m = re.search(r"Listening at: .* \((\d+)\)", line)
        if m:
            return int(m.group(1))
    return server.proc.pid if server.proc else 0


def run_setup(setup, cases, commands, tmproot, progress=None):
    """commands: {"baseline": cmd, "candidate": cmd}. Returns [Outcome]."""
    tag = setup.name.replace("/", "-")
    servers = {}
    for role, letter in (("baseline", "b"), ("candidate", "c")):
        tmp = os.path.join(tmproot, "%s-%s" % (tag, letter))
        os.makedirs(tmp, exist_ok=True)
        servers[role] = Server(commands[role], role, setup, tmp)
    b, c = servers["baseline"], servers["candidate"]
    outcomes = []
    with ThreadPoolExecutor(2) as pool:
        started = dict(zip(("baseline", "candidate"), pool.map(lambda s: s.start(), (b, c))))
        try:
            if not started["baseline"] or not started["candidate"]:
                for s in (b, c):
                    s.stop()
                detail = {r: servers[r].startup_error for r in servers if not started[r]}
                o = Outcome("%s/lifecycle.startup" % setup.name, "lifecycle", setup.name,
                            [("startup", detail.get("baseline", "ok"), detail.get("candidate", "ok"))])
                o.infra = not started["baseline"]
                outcomes.append(o)
                for case in cases:
                    cid = case.case_id(setup)
                    outcomes.append(Outcome(cid, case.area, setup.name,
                                            [("server", "started" if started["baseline"] else "no server",
                                              "started" if started["candidate"] else "no server")]))
                return outcomes
            raw = []
            for case in cases:
                cid = case.case_id(setup)
                fb = pool.submit(_run_case, b, case, cid)
                fc = pool.submit(_run_case, c, case, cid)
                raw.append((case, cid, fb.result(), fc.result()))
                if progress:
                    progress()
        finally:
            list(pool.map(lambda s: s.stop(), (b, c)))

    norms = {}
    for role, s in servers.items():
        port = s.target.addr[1] if s.target.kind == "tcp" else None
        norms[role] = Normaliser(s.tmpdir, port, s.all_pids(), APPS_DIR)
    nb, nc = norms["baseline"], norms["candidate"]
    for case, cid, ob, oc in raw:
        base, cand = _normalise_obs(nb, ob), _normalise_obs(nc, oc)
        outcomes.append(Outcome(cid, case.area, setup.name, diff(base, cand), base, cand, case.desc))

    # lifecycle pseudo-cases: startup log, shutdown log, hooks, exit status
    life = {}
    for role, s in servers.items():
        mp = _master_pid(s)
        start_err = s.err.lines[:_first_mark(s.err.lines)]
        out_tail, err_tail = s.tail()
        startup = _role_split(norms[role], start_err, mp)
        # The control-socket line is logged by the master asynchronously (it may come
        # after the first request): it is dropped from per-case logs and checked here.
        ctl = [l for l in s.err.lines if "Control socket" in l]
        norms[role].drop_noise = False
        startup["control_socket"] = norms[role].error_log(ctl)
        norms[role].drop_noise = True
        life[role] = {
            "startup": startup,
            "shutdown": dict(_role_split(norms[role], err_tail, mp), access_log=norms[role].access_log(out_tail),
                             exit_code=s.exit_code),
            "hooks": _hooks_split(norms[role], s.hook_events()),
        }
    for key in ("startup", "shutdown", "hooks"):
        if key == "hooks" and not life["baseline"]["hooks"]:
            continue
        cid = "%s/lifecycle.%s" % (setup.name, key)
        outcomes.append(Outcome(cid, "lifecycle", setup.name,
                                diff(life["baseline"][key], life["candidate"][key]),
                                life["baseline"][key], life["candidate"][key]))
    return outcomes


def _first_mark(lines):
    for i, line in enumerate(lines):
        if "__mark__ c=1-startup" in line:
            return i
    return len(lines)


def run_matrix(setups, cases, commands, tmproot, jobs=2, progress=None):
    results = []
    lock = threading.Lock()

    def one(setup):
        todo = [c for c in cases if c.applies(setup)]
        try:
            res = run_setup(setup, todo, commands, tmproot, progress)
        except Exception:
            res = [Outcome("%s/lifecycle.runner" % setup.name, "lifecycle", setup.name,
                           [("runner_exception", traceback.format_exc(), "")])]
        with lock:
            results.extend(res)

    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(one, setups))
    return results
