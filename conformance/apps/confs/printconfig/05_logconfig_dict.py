logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"format": '{"t": "%(asctime)s", "msg": "%(message)s"}'}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}},
    "loggers": {"gunicorn.error": {"level": "INFO", "handlers": ["console"], "propagate": False},
                "gunicorn.access": {"level": "INFO", "handlers": ["console"], "propagate": False}},
}
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(D)s %({x-request-id}i)s'
