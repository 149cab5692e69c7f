"""Small Flask app: one route returning JSON (perf-anchors §4.3)."""
from flask import Flask, jsonify

app = Flask(__name__)


@app.route("/")
def index():
    return jsonify(message="Hello, World!")
