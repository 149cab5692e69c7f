# Heroku-style: everything from the environment.
import os

bind = "0.0.0.0:" + os.environ.get("PORT", "5000")
workers = int(os.environ.get("WEB_CONCURRENCY", 2))
threads = int(os.environ.get("PYTHON_MAX_THREADS", 1))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 30))
keepalive = 5
