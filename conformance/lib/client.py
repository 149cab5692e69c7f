"""Raw-socket HTTP/1.x client: sends exact bytes, records exactly what came back."""
import hashlib
import socket
import time

RECV = 65536
BODY_INLINE_LIMIT = 64 * 1024


class Target:
    """Where a server listens: ('tcp', host, port) or ('unix', path)."""

    def __init__(self, kind, addr):
        self.kind = kind
        self.addr = addr

    def connect(self, timeout=10.0):
        if self.kind == "unix":
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(self.addr)
        return s

    def __repr__(self):
        return "%s:%s" % (self.kind, self.addr)


class Closed(Exception):
    pass


class Reader:
    def __init__(self, sock, deadline):
        self.sock = sock
        self.buf = b""
        self.eof = False
        self.reset = False
        self.deadline = deadline
        self.transcript = bytearray()   # every byte received
        self.done_at = 0                # transcript offset after the last complete response

    def _fill(self):
        if self.eof:
            raise Closed()
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("case deadline exceeded")
        self.sock.settimeout(min(remaining, 15.0))
        try:
            data = self.sock.recv(RECV)
        except (ConnectionResetError, BrokenPipeError):
            self.eof = self.reset = True
            raise Closed()
        if not data:
            self.eof = True
            raise Closed()
        self.buf += data
        self.transcript += data

    def until(self, marker, limit=1 << 20):
        while marker not in self.buf:
            if len(self.buf) > limit:
                raise ValueError("header block too large")
            self._fill()
        head, _, self.buf = self.buf.partition(marker)
        return head

    def exact(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def to_eof(self):
        try:
            while True:
                self._fill()
        except Closed:
            pass
        data, self.buf = self.buf, b""
        return data


def body_summary(body):
    if len(body) <= BODY_INLINE_LIMIT:
        return body.decode("latin-1")
    return "<%d bytes sha256=%s>" % (len(body), hashlib.sha256(body).hexdigest())


def read_response(reader, method):
    """Read one response; returns a dict.  1xx interim responses are collected."""
    interim = []
    while True:
        head = reader.until(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status_line = lines[0].decode("latin-1")
        headers = []
        for raw in lines[1:]:
            name, _, value = raw.partition(b":")
            headers.append([name.decode("latin-1"), value.strip().decode("latin-1")])
        parts = status_line.split(" ", 2)
        code = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        if 100 <= code < 200 and code != 101:
            interim.append({"status": status_line, "headers": headers})
            continue
        break
    hmap = {}
    for k, v in headers:
        hmap.setdefault(k.lower(), []).append(v)
    chunks = None
    if method == "HEAD" or code in (204, 304) or 100 <= code < 200:
        body, framing = b"", "none"
    elif "chunked" in ",".join(hmap.get("transfer-encoding", [])).lower():
        framing, body, chunks = "chunked", b"", []
        while True:
            size_line = reader.until(b"\r\n")
            size = int(size_line.split(b";")[0].strip(), 16)
            chunks.append(size)
            if size == 0:
                trailer = reader.until(b"\r\n")
                while trailer:
                    trailer = reader.until(b"\r\n")
                break
            body += reader.exact(size)
            if reader.exact(2) != b"\r\n":
                raise ValueError("bad chunk terminator")
    elif "content-length" in hmap:
        framing = "length"
        body = reader.exact(int(hmap["content-length"][-1]))
    else:
        framing = "eof"
        body = reader.to_eof()
    conn = ",".join(hmap.get("connection", [])).lower()
    version = status_line.split(" ", 1)[0]
    if framing == "eof":
        keep = False
    elif "close" in conn:
        keep = False
    elif "keep-alive" in conn or "upgrade" in conn:
        keep = True
    else:
        keep = version == "HTTP/1.1"
    if chunks is not None and len(chunks) > 40:
        chunks = "%d chunks" % len(chunks)
    return {"status": status_line, "headers": headers, "body": body, "framing": framing,
            "chunks": chunks, "interim": interim, "keep": keep}


def send_all(sock, data, slow=False):
    if not slow:
        sock.sendall(data)
        return
    # slow client: a few bytes at a time with short pauses (bounded: <= 60 pieces)
    step = max(1, len(data) // 60 + 1)
    for i in range(0, len(data), step):
        sock.sendall(data[i:i + step])
        time.sleep(0.005)


def exchange(target, sends, methods, shut_wr=False, slow=False, probe_path="/__mark__?c=probe",
             timeout=60.0, eof_wait=5.0):
    """Send raw request bytes and read the expected responses.

    sends   -- list of bytes (sent in order; between items nothing is read) or
               ("read", n) to read n responses before continuing.
    methods -- request method for each expected response (HEAD has no body).
    Returns a dict: responses, end (how the connection ended), extra bytes, error.
    """
    deadline = time.monotonic() + timeout
    result = {"responses": [], "end": None, "extra": "", "error": None}
    sock = target.connect()
    reader = Reader(sock, deadline)
    methods = list(methods)
    try:
        for item in sends:
            if isinstance(item, tuple) and item[0] == "read":
                for _ in range(item[1]):
                    result["responses"].append(read_response(reader, methods.pop(0)))
                    reader.done_at = len(reader.transcript) - len(reader.buf)
                continue
            try:
                send_all(sock, item, slow)
            except (BrokenPipeError, ConnectionResetError):
                result["error"] = "send failed"
                break
        if shut_wr:
            sock.shutdown(socket.SHUT_WR)
        while methods:
            result["responses"].append(read_response(reader, methods.pop(0)))
            reader.done_at = len(reader.transcript) - len(reader.buf)
        last = result["responses"][-1] if result["responses"] else None
        if reader.eof:
            result["end"] = "reset" if reader.reset else "closed"
        else:
            wait = eof_wait
            if last is not None and last["keep"] and not shut_wr and probe_path:
                # The server says the connection stays open: prove it with a probe
                # (Connection: close), then read everything up to EOF.
                probe = ("GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n" % probe_path).encode()
                try:
                    sock.sendall(probe)
                    wait = 15.0
                    result["probe"] = True
                except OSError:
                    result["probe"] = "send failed"
            reader.deadline = min(deadline, time.monotonic() + wait)
            try:
                reader.to_eof_strict()
                result["end"] = "reset" if reader.reset else "closed"
            except socket.timeout:
                result["end"] = "open (no EOF after %.0fs)" % wait
        tail = bytes(reader.transcript[reader.done_at:])
        if tail:
            result["extra"] = body_summary(tail)
    except Closed:
        result["end"] = "reset" if reader.reset else "closed"
        result["error"] = "connection closed while reading response %d" % len(result["responses"])
        partial = bytes(reader.transcript[reader.done_at:])
        if partial:
            result["extra"] = "<partial> " + body_summary(partial)
    except socket.timeout:
        result["error"] = "timeout reading response %d" % len(result["responses"])
        result["end"] = "timeout"
    except ValueError as exc:
        result["error"] = "malformed response: %s" % exc
    finally:
        sock.close()
    return result


def _to_eof_strict(self):
    """Read to EOF; socket.timeout propagates (connection still open)."""
    try:
        while True:
            self._fill()
    except Closed:
        pass
    data, self.buf = self.buf, b""
    return data


Reader.to_eof_strict = _to_eof_strict


def simple_request(target, method, path, headers=(), body=b"", version="HTTP/1.1"):
    """Build request bytes with Host and Connection: close defaults."""
    lines = ["%s %s %s" % (method, path, version)]
    names = {h[0].lower() for h in headers}
    if "host" not in names:
        lines.append("Host: localhost")
    for k, v in headers:
        lines.append("%s: %s" % (k, v))
    if body and "content-length" not in names and "transfer-encoding" not in names:
        lines.append("Content-Length: %d" % len(body))
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
    return raw + body
