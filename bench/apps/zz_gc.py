import gc, os, sys, time
from flaskapp import app as flask_app
N = [0]; T = {}; C = [0, 0, 0]; st = [0]
def cb(phase, info):
    g = info["generation"]
    if phase == "start":
        st[0] = time.perf_counter_ns()
    else:
        C[g] += 1; T[g] = T.get(g, 0) + time.perf_counter_ns() - st[0]
gc.callbacks.append(cb)
def app(environ, start_response):
    N[0] += 1
    if N[0] % 50000 == 0:
        print("GC", os.getpid(), N[0], C, {k: round(v / N[0], 2) for k, v in T.items()}, "ns/req; objs", len(gc.get_objects()), file=sys.stderr, flush=True)
    return flask_app(environ, start_response)
