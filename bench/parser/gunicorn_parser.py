"""The same measurement for gunicorn 27.0.1's pure-Python parser, for comparison with
`cargo run --release` here: RequestParser (http_parser="python") over one request's bytes,
the body read in full, and the environ variables built the way `gunicorn.http.wsgi.create`
builds them. Rates are per CPU second of this process (time.process_time).

Usage: .venv/bin/python bench/parser/gunicorn_parser.py [--seconds S]
"""
import sys
import time
from urllib.parse import unquote_to_bytes

from gunicorn.config import Config
from gunicorn.http.parser import RequestParser


BROWSER = (
    b"GET /search?q=rust+http+parser&source=hp&ei=abc123 HTTP/1.1\r\n"
    b"Host: www.example.com\r\n"
    b"Connection: keep-alive\r\n"
    b'sec-ch-ua: "Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99"\r\n'
    b"sec-ch-ua-mobile: ?0\r\n"
    b'sec-ch-ua-platform: "Linux"\r\n'
    b"Upgrade-Insecure-Requests: 1\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7\r\n"
    b"Sec-Fetch-Site: same-origin\r\n"
    b"Sec-Fetch-Mode: navigate\r\n"
    b"Sec-Fetch-User: ?1\r\n"
    b"Sec-Fetch-Dest: document\r\n"
    b"Referer: https://www.example.com/\r\n"
    b"Accept-Encoding: gzip, deflate, br, zstd\r\n"
    b"Accept-Language: en-US,en;q=0.9,fr;q=0.8\r\n"
    b"Cookie: sessionid=8f14e45fceea167a5a36dedd4bea2543; csrftoken=c9f0f895fb98ab9159f51fd0297e236d; _ga=GA1.2.1234567890.1700000000\r\n"
    b"\r\n"
)
CURL = b"GET /api/v1/items/42 HTTP/1.1\r\nHost: localhost:8000\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n"
POST_FORM = (b"POST /login HTTP/1.1\r\nHost: localhost:8000\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n"
             b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 41\r\n\r\n"
             b"username=alice&password=correct+horse+bat")
CHUNKED = (b"POST /upload HTTP/1.1\r\nHost: localhost:8000\r\nTransfer-Encoding: chunked\r\n"
           b"Content-Type: application/octet-stream\r\n\r\n"
           b"10\r\n0123456789abcdef\r\n10\r\n0123456789abcdef\r\n8;name=value\r\n01234567\r\n0\r\n\r\n")
THIRTY = (b"GET /api/v2/orders/2024/11/28/items?limit=50&offset=100&sort=-created HTTP/1.1\r\n"
          b"Host: api.internal.example.com\r\n"
          + b"".join(b"X-Custom-Header-%02d: value-%02d-0123456789abcdefghijklmnopqrstuvwxyz\r\n" % (i, i)
                     for i in range(29))
          + b"\r\n")

CFG = Config()
CFG.set("http_parser", "python")  # never gunicorn_h1c, even if installed


def environ(req):
    env = {
        "REQUEST_METHOD": req.method,
        "RAW_URI": req.uri,
        "PATH_INFO": unquote_to_bytes(req.path).decode("latin-1"),
        "QUERY_STRING": req.query,
        "SERVER_PROTOCOL": "HTTP/%s" % ".".join(str(v) for v in req.version),
        "wsgi.url_scheme": req.scheme,
    }
    for name, value in req.headers:
        if name == "CONTENT-TYPE":
            env["CONTENT_TYPE"] = value
            continue
        if name == "CONTENT-LENGTH":
            env["CONTENT_LENGTH"] = value
            continue
        key = "HTTP_" + name.replace("-", "_")
        if key in env:
            value = "%s,%s" % (env[key], value)
        env[key] = value
    return env


def one(data):
    for req in RequestParser(CFG, iter([data]), ("127.0.0.1", 1)):
        req.body.read()
        environ(req)
        return


def main():
    seconds = 1.0
    if "--seconds" in sys.argv:
        seconds = float(sys.argv[sys.argv.index("--seconds") + 1])
    print(f"gunicorn {__import__('gunicorn').__version__} Python parser + body + environ, "
          f"{seconds}s of CPU time per case")
    print()
    print("| request | bytes | requests/s | us/request |")
    print("|---|---:|---:|---:|")
    for name, data in [("curl GET (3 headers)", CURL), ("browser GET (16 headers)", BROWSER),
                       ("30 headers", THIRTY), ("POST form, 41-byte body", POST_FORM),
                       ("POST chunked, 3 chunks", CHUNKED)]:
        for _ in range(200):
            one(data)
        n = 0
        t0 = time.process_time()
        while time.process_time() - t0 < seconds:
            for _ in range(100):
                one(data)
            n += 100
        rate = n / (time.process_time() - t0)
        print(f"| {name} | {len(data)} | {rate:.0f} | {1e6 / rate:.1f} |")


if __name__ == "__main__":
    main()
