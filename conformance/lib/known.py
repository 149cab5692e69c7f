"""known_differences.toml: accepted, deliberate differences."""
import fnmatch
import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    try:
        import tomli as tomllib
    except ImportError:
        tomllib = None


class Known:
    def __init__(self, entries):
        self.entries = entries
        self.used = [False] * len(entries)
        self.applicable = [False] * len(entries)

    @classmethod
    def load(cls, path):
        with open(path, "rb") as f:
            if tomllib is None:
                data = {"difference": []}
                if f.read().strip():
                    raise SystemExit("known_differences.toml has entries but no TOML parser (install tomli)")
            else:
                data = tomllib.load(f)
        entries = data.get("difference", [])
        for e in entries:
            for key in ("case", "field", "reason"):
                if not isinstance(e.get(key), str) or not e[key]:
                    raise SystemExit("known_differences.toml: every [[difference]] needs case, field, reason: %r" % e)
        return cls(entries)

    def note_case(self, case_id):
        for i, e in enumerate(self.entries):
            if fnmatch.fnmatchcase(case_id, e["case"]):
                self.applicable[i] = True

    def match(self, case_id, field):
        for i, e in enumerate(self.entries):
            if fnmatch.fnmatchcase(case_id, e["case"]) and fnmatch.fnmatchcase(field, e["field"]):
                self.used[i] = True
                return e
        return None

    def stale(self):
        """Entries whose cases ran but whose difference no longer occurs."""
        return [e for e, used, app in zip(self.entries, self.used, self.applicable) if app and not used]
