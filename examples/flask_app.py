"""The example Flask app the README serves: a JSON API, a streamed response, an upload echo."""

from flask import Flask, Response, jsonify, request

app = Flask(__name__)


@app.route("/")
def index():
    return jsonify(message="Hello from rgun", path=request.path)


@app.route("/stream")
def stream():
    def gen():
        for i in range(5):
            yield f"chunk {i}\n"

    return Response(gen(), mimetype="text/plain")


@app.route("/echo", methods=["POST"])
def echo():
    return Response(request.get_data(), mimetype="application/octet-stream")
