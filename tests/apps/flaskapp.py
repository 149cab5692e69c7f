"""A small Flask app for the rgun vs gunicorn comparison."""

from flask import Flask, Response, jsonify, request

app = Flask(__name__)


@app.route("/")
def index():
    return jsonify(message="hello", path=request.path, args=request.args)


@app.route("/text")
def text():
    return "plain text", 200, {"X-Flask": "yes"}


@app.route("/stream")
def stream():
    def gen():
        for i in range(3):
            yield f"chunk {i}\n"

    return Response(gen(), mimetype="text/plain")


@app.route("/echo", methods=["POST"])
def echo():
    return Response(request.get_data(), mimetype="application/octet-stream")


@app.route("/redirect")
def redirect():
    from flask import redirect as r
    return r("/text")
