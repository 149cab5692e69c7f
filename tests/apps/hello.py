"""App module forms: `hello:app`, `hello` (-> application), `hello:create()`, `hello:create("x", 1)`."""


def _make(text):
    body = text.encode()

    def wsgi(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    return wsgi


app = _make("Hello, World!")
application = _make("from application")


def create(greeting="factory", times=0):
    return _make("%s:%r" % (greeting, times))


not_callable = 42


def returns_none():
    return None
