"""Load generators: wrk (closed loop), the fixed-rate client (open loop), and oha if present."""
import json
import os
import re
import resource
import shutil

from . import procs

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXED_RATE = os.path.join(BENCH, "hyper-hello", "target", "release", "fixed-rate")


def _lat_ms(s):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", s)
    if not m:
        return None
    v, u = float(m.group(1)), m.group(2)
    return {"us": v / 1000, "ms": v, "s": v * 1000, "m": v * 60000}[u]


def lua_script(path, port, req):
    """A wrk script that sends the raw request `req` (dict: method, path, headers, body, chunked)."""
    body = req.get("body_len", 0)
    head = [f"{req['method']} {req['path']} HTTP/1.1", f"Host: 127.0.0.1:{port}",
            "Content-Type: application/octet-stream"]
    if req.get("chunked"):
        head.append("Transfer-Encoding: chunked")
        # 16 KiB chunks, then the last one and the terminator
        n, left, parts = 16384, body, []
        lua = ['local c16 = string.rep("x", 16384)', "local parts = {}"]
        while left >= n:
            parts.append(n)
            left -= n
        lua.append(f"for i = 1, {len(parts)} do parts[#parts + 1] = '4000\\r\\n' .. c16 .. '\\r\\n' end")
        if left:
            lua.append(f"parts[#parts + 1] = '{left:x}\\r\\n' .. string.rep('x', {left}) .. '\\r\\n'")
        lua.append("parts[#parts + 1] = '0\\r\\n\\r\\n'")
        lua.append("local body = table.concat(parts)")
    else:
        head.append(f"Content-Length: {body}")
        lua = [f'local body = string.rep("x", {body})']
    raw_head = "\\r\\n".join(head) + "\\r\\n\\r\\n"
    lua.append(f'local raw = "{raw_head}" .. body')
    lua.append("wrk.format = function() return raw end")
    with open(path, "w") as f:
        f.write("\n".join(lua) + "\n")
    return path


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def wrk(port, path="/", conns=64, threads=2, duration=10, headers=(), script=None, cpu=None, timeout_s=None):
    argv = (["taskset", "-c", str(cpu)] if cpu is not None else []) + [
        "wrk", f"-t{threads}", f"-c{conns}", f"-d{max(1, round(duration))}s", "--latency", "--timeout", "5s"]
    for h in headers:
        argv += ["-H", h]
    if script:
        argv += ["-s", script]
    argv.append(f"http://127.0.0.1:{port}{path}")
    c0 = children_cpu()
    rc, out, err = procs.run_bounded(argv, timeout_s or duration + 30)
    client_cpu = children_cpu() - c0
    res = {"tool": "wrk", "rc": rc, "client_cpu_pct": client_cpu / duration * 100}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    res["rps"] = float(m.group(1)) if m else 0.0
    m = re.search(r"^\s+(\d+) requests in ([\d.]+)(\w+)", out, re.M)
    res["requests"] = int(m.group(1)) if m else 0
    for p in ("50", "99"):
        m = re.search(rf"^\s+{p}(?:\.000)?%\s+(\S+)", out, re.M)
        res[f"p{p}"] = _lat_ms(m.group(1)) if m else None
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errs = [int(x) for x in m.groups()] if m else [0, 0, 0, 0]
    res["socket_errors"] = errs
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["non2xx"] = int(m.group(1)) if m else 0
    res["errors"] = sum(errs) + res["non2xx"]
    if rc != 0 or not m and res["rps"] == 0:
        res["stderr"] = (err or out)[-400:]
    return res


def have_oha():
    return shutil.which("oha") is not None


def fixed_rate(port, path, rate, duration, conns=64, cpu=None, tool="auto"):
    """Open-loop load at `rate` req/s; latency from the intended send time."""
    pre = ["taskset", "-c", str(cpu)] if cpu is not None else []
    use_oha = tool == "oha" or (tool == "auto" and have_oha())
    c0 = children_cpu()
    if use_oha:
        argv = pre + ["oha", "--no-tui", "--output-format", "json", "-c", str(conns), "-q", str(int(rate)),
                      "--latency-correction", "-z", f"{max(1, round(duration))}s", f"http://127.0.0.1:{port}{path}"]
        rc, out, err = procs.run_bounded(argv, duration + 30)
        res = {"tool": "oha -q", "rc": rc}
        try:
            d = json.loads(out)
            res.update(rps=d["summary"]["requestsPerSec"], p50=d["latencyPercentiles"]["p50"] * 1000,
                       p99=d["latencyPercentiles"]["p99"] * 1000,
                       errors=sum((d.get("errorDistribution") or {}).values()))
        except Exception as e:  # noqa: BLE001
            res.update(rps=0.0, p50=None, p99=None, errors=-1, stderr=repr(e) + err[-300:])
    else:
        argv = pre + [FIXED_RATE, str(port), path, str(rate), str(max(1, round(duration))), str(conns)]
        rc, out, err = procs.run_bounded(argv, duration + 30)
        res = {"tool": "fixed-rate", "rc": rc}
        try:
            d = json.loads(out.strip().splitlines()[-1])
            res.update(rps=d["rps"], p50=d["p50"], p99=d["p99"], p999=d["p999"], max=d["max"],
                       errors=d["errors"] + d["non2xx"], reconnects=d["reconnects"])
        except Exception as e:  # noqa: BLE001
            res.update(rps=0.0, p50=None, p99=None, errors=-1, stderr=repr(e) + err[-300:])
    res["target_rate"] = rate
    res["client_cpu_pct"] = (children_cpu() - c0) / duration * 100
    return res
