# A typical Django production config.
import os

wsgi_app = "confsite.wsgi:application"
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = 3
worker_class = "gthread"
threads = 2
timeout = 120
graceful_timeout = 30
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "warning")
capture_output = False
preload_app = True
forwarded_allow_ips = "10.0.0.1,10.0.0.2"
proxy_allow_ips = "*"
raw_env = ["DJANGO_SETTINGS_MODULE=confsite.settings", "FOO=bar=baz"]
