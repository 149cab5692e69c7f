def on_starting(server):
    server.log.info("starting")


def when_ready(server):
    pass


def post_fork(server, worker):
    pass


def pre_request(worker, req):
    worker.log.debug("%s %s", req.method, req.path)


def post_request(worker, req):
    pass


def worker_exit(server, worker):
    pass


def nworkers_changed(server, new_value, old_value):
    pass
