# Used together with GUNICORN_CMD_ARGS and explicit CLI flags (precedence check).
workers = 2
timeout = 10
loglevel = "debug"
