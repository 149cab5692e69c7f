"""Hold N idle connections open against a server (S9); run as `python -m lib.idle PORT N SECONDS`.

Half the connections send one keep-alive GET and then stay idle; the other half connect and
never send anything. A connection the server closes is reopened (at most REOPEN_PER_S a second),
so about N idle connections stay open while the load runs. Prints `READY <open>` once the first
wave is up, then one JSON line at the end (with the fewest open, in all and of each half). Bounded by SECONDS; exits on SIGTERM too.
"""
import errno
import json
import selectors
import signal
import socket
import sys
import time

REOPEN_PER_S = 200


def main():
    port, n, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    sel = selectors.DefaultSelector()
    req = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    stats = {"opened": 0, "reopened": 0, "closed_by_server": 0, "connect_failed": 0, "answered": 0}
    conns = {}  # sock -> kind ("req" | "silent"), state
    stop = [False]
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))

    def open_one(kind):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        except OSError:
            stats["connect_failed"] += 1
            s.close()
            return False
        conns[s] = {"kind": kind, "state": "connecting", "t": time.time()}
        sel.register(s, selectors.EVENT_WRITE | selectors.EVENT_READ)
        stats["opened"] += 1
        return True

    def drop(s):
        try:
            sel.unregister(s)
        except (KeyError, ValueError):
            pass
        s.close()
        return conns.pop(s, None)

    for i in range(n):
        open_one("req" if i % 2 == 0 else "silent")
    t_start = time.time()
    deadline = t_start + seconds
    ready_said = False
    pending = []  # kinds to reopen
    budget_t, budget = time.time(), REOPEN_PER_S
    samples = []
    next_sample = time.time() + 1
    while not stop[0] and time.time() < deadline:
        for key, ev in sel.select(timeout=0.1):
            s = key.fileobj
            c = conns.get(s)
            if c is None:
                continue
            if c["state"] == "connecting":
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err and err != errno.EINPROGRESS:
                    stats["connect_failed"] += 1
                    drop(s)
                    pending.append(c["kind"])
                    continue
                c["state"] = "open"
                sel.modify(s, selectors.EVENT_READ)
                if c["kind"] == "req":
                    try:
                        s.send(req)
                    except OSError:
                        pass
                continue
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if data:
                stats["answered"] += 1
                continue
            stats["closed_by_server"] += 1
            drop(s)
            pending.append(c["kind"])
        now = time.time()
        # connections stuck in connect (full backlog) for over 3 s count as failed
        for s, c in list(conns.items()):
            if c["state"] == "connecting" and now - c["t"] > 3:
                stats["connect_failed"] += 1
                drop(s)
                pending.append(c["kind"])
        if now - budget_t >= 1:
            budget_t, budget = now, REOPEN_PER_S
        while pending and budget > 0:
            budget -= 1
            if open_one(pending.pop()):
                stats["reopened"] += 1
        n_open = sum(1 for c in conns.values() if c["state"] == "open")
        if not ready_said and (n_open >= n or now - t_start > 5):
            print(f"READY {n_open}", flush=True)
            ready_said = True
        if now >= next_sample:
            per_kind = {"req": 0, "silent": 0}
            for c in conns.values():
                if c["state"] == "open":
                    per_kind[c["kind"]] += 1
            samples.append((n_open, per_kind["req"], per_kind["silent"]))
            next_sample = now + 1
    stats["open_at_end"] = sum(1 for c in conns.values() if c["state"] == "open")
    stats["open_min"] = min(s[0] for s in samples) if samples else stats["open_at_end"]
    # the half that sent one keep-alive request, and the half that never sends
    stats["open_min_req"] = min(s[1] for s in samples) if samples else None
    stats["open_min_silent"] = min(s[2] for s in samples) if samples else None
    print(json.dumps(stats), flush=True)
    for s in list(conns):
        drop(s)


if __name__ == "__main__":
    main()
