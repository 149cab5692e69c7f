"""Writes the seed corpus (corpus/head/) from gunicorn's vectors: each file is the 2-byte
config prefix that `rgun_h1_fuzz::setup` decodes (the vector's own settings, a trusted and
proxy-allowed peer) followed by the vector's wire bytes.

Usage: python3 make_corpus.py [VECTORS_DIR]   (default: ../../../../shared/gunicorn-vectors)
"""
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
VECTORS = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "..", "..", "shared", "gunicorn-vectors")
OUT = os.path.join(HERE, "corpus", "head")


def decode(raw):
    t = raw.replace(b"\n", b"")
    t = t.replace(b"\\r\\n", b"\r\n").replace(b"\\0", b"\x00").replace(b"\\n", b"\n").replace(b"\\t", b"\t")
    t = re.sub(rb"\\x([0-9a-fA-F]{2})", lambda m: bytes([int(m.group(1), 16)]), t)
    assert b"\\" not in t
    return t


def prefix(settings):
    a = int(bool(settings.get("permit_obsolete_folding")))
    a |= int(bool(settings.get("strip_header_spaces"))) << 1
    a |= int(bool(settings.get("casefold_http_method"))) << 2
    a |= int(bool(settings.get("permit_unconventional_http_method"))) << 3
    a |= {"drop": 0, "refuse": 1, "dangerous": 2}[settings.get("header_map", "drop")] << 5
    if any(k.startswith("limit_") for k in settings):
        a |= 0x80  # small limits
    b = {"off": 0, "v1": 1, "v2": 2, "auto": 3}[settings.get("proxy_protocol", "off")] | 4 | 8
    return bytes([a, b])


os.makedirs(OUT, exist_ok=True)
n = 0
for kind in ("valid", "invalid"):
    d = os.path.join(VECTORS, kind)
    for name in sorted(os.listdir(d)):
        if not name.endswith(".json"):
            continue
        spec = json.load(open(os.path.join(d, name)))
        data = decode(open(os.path.join(d, name[:-5] + ".http"), "rb").read())
        with open(os.path.join(OUT, f"{kind}_{name[:-5]}"), "wb") as f:
            f.write(prefix(spec["settings"]) + data)
        n += 1
# A few extra shapes the vectors lack: pipelining with bodies, 100-continue, tiny limits.
extra = {
    "pipeline_3": b"\x00\x0c" + b"POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
    + b"POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n"
    + b"GET /c HTTP/1.1\r\nConnection: close\r\n\r\n",
    "expect_100": b"\x00\x0cPUT /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
    "tiny_limits": b"\x00\x4cGET /abcdefgh HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n",
    "http10_keepalive": b"\x00\x0cGET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n",
    "tls_forwarded": b"\x00\x1cGET / HTTP/1.1\r\nX-Forwarded-Proto: http\r\nSCRIPT_NAME: /a\r\n\r\n",
    "untrusted_forwarded": b"\x00\x00GET / HTTP/1.1\r\nX-Forwarded-Proto: https\r\nA_B: 1\r\n\r\n",
}
for k, v in extra.items():
    with open(os.path.join(OUT, "extra_" + k), "wb") as f:
        f.write(v)
    n += 1
print(f"{n} seeds in {OUT}")
