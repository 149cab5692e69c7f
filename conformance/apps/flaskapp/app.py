"""A small but realistic Flask application used by the conformance suite."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from flask import (Flask, Response, abort, jsonify, make_response, redirect,  # noqa: E402
                   render_template, request, send_file, session, stream_with_context,
                   url_for)
from werkzeug.middleware.dispatcher import DispatcherMiddleware  # noqa: E402

from common import big_payload, digest, environ_dump  # noqa: E402
from rawwsgi import raw_app  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
STATIC_FILE = os.path.join(HERE, "static", "report.txt")

app = Flask(__name__)
app.config["SECRET_KEY"] = os.environ.get("FLASK_SECRET_KEY", "conformance-not-secret")
app.config["MAX_CONTENT_LENGTH"] = 64 * 1024 * 1024

ITEMS = {1: {"id": 1, "name": "widget", "price": 9.5},
         2: {"id": 2, "name": "gadget", "price": 12.0},
         3: {"id": 3, "name": "gizmo \u00e9\u00e8 \u2603", "price": 0.5}}


@app.route("/__mark__")
def mark():
    request.environ["wsgi.errors"].write("__mark__ c=%s\n" % request.args.get("c", ""))
    return "mark %s" % request.args.get("c", "")


@app.route("/")
def index():
    return render_template("index.html", items=list(ITEMS.values()), user=session.get("user"))


@app.route("/api/items", methods=["GET", "POST"])
def items():
    if request.method == "POST":
        payload = request.get_json(silent=True)
        if not isinstance(payload, dict) or "name" not in payload:
            return jsonify(error="name required"), 422
        new = {"id": 100, "name": payload["name"], "price": payload.get("price", 0)}
        resp = jsonify(new)
        resp.status_code = 201
        resp.headers["Location"] = url_for("item", item_id=100)
        return resp
    limit = request.args.get("limit", type=int)
    data = list(ITEMS.values())[:limit]
    return jsonify(items=data, count=len(data))


@app.route("/api/items/<int:item_id>", methods=["GET", "PUT", "DELETE"])
def item(item_id):
    if item_id not in ITEMS:
        abort(404)
    if request.method == "DELETE":
        return "", 204
    if request.method == "PUT":
        payload = request.get_json(force=True, silent=True) or {}
        merged = dict(ITEMS[item_id], **payload)
        return jsonify(merged)
    return jsonify(ITEMS[item_id])


@app.route("/form", methods=["GET", "POST"])
def form():
    if request.method == "POST":
        name = request.form.get("name", "")
        tags = request.form.getlist("tag")
        if not name:
            return render_template("form.html", error="Name is required", tags=tags), 400
        return render_template("thanks.html", name=name, tags=tags)
    return render_template("form.html", error=None, tags=[])


@app.route("/cookies/set")
def set_cookie():
    resp = make_response(redirect(url_for("show_cookies")))
    for key, val in sorted(request.args.items()):
        resp.set_cookie(key, val, httponly=True, samesite="Lax")
    return resp


@app.route("/cookies/show")
def show_cookies():
    return jsonify(cookies=dict(sorted(request.cookies.items())))


@app.route("/cookies/delete")
def delete_cookie():
    resp = make_response("deleted")
    resp.delete_cookie("flavour")
    return resp


@app.route("/session/login", methods=["POST"])
def login():
    session["user"] = request.form.get("user", "anonymous")
    session["visits"] = 0
    return redirect(url_for("whoami"))


@app.route("/session/whoami")
def whoami():
    if "user" not in session:
        return jsonify(user=None), 401
    session["visits"] = session.get("visits", 0) + 1
    return jsonify(user=session["user"], visits=session["visits"])


@app.route("/session/logout")
def logout():
    session.clear()
    return redirect(url_for("index"), code=303)


@app.route("/redirect")
def redirect_home():
    return redirect(url_for("index"))


@app.route("/redirect/permanent")
def redirect_permanent():
    return redirect("/api/items?limit=1", code=301)


@app.route("/redirect/external")
def redirect_external():
    return redirect("https://example.com/landing?from=conformance", code=307)


@app.route("/abort/<int:code>")
def abort_code(code):
    abort(code)


@app.route("/boom")
def boom():
    raise RuntimeError("deliberate failure in /boom")


@app.route("/file")
def file_download():
    return send_file(STATIC_FILE, mimetype="text/plain", etag=True, last_modified=1700000000,
                     max_age=60)


@app.route("/file/attachment")
def file_attachment():
    return send_file(STATIC_FILE, as_attachment=True, download_name="r\u00e9port.txt",
                     last_modified=1700000000)


@app.route("/stream")
def stream():
    def gen():
        for i in range(5):
            yield "line %d\n" % i
    return Response(stream_with_context(gen()), mimetype="text/plain")


@app.route("/stream/json")
def stream_json():
    def gen():
        yield "["
        for i in range(50):
            yield ("," if i else "") + '{"n": %d}' % i
        yield "]"
    return Response(gen(), mimetype="application/json")


@app.route("/large")
def large():
    size = request.args.get("size", 10 * 1024 * 1024, type=int)
    return Response(big_payload(size), mimetype="application/octet-stream")


@app.route("/large/stream")
def large_stream():
    size = request.args.get("size", 10 * 1024 * 1024, type=int)
    data = big_payload(size)

    def gen():
        for i in range(0, len(data), 256 * 1024):
            yield data[i:i + 256 * 1024]
    return Response(gen(), mimetype="application/octet-stream")


@app.route("/upload", methods=["POST"])
def upload():
    files = {}
    for name, storage in request.files.items(multi=True):
        blob = storage.read()
        files[name] = {"filename": storage.filename, "size": len(blob), "sha256": digest(blob),
                       "content_type": storage.content_type}
    return jsonify(files=files, form=dict(sorted(request.form.items())))


@app.route("/upload/raw", methods=["POST", "PUT"])
def upload_raw():
    total = 0
    h = __import__("hashlib").sha256()
    while True:
        chunk = request.stream.read(65536)
        if not chunk:
            break
        total += len(chunk)
        h.update(chunk)
    return jsonify(size=total, sha256=h.hexdigest(),
                   content_length=request.headers.get("Content-Length"),
                   transfer_encoding=request.headers.get("Transfer-Encoding"))


@app.route("/echo/<path:sub>")
def echo(sub):
    return jsonify(sub=sub, path=request.path, full_path=request.full_path,
                   args=sorted(request.args.items(multi=True)), script_root=request.script_root,
                   url=request.url, method=request.method)


@app.route("/env", methods=["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def env():
    return Response(__import__("common").dumps(environ_dump(request.environ)),
                    mimetype="application/json")


@app.route("/headers")
def headers():
    return jsonify(headers=[[k, v] for k, v in request.headers.items()])


@app.route("/conditional")
def conditional():
    resp = make_response("conditional body\n" * 20)
    resp.set_etag("v1-conditional")
    resp.last_modified = 1700000000
    resp.cache_control.public = True
    resp.cache_control.max_age = 300
    return resp.make_conditional(request)


@app.route("/status/<int:code>")
def status(code):
    return Response("status %d\n" % code if code not in (204, 304) else "", status=code,
                    headers={"X-Status": str(code)})


@app.route("/slow")
def slow():
    time.sleep(0.2)
    return "slept"


@app.route("/template/unicode")
def unicode_page():
    return render_template("unicode.html", word=request.args.get("w", "\u00fcber"))


@app.errorhandler(404)
def not_found(err):
    if request.path.startswith("/api/"):
        return jsonify(error="not found", path=request.path), 404
    return render_template("404.html", path=request.path), 404


@app.errorhandler(500)
def server_error(err):
    return render_template("500.html"), 500


app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/raw": raw_app})
application = app
