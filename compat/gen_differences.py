#!/usr/bin/env python3
"""Generate docs/differences.md from compat/settings.json (the `rgun` status of each setting) and
conformance/known_differences.toml (the blessed behaviour differences). Stdlib only.

    python3 compat/gen_differences.py          # rewrite docs/differences.md
    python3 compat/gen_differences.py --check  # exit 1 if the committed file is stale

A refused setting needs a one-line reason in REASONS below (the script fails without one), so a
setting newly marked refused in compat/extract.py cannot reach the docs unexplained.
"""

import json
import os
import sys
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTINGS = os.path.join(ROOT, "compat", "settings.json")
KNOWN = os.path.join(ROOT, "conformance", "known_differences.toml")
OUT = os.path.join(ROOT, "docs", "differences.md")

_H2 = "HTTP/2 is not implemented (rgun serves HTTP/1.0 and 1.1)"
_ASGI = "ASGI workers are not implemented (rgun runs WSGI apps with sync and gthread)"
_DIRTY = "dirty arbiters (gunicorn 25's separate worker pool) are not implemented"
_UWSGI = "the uwsgi protocol is not implemented"

# One line per refused setting: why rgun refuses it.
REASONS = {
    "control_socket": "rgun has no control interface (gunicornc) yet: it creates no socket (gunicorn 27 creates one by default); a non-default path is refused unless `--no-control-socket` is given",
    "control_socket_mode": "rgun has no control interface (gunicornc) yet",
    "protocol": _UWSGI,
    "uwsgi_allow_ips": _UWSGI,
    "http_protocols": _H2,
    "http2_cleartext": _H2,
    "http2_max_concurrent_streams": _H2,
    "http2_initial_window_size": _H2,
    "http2_max_frame_size": _H2,
    "http2_max_header_list_size": _H2,
    "asgi_loop": _ASGI,
    "asgi_lifespan": _ASGI,
    "asgi_disconnect_grace_period": _ASGI,
    "websocket_max_message_size": _ASGI + "; WebSockets are served by the ASGI worker only",
    "root_path": _ASGI,
    "dirty_apps": _DIRTY,
    "dirty_workers": _DIRTY,
    "dirty_timeout": _DIRTY,
    "dirty_threads": _DIRTY,
    "dirty_graceful_timeout": _DIRTY,
    "on_dirty_starting": _DIRTY,
    "dirty_post_fork": _DIRTY,
    "dirty_worker_init": _DIRTY,
    "dirty_worker_exit": _DIRTY,
}


# Deliberate differences no conformance case exercises (kept here so the document lists them).
OTHER = [
    ("Server name", "rgun names itself: `Server: rgun`, `Starting rgun <version>`, `rgun --version`. "
     "`SERVER_SOFTWARE` stays `gunicorn/27.0.1` so code that detects gunicorn keeps working."),
    ("Control socket", "gunicorn 27 creates a control socket by default and logs `Control socket listening at ...`; "
     "rgun has no control interface yet and creates none (it logs that at debug level)."),
    ("Slow clients", "every worker class reads request heads asynchronously, so clients that send slowly cost no "
     "worker; the first request's head must arrive within `timeout` seconds (gunicorn's sync worker waits forever)."),
    ("Accepting connections", "rgun sets `TCP_DEFER_ACCEPT` (1 s) on the TCP sockets it binds, as uWSGI does by "
     "default: the kernel hands a connection to a worker when its first bytes arrive, so no worker accepts a "
     "connection only to wait for its request. A client that connects and sends nothing is handed over about a "
     "second later, and is not counted by the `gunicorn.backlog` metric until then. Inherited sockets "
     "(`fd://`, systemd, `GUNICORN_FD`) are left as they are."),
    ("Dead master", "workers exit within a second of the master being killed (`PR_SET_PDEATHSIG`); gunicorn's "
     "notice it only on their next poll."),
    ("HUP in a USR2 child", "a re-executed master that has not been promoted yet keeps `<pidfile>.2` "
     "through a SIGHUP and takes `<pidfile>` when promoted; gunicorn 27's child dies on that SIGHUP "
     "(`RuntimeError: Already running on PID ...`: it tries to create `<pidfile>`, which its parent "
     "still holds). Without a pidfile both drop the `.2` from the process title on that SIGHUP."),
    ("HUP with a broken config", "a config error during a SIGHUP reload keeps the previous configuration and "
     "still restarts the workers; gunicorn 27 exits the master."),
    ("`http_parser`", "rgun always uses its own parser, which accepts and rejects exactly what gunicorn's does; "
     "`fast` without `gunicorn_h1c` installed makes gunicorn answer 500 to every request, rgun serves."),
    ("`do_handshake_on_connect`", "accepted; with rustls the TLS handshake always happens on the connection's "
     "first read. With the `ssl_context` hook it is made where gunicorn makes it (an explicit handshake with this "
     "setting or the gthread worker, inside the first read otherwise), so its errors read the same."),
    ("`ssl_context`", "called as gunicorn calls it: in the worker, for every connection, with `cfg` and the "
     "default-context factory. In the gthread worker it runs on the thread that serves the connection: the "
     "worker's main thread with one thread, one of its `threads` runtime threads with more (gunicorn: a pool "
     "thread). Those connections are served by Python's `ssl` (the hook's context as is); TLS without the hook "
     "is rustls."),
    ("App that never calls `start_response`", "answered with gunicorn's 500 page and logged as `Error handling "
     "request` with `AssertionError: Response headers not set!`, in every worker class. gunicorn 27's gthread "
     "worker also answers 500 (its traceback is an `AttributeError`), but its sync worker sends the body under a "
     "status line `HTTP/1.1 None`."),
    ("Failed TLS sessions", "logged as gunicorn logs them (`Error processing SSL request.`, `Invalid request "
     "from ip=...: [SSL: HTTP_REQUEST] http request`, `Failed to send error message.`) with OpenSSL's reason for "
     "the common failures (plain HTTP, no TLS, old protocol versions, no shared cipher, alerts from the client); "
     "CPython's `(_ssl.c:N)` location is not appended, and a failure OpenSSL would name otherwise reads "
     "`[SSL] <rustls' description>`. Clients get OpenSSL's alert for those common cases."),
    ("TLS close", "rgun sends `close_notify` before closing a TLS connection; gunicorn closes the TCP connection "
     "without it, which a strict client reads as a ragged EOF."),
    ("When a finished response leaves", "with `gthread` under load, the last write of a response "
     "on a kept-alive connection (up to 64 KiB) waits for the other requests of the worker's turn, at most about "
     "2 ms with one thread (20 ms with several), so that the turn's "
     "responses go out together; gunicorn sends each at once. So `close()` of the response iterable, the access "
     "log line and `post_request` may run before the client has the last bytes (never for longer than that), "
     "and the access log's request time does not include that last send."),
    ("io_uring", "those held responses go out in one io_uring submission when several are held (one "
     "wake-up of the worker's clients instead of one per send), so a busy gthread worker has an "
     "`anon_inode:[io_uring]` descriptor per runtime thread. Where io_uring is missing or forbidden (Linux < "
     "5.11, a container's seccomp profile, `kernel.io_uring_disabled`) each connection sends its own, as "
     "before, and the worker says so once at debug level. gunicorn does not use io_uring."),
    ("The last bytes before a close", "the last write of a response after which the connection closes is "
     "sent with `MSG_MORE`, so that the close adds the FIN to it (one TCP segment instead of two); gunicorn sends "
     "it at once and closes after `close()` of the response iterable and `post_request`. That work then runs "
     "before the client has the last bytes. A worker that sees it take longer than 1 ms sends the last bytes of "
     "its next 128 closing responses at once, so an app whose work after the response is slow is not delayed "
     "by it, and one where it is slow now and then has at most one response in 128 delayed by its length "
     "(by about 200 ms at most: the kernel then sends them)."),
    ("Objects inherited from the master", "the master calls `gc.freeze()` before it forks each worker, so the "
     "objects a worker inherits (the config, hooks, the standard-library modules both servers' masters import, "
     "and the app with `--preload`) are in the collector's permanent generation: the worker's collections never "
     "touch them, which keeps their memory shared with the master, and a reference cycle among them that "
     "becomes garbage in a worker is never collected. gunicorn does not freeze (`gc.get_freeze_count()` is 0 "
     "in its workers)."),
    ("`logger_class` with `access()`", "a logger class that overrides `access()` is refused: rgun renders "
     "access lines itself."),
    ("`--reload` and `worker_int`", "a worker that sees a changed file always runs `worker_int` before it stops; "
     "gunicorn runs the hook on its reloader thread while the worker is already exiting, so there it sometimes "
     "never runs. An exception in that hook is logged (`Exception in worker_int hook`) rather than printed as a "
     "thread traceback."),
    ("`write()` kept past its request", "an app that keeps the `write` callable of a finished request and calls "
     "it later gets `OSError` (`the response is already complete`); gunicorn ignores the call when that response "
     "had a Content-Length and was complete, and otherwise writes the bytes to the socket, where the client of a "
     "kept-alive connection reads them as part of a later response."),
]


def _cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def generate():
    with open(SETTINGS) as f:
        data = json.load(f)
    with open(KNOWN, "rb") as f:
        known = tomllib.load(f).get("difference", [])
    settings = data["settings"]
    refused = [s for s in settings if s["rgun"] == "refused"]
    supported = [s for s in settings if s["rgun"] == "supported"]
    other = [s["name"] for s in settings if s["rgun"] not in ("refused", "supported")]
    if other:
        raise SystemExit("unknown rgun status for: %s" % ", ".join(other))
    missing = [s["name"] for s in refused if s["name"] not in REASONS]
    if missing:
        raise SystemExit("compat/gen_differences.py: no reason for refused setting(s): %s" % ", ".join(missing))
    stale = sorted(set(REASONS) - {s["name"] for s in refused})
    if stale:
        raise SystemExit("compat/gen_differences.py: reasons for settings that are not refused: %s"
                         % ", ".join(stale))

    out = [
        "# Differences from gunicorn %s" % data["gunicorn_version"],
        "",
        "<!-- Generated by compat/gen_differences.py from compat/settings.json and",
        "     conformance/known_differences.toml. Do not edit by hand. -->",
        "",
        "rgun reads gunicorn's command line and configuration files. Of gunicorn's %d settings, rgun"
        % len(settings),
        "honours %d and refuses %d. A refused setting may be given only with its default value;"
        % (len(supported), len(refused)),
        "any other value stops start-up with exit code 1 and",
        "",
        "```",
        "Error: setting '<name>' (<flags>) is not supported by rgun yet",
        "```",
        "",
        "on stderr (`<flags>` are the setting's command-line flags joined by `/`, or",
        "`config file only`). rgun never ignores a setting silently.",
        "",
        "## Refused settings",
        "",
        "| setting | flags | why |",
        "|---|---|---|",
    ]
    for s in refused:
        flags = ", ".join("`%s`" % c for c in s["cli"]) if s["cli"] else "(config file only)"
        out.append("| `%s` | %s | %s |" % (s["name"], flags, _cell(REASONS[s["name"]])))
    out += [
        "",
        "## Worker classes",
        "",
        "rgun serves the `sync` and `gthread` worker classes (by name or as",
        "`gunicorn.workers.sync.SyncWorker` / `gunicorn.workers.gthread.ThreadWorker`). Any other",
        "`worker_class` stops start-up with exit code 1 and",
        "`Error: worker class '<name>' is not supported by rgun yet`.",
        "",
        "## Known behaviour differences",
        "",
        "Deliberate differences the conformance runner accepts (`conformance/known_differences.toml`):",
        "",
        "| case | field | reason |",
        "|---|---|---|",
    ]
    for d in known:
        out.append("| `%s` | `%s` | %s |" % (_cell(d.get("case", "")), _cell(d.get("field", "")),
                                             _cell(d.get("reason", ""))))
    if not known:
        out.append("| (none) | | |")
    out += ["", "## Other deliberate differences", "", "| area | difference |", "|---|---|"]
    for area, text in OTHER:
        out.append("| %s | %s |" % (_cell(area), _cell(text)))
    return "\n".join(out) + "\n"


def main():
    text = generate()
    if "--check" in sys.argv[1:]:
        try:
            with open(OUT) as f:
                current = f.read()
        except FileNotFoundError:
            current = None
        if current != text:
            print("docs/differences.md is stale: run python3 compat/gen_differences.py", file=sys.stderr)
            return 1
        return 0
    with open(OUT, "w") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
