"""Markdown report grouped by area."""
import json
from collections import OrderedDict


def _fmt(v, limit=1500):
    s = v if isinstance(v, str) else json.dumps(v, indent=1, ensure_ascii=False)
    if len(s) > limit:
        s = s[:limit] + "\n... (%d more chars)" % (len(s) - limit)
    return s


def write(path, outcomes, stale, commands, elapsed, passed, failed):
    areas = OrderedDict()
    for o in sorted(outcomes, key=lambda o: (o.area, o.case_id)):
        areas.setdefault(o.area, []).append(o)
    lines = ["# Conformance report", "",
             "* baseline: `%s`" % commands["baseline"],
             "* candidate: `%s`" % commands["candidate"],
             "* cases: %d, passed %d, failed %d, run time %.0fs" % (len(outcomes), passed, failed, elapsed), "",
             "| area | cases | identical | known differences | unexpected |", "|---|---|---|---|---|"]
    for area, items in areas.items():
        lines.append("| %s | %d | %d | %d | %d |" % (
            area, len(items), sum(1 for o in items if not o.diffs),
            sum(1 for o in items if o.known and not o.unexpected), sum(1 for o in items if o.unexpected)))
    lines.append("")
    if stale:
        lines += ["## Stale known differences (no longer occur)", ""]
        for e in stale:
            lines.append("* `%s` field `%s`: %s" % (e["case"], e["field"], e["reason"]))
        lines.append("")
    for area, items in areas.items():
        bad = [o for o in items if o.unexpected]
        known = [o for o in items if o.known]
        if not bad and not known:
            continue
        lines += ["## %s" % area, ""]
        for o in bad:
            lines += ["### FAIL `%s`" % o.case_id, ""]
            for field, b, c in o.unexpected:
                if isinstance(b, list) and isinstance(c, list) and (len(b) > 8 or len(c) > 8):
                    import difflib
                    ud = list(difflib.unified_diff([_fmt(x, 400) for x in b], [_fmt(x, 400) for x in c],
                                                   "baseline", "candidate", lineterm="", n=2))
                    lines += ["* field `%s` (unified diff)" % field, "", "```diff"] + ud[:80] + ["```", ""]
                    continue
                lines += ["* field `%s`" % field, "", "  baseline:", "", "```", _fmt(b), "```", "",
                          "  candidate:", "", "```", _fmt(c), "```", ""]
        if known:
            lines += ["Known differences:", ""]
            for o in known:
                for field, entry in o.known:
                    lines.append("* `%s` `%s` — %s" % (o.case_id, field, entry["reason"]))
            lines.append("")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
