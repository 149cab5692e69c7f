"""Flatten observations into named fields and diff them."""


def flatten(obs):
    """obs: normalised observation -> ordered {field: value}."""
    out = {}
    if "error" in obs and obs["error"]:
        out["case_error"] = obs["error"]
    for xi, ex in enumerate(obs.get("exchanges", [])):
        pre = "conn%d." % xi if len(obs["exchanges"]) > 1 else ""
        out[pre + "responses"] = len(ex["responses"])
        for ri, r in enumerate(ex["responses"]):
            rp = "%sresp%d." % (pre, ri)
            out[rp + "status"] = r["status"]
            out[rp + "headers"] = r["headers"]
            out[rp + "body"] = r["body"]
            out[rp + "framing"] = r["framing"]
            if r.get("chunks") is not None:
                out[rp + "chunks"] = r["chunks"]
            if r.get("interim"):
                out[rp + "interim"] = r["interim"]
        out[pre + "connection"] = ex["end"]
        if ex.get("extra"):
            out[pre + "extra_bytes"] = ex["extra"]
        if ex.get("error"):
            out[pre + "client_error"] = ex["error"]
    for key in ("access_log", "error_log", "hooks", "stdout", "stderr", "exit_code", "log",
                "master_log", "worker_log"):
        if key in obs:
            out[key] = obs[key]
    return out


def diff(base, cand):
    """List of (field, baseline_value, candidate_value)."""
    a, b = flatten(base), flatten(cand)
    diffs = []
    for key in list(a) + [k for k in b if k not in a]:
        va, vb = a.get(key, "<absent>"), b.get(key, "<absent>")
        if va != vb:
            diffs.append((key, va, vb))
    return diffs
