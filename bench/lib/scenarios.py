"""Scenarios S1-S11 of perf-anchors §5.2, grouped by server start.

A Group is one server start (app module, workers, pinning, thread override); it runs the
measurements of all its scenarios back to back, then the server is stopped. Each round runs
every group for every server, so servers are interleaved round by round.
"""
from dataclasses import dataclass, field

HELLO = b"Hello, World!"
MB = 1024 * 1024


@dataclass
class Check:
    method: str = "GET"
    path: str = "/"
    body_len: int = 0
    chunked: bool = False
    expect: str = "exact"  # exact | length | contains | json
    value: object = HELLO


@dataclass
class Scenario:
    sid: str            # S1..S11
    key: str            # unique short key, e.g. "S2-hello-ka"
    title: str
    kind: str = "wrk"   # wrk | idle | rate
    path: str = "/"
    conns: int = 64
    threads: int = 2    # wrk threads
    close: bool = False
    request: dict = None  # for POST scenarios: method, path, body_len, chunked (-> wrk Lua script)
    bytes_per_req: int = 0  # > 0: also report GB/s (body bytes moved per request)
    dur: str = "main"   # main | short
    servers: tuple = ()  # empty: all of the group's
    check: Check = field(default_factory=Check)
    rate: str = ""      # S10: "low" (50% of gunicorn sync max) or "high" (50% of rgun max)
    quick: bool = False


@dataclass
class Group:
    key: str
    module: str
    workers: int
    servers: tuple
    scenarios: list
    pin: bool = False
    threads: int = None
    keep_alive: int = None  # seconds, for the servers that close idle kept-alive connections


ALL_W2 = ("gunicorn-sync", "rgun-gt1", "rgun-gt4", "rgun-sync", "gunicorn-gthread", "granian",
          "granian-bt1", "uwsgi", "bjoern", "hyper")
PY_W2 = tuple(s for s in ALL_W2 if s != "hyper")


def _post(path, n, chunked=False):
    return {"method": "POST", "path": path, "body_len": n, "chunked": chunked}


GROUPS = [
    Group("hello-pinned", "hello", 1,
          ("gunicorn-sync", "rgun-gt1", "granian", "granian-bt1", "uwsgi", "bjoern", "hyper"),
          [Scenario("S1", "S1-hello-pinned", "hello keep-alive, c64, 1 worker pinned (server CPU 0, wrk -t1 CPU 1)",
                    threads=1)],
          pin=True),
    # Its own server start: a keep-alive timeout above the run (gunicorn's default of 2 s closes
    # the idle kept-alive half every 2 s, and the holder reopens only 200 a second).
    Group("hello-idle", "hello", 2, PY_W2, [
        Scenario("S9", "S9-hello-idle1000", "hello keep-alive c64 while 1,000 idle connections are held open "
                 "(`--keep-alive 75` where the server has it)", kind="idle"),
    ], keep_alive=75),
    Group("hello", "hello", 2, ALL_W2, [
        Scenario("S2", "S2-hello-ka", "hello keep-alive, c64, 2 workers", quick=True),
        Scenario("S3", "S3-hello-close", "hello `Connection: close`, c64, 2 workers", close=True, quick=True),
        Scenario("S10", "S10-rate-low", "fixed rate = 50% of gunicorn sync's S2 max, 64 conns", kind="rate",
                 rate="low", dur="short",
                 servers=("gunicorn-sync", "rgun-gt1", "rgun-gt4", "rgun-sync", "gunicorn-gthread", "granian",
                          "granian-bt1", "uwsgi", "bjoern", "hyper")),
        Scenario("S10", "S10-rate-high", "fixed rate = 50% of rgun gthread-1's S2 max, 64 conns", kind="rate",
                 rate="high", dur="short",
                 servers=("rgun-gt1", "rgun-gt4", "granian", "granian-bt1", "bjoern", "hyper")),
    ]),
    Group("flask", "flaskapp", 2, PY_W2, [
        Scenario("S4", "S4-flask-ka", "Flask JSON keep-alive, c64, 2 workers",
                 check=Check(expect="json", value={"message": "Hello, World!"}), quick=True),
        Scenario("S4", "S4-flask-close", "Flask JSON `Connection: close`, c64, 2 workers", close=True,
                 check=Check(expect="json", value={"message": "Hello, World!"}), quick=True),
    ]),
    Group("django", "djangoapp", 2,
          ("gunicorn-sync", "rgun-gt1", "rgun-sync", "granian", "granian-bt1", "uwsgi", "bjoern"), [
        Scenario("S4", "S4-django-ka", "Django view + template, keep-alive, c64, 2 workers",
                 check=Check(expect="contains", value=b"DJANGO-BENCH-OK")),
    ]),
    Group("misc", "misc", 2, ("gunicorn-sync", "rgun-gt1", "granian", "granian-bt1", "uwsgi", "bjoern"), [
        Scenario("S5", "S5-body-10k", "GET 10 KB body (one-element list), c64", path="/bytes/10240",
                 bytes_per_req=10240, dur="short", check=Check(path="/bytes/10240", expect="length", value=10240)),
        Scenario("S5", "S5-body-100k", "GET 100 KB body, c64", path="/bytes/102400", bytes_per_req=102400,
                 dur="short", check=Check(path="/bytes/102400", expect="length", value=102400)),
        Scenario("S5", "S5-body-1m", "GET 1 MB body, c16", path="/bytes/1048576", conns=16,
                 bytes_per_req=MB, dur="short", check=Check(path="/bytes/1048576", expect="length", value=MB)),
        Scenario("S5", "S5-download-10m-c1", "GET 10 MB body, ONE connection (throughput)",
                 path=f"/bytes/{10 * MB}", conns=1, threads=1, bytes_per_req=10 * MB, dur="short",
                 check=Check(path=f"/bytes/{10 * MB}", expect="length", value=10 * MB), quick=True),
        Scenario("S6", "S6-stream-1m", "GET generator 16 x 64 KB, c16", path="/stream", conns=16,
                 bytes_per_req=MB, dur="short", check=Check(path="/stream", expect="length", value=MB)),
        Scenario("S6", "S6-echoi-10k", "POST 10 KB, read in 4 KB chunks and yielded back, c64",
                 request=_post("/echoi", 10240), bytes_per_req=10240, dur="short",
                 check=Check("POST", "/echoi", 10240, expect="length", value=10240)),
        Scenario("S6", "S6-echoi-100k", "POST 100 KB echo iter, c64", request=_post("/echoi", 102400),
                 bytes_per_req=102400, dur="short",
                 check=Check("POST", "/echoi", 102400, expect="length", value=102400)),
        Scenario("S7", "S7-post-1k", "POST 1 KB, wsgi.input.read(), c64", request=_post("/echo", 1024),
                 bytes_per_req=1024, dur="short", check=Check("POST", "/echo", 1024, expect="length", value=1024)),
        Scenario("S7", "S7-chunked-64k", "POST 64 KB chunked (16 KB chunks), c64",
                 request=_post("/upload", 65536, chunked=True), bytes_per_req=65536, dur="short",
                 check=Check("POST", "/upload", 65536, chunked=True, expect="exact", value=b"65536")),
        Scenario("S7", "S7-upload-20m-c1", "POST 20 MB, ONE connection (throughput)",
                 request=_post("/upload", 20 * MB), conns=1, threads=1, bytes_per_req=20 * MB, dur="short",
                 check=Check("POST", "/upload", 20 * MB, expect="exact", value=str(20 * MB).encode()), quick=True),
    ]),
    Group("sleep", "sleepy", 2,
          ("gunicorn-sync", "rgun-gt4", "gunicorn-gthread", "granian", "uwsgi", "bjoern"), [
        Scenario("S8", "S8-sleep10ms-c256", "app sleeps 10 ms, c256, 2 workers, 32 threads where the server has threads",
                 conns=256, dur="short"),
    ], threads=32),
]

QUICK_SERVERS = ("gunicorn-sync", "rgun-gt1", "rgun-gt4", "rgun-sync", "granian", "uwsgi", "bjoern", "hyper")
QUICK_GROUP_SERVERS = {  # trims quick mode to about 2 minutes
    "flask": ("gunicorn-sync", "rgun-gt1", "rgun-sync", "granian", "uwsgi", "bjoern"),
    "misc": ("gunicorn-sync", "rgun-gt1", "granian"),
}

# quick mode only measures what issue 6's targets need from each rgun configuration
QUICK_SKIP = {("S3-hello-close", "rgun-gt1"), ("S3-hello-close", "rgun-gt4"), ("S2-hello-ka", "rgun-sync"),
              ("S4-flask-ka", "rgun-sync"), ("S4-flask-close", "rgun-gt1")}

S11_NOTE = "S11 (memory) is measured in every server start: PSS after warm-up and after the load."


def all_sids():
    return sorted({s.sid for g in GROUPS for s in g.scenarios} | {"S11"}, key=lambda x: int(x[1:]))
