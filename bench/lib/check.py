"""Check a server's response body before measuring (method rule of perf-anchors §5.2)."""
import http.client
import json

from .scenarios import Check


def _chunks(n, size=16384):
    left = n
    while left > 0:
        k = min(size, left)
        yield b"x" * k
        left -= k


def check(port, c: Check, timeout=10.0):
    """Returns None if the response is right, else a short description of what was wrong."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {}
        body = None
        if c.method == "POST":
            headers["Content-Type"] = "application/octet-stream"
            if c.chunked:
                body = _chunks(c.body_len)
                conn.request("POST", c.path, body=body, headers=headers, encode_chunked=True)
            else:
                conn.request("POST", c.path, body=b"x" * c.body_len, headers=headers)
        else:
            conn.request("GET", c.path, headers=headers)
        r = conn.getresponse()
        data = r.read()
    except Exception as e:  # noqa: BLE001
        return f"request failed: {e!r}"[:200]
    finally:
        conn.close()
    if r.status != 200:
        return f"status {r.status}: {data[:80]!r}"
    if c.expect == "exact" and data != c.value:
        return f"body {data[:60]!r} != {c.value[:60]!r}"
    if c.expect == "length" and len(data) != c.value:
        return f"body length {len(data)} != {c.value}"
    if c.expect == "contains" and c.value not in data:
        return f"body lacks {c.value!r}"
    if c.expect == "json":
        try:
            if json.loads(data) != c.value:
                return f"json {data[:80]!r}"
        except ValueError:
            return f"not json: {data[:80]!r}"
    return None
