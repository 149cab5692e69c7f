"""Normalisation of everything that must legitimately differ between two runs.

Only these are rewritten (see README "What is normalised"):
  * Date header value, Server header value, SERVER_SOFTWARE-style "<prog>/<version>" tokens
  * listening ports, client ports (REMOTE_PORT), pids, temp directories
  * timestamps: error-log prefix, access-log %(t)s, Flask's logger time
  * the program name in "Starting gunicorn 27.0.1" / usage / version lines
  * server-internal traceback frames (frames outside the apps directory)
  * application-level randomness: session/CSRF cookie values and tokens, cookie expiry dates
"""
import re

ERR_PREFIX = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] \[(\d+)\] \[([A-Z]+)\] (.*)$")
FLASK_LOG = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+\] ")
ACCESS_TIME = re.compile(r"\[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\]")
PROG_VERSION = re.compile(r"\b(gunicorn|rgun)/\d[\w.+-]*")
STARTING = re.compile(r"Starting (gunicorn|rgun) \S+")
REMOTE_PORT = re.compile(r'("REMOTE_PORT": )"\d+"')
COOKIE_VAL = re.compile(r"\b(session|sessionid|csrftoken|messages)=(\"[^\"]*\"|[^;,\s\"]+)")
CSRF_INPUT = re.compile(r'(name="csrfmiddlewaretoken" value=")[^"]+(")')
EXPIRES = re.compile(r"(expires=)[A-Za-z]{3}, \d\d[ -][A-Za-z]{3}[ -]\d{4} \d\d:\d\d:\d\d GMT", re.I)
MP_BOUNDARY = re.compile(r"boundary=[0-9a-f]{32}")
NOISE = re.compile(r"Control socket (listening at|disabled|is not supported by rgun yet)|Failed to start control socket")
FRAME = re.compile(r'^\s*File "([^"]+)", line \d+, in ')


class Normaliser:
    def __init__(self, tmpdir=None, port=None, pids=(), apps_dir=None):
        self.tmpdir = tmpdir
        self.port = port
        self.pids = sorted({p for p in pids if p}, reverse=True)
        self.apps_dir = apps_dir
        # pids are replaced only in pid-ish contexts ("pid: N", "(N)", "<N>", "[N]", "Worker N"),
        # never as bare numbers (a body size can equal a pid).
        self._pid_re = re.compile(r"(pid:\s?|\(|<|\[|Worker )(%s)(?!\d)" % "|".join(map(str, self.pids))) if self.pids else None
        self._port_re = re.compile(r"(?<!\d)%d(?!\d)" % port) if port else None

    def text(self, s):
        if self.tmpdir:
            s = s.replace(self.tmpdir, "<TMP>")
        if self._port_re:
            s = self._port_re.sub("<PORT>", s)
        s = PROG_VERSION.sub("<prog>/<version>", s)
        s = REMOTE_PORT.sub(r'\1"<cport>"', s)
        s = COOKIE_VAL.sub(r"\1=<value>", s)
        s = CSRF_INPUT.sub(r"\1<token>\2", s)
        s = EXPIRES.sub(r"\1<date>", s)
        s = MP_BOUNDARY.sub("boundary=<random>", s)
        return s

    def tail(self, s):
        """Raw bytes after the expected responses (e.g. a probe response)."""
        s = re.sub(r"(?mi)^(Date: ).*?(\r?)$", r"\1<date>\2", s)
        s = re.sub(r"(?mi)^(Server: ).*?(\r?)$", r"\1<server>\2", s)
        return self.text(s)

    def pid(self, s):
        return self._pid_re.sub(r"\1<pid>", s) if self._pid_re else s

    # -- HTTP -----------------------------------------------------------
    def response(self, resp):
        body = resp["body"]
        if isinstance(body, bytes):
            from .client import body_summary
            raw = body_summary(body)
        else:
            raw = body
        norm = self.text(raw)
        headers = []
        for name, value in resp["headers"]:
            low = name.lower()
            if low in ("date", "expires"):  # Expires: Django's never_cache uses "now"
                value = "<date>"
            elif low == "server":
                value = "<server>"
            elif low == "content-length" and norm != raw:
                value = "<normalised>"
            else:
                value = self.text(value)
            headers.append("%s: %s" % (name, value))
        out = {"status": resp["status"], "headers": headers, "body": norm, "framing": resp["framing"],
               "chunks": resp["chunks"] if norm == raw else "<normalised>"}
        if resp["interim"]:
            out["interim"] = [{"status": i["status"], "headers": ["%s: %s" % (k, self.text(v)) for k, v in i["headers"]]}
                              for i in resp["interim"]]
        return out

    # -- logs -----------------------------------------------------------
    drop_noise = True

    def error_log(self, lines):
        out = []
        skipping = False
        for line in lines:
            m = ERR_PREFIX.match(line)
            if m:
                skipping = False
                if self.drop_noise and NOISE.search(m.group(3)):
                    continue
                line = "%s %s" % (m.group(2), m.group(3))
                line = STARTING.sub("Starting <prog> <version>", line)
                out.append(self.pid(self.text(line)))
                continue
            fm = FRAME.match(line)
            if fm:
                skipping = not (self.apps_dir and fm.group(1).startswith(self.apps_dir))
                if skipping:
                    continue
            elif skipping and line.startswith("    "):
                continue  # source / caret line of a dropped frame
            else:
                skipping = False
            line = FLASK_LOG.sub("[<time>] ", line)
            out.append(self.pid(self.text(line)))
        return out

    def access_log(self, lines):
        return [self.pid(self.text(ACCESS_TIME.sub("[<time>]", line))) for line in lines]

    def hook_log(self, lines):
        return [self.pid(self.text(line)) for line in lines]


def split_roles(lines, master_pid_token="<pid>"):
    """Not used for per-case logs; see compare.role_sequences."""
    return lines


PROG_WORDS = re.compile(r"(?<![\w/.-])(gunicorn|rgun)(?=[:\s]|$)")
VERSION_LINE = re.compile(r"^(gunicorn|rgun) \(version [^)]*\)", re.M)


def cli_text(s, tmpdir=None, cwd=None):
    """Normalise CLI output (usage, errors, --version, tracebacks)."""
    if tmpdir:
        s = s.replace(tmpdir, "<TMP>")
    s = VERSION_LINE.sub("<prog> (version <version>)", s)
    s = re.sub(r"^usage: (gunicorn|rgun)\b", "usage: <prog>", s, flags=re.M)
    s = re.sub(r"^(gunicorn|rgun): error:", "<prog>: error:", s, flags=re.M)
    s = PROG_VERSION.sub("<prog>/<version>", s)
    s = STARTING.sub("Starting <prog> <version>", s)
    s = re.sub(r"\b0x[0-9a-fA-F]{6,}\b", "0x<addr>", s)        # object reprs in validator messages
    s = re.sub(r"(http://127\.0\.0\.1:)\d+", r"\1<PORT>", s)   # ephemeral port of -b 127.0.0.1:0
    return s
