"""Processes: start servers in their own session, stop them by PID, and read /proc.

Everything started here is recorded in STARTED; stop_all() (called from main's finally)
stops each by PID: SIGTERM to the leader, then SIGKILL, one PID at a time, to whatever is
left of its tree. Nothing is ever killed by name.
"""
import os
import signal
import socket
import subprocess
import time

CLK = os.sysconf("SC_CLK_TCK")
STARTED = []  # Popen objects of every server started by this run


def _stat(pid):
    """(ppid, sid, utime+stime ticks, cutime+cstime ticks, starttime, threads) or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rindex(b")") + 2:].split()
    # rest[0] is field 3 (state); field n is rest[n - 3]
    return (int(rest[1]), int(rest[3]), int(rest[11]) + int(rest[12]), int(rest[13]) + int(rest[14]),
            int(rest[19]), int(rest[17]))


def all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def tree(root):
    """PIDs of `root` and its descendants (by parent link or by session id)."""
    stats = {}
    for pid in all_pids():
        s = _stat(pid)
        if s:
            stats[pid] = s
    if root not in stats:
        return []
    out = {root}
    changed = True
    while changed:
        changed = False
        for pid, s in stats.items():
            if pid not in out and (s[0] in out or s[1] == root):
                out.add(pid)
                changed = True
    return sorted(out)


def cpu_seconds(pids):
    tot = 0
    for pid in pids:
        s = _stat(pid)
        if s:
            tot += s[2]
    return tot / CLK


def threads(pids):
    tot = 0
    for pid in pids:
        s = _stat(pid)
        if s:
            tot += s[5]
    return tot


def pss_mb(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def memory(pids):
    """Summed PSS and RSS (MB) and the per-process PSS list."""
    per = [round(pss_mb(p), 1) for p in pids]
    return sum(per), sum(rss_mb(p) for p in pids), per


def descendants_of_self():
    return set(tree(os.getpid()))


class Foreign:
    """CPU used outside the benchmark during a window, from whole-machine accounting.

    foreign = (user + nice + system jiffies of the machine, from /proc/stat)
              - (server tree CPU + load-generator CPU + this harness's own CPU).
    Machine totals also catch short-lived processes (compiler jobs, test runs) that per-process
    sampling misses. irq/softirq are in the machine total because a task's stime includes the
    softirq work done in its context (loopback traffic); steal is reported separately.
    """

    def __init__(self):
        self.t0 = time.time()
        self.m0 = self._machine()
        self.self0 = self._self()

    @staticmethod
    def _machine():
        with open("/proc/stat") as f:
            v = list(map(int, f.readline().split()[1:]))
        return v[0] + v[1] + v[2] + v[5] + v[6], (v[7] if len(v) > 7 else 0)

    @staticmethod
    def _self():
        import resource
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    def finish(self, server_cpu_s, client_cpu_s):
        """(foreign % of one core, steal % of one core)."""
        m1 = self._machine()
        dt = max(time.time() - self.t0, 1e-6)
        ours = server_cpu_s + client_cpu_s + (self._self() - self.self0)
        foreign = (m1[0] - self.m0[0]) / CLK - ours
        return max(0.0, foreign) / dt * 100, (m1[1] - self.m0[1]) / CLK / dt * 100


def machine_busy():
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        v = list(map(int, f.readline().split()[1:]))
    return sum(v) - v[3] - v[4], sum(v)


def port_open(port):
    s = socket.socket()
    s.settimeout(0.3)
    try:
        s.connect(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def start(argv, cwd, env, log_path):
    log = open(log_path, "ab")
    p = subprocess.Popen(argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    STARTED.append(p)
    return p


def _alive(pid):
    s = _stat(pid)
    if s is None:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        return data[data.rindex(b")") + 2:data.rindex(b")") + 3] != b"Z"
    except OSError:
        return False


def stop(p, port=None, grace=6.0):
    """SIGTERM the leader; after `grace` s SIGKILL each remaining PID of its tree, one by one."""
    pids = tree(p.pid) or [p.pid]
    if p.poll() is None:
        try:
            os.kill(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.time() + grace
    while time.time() < deadline:
        p.poll()
        if not any(_alive(x) for x in pids + tree(p.pid)):
            break
        time.sleep(0.1)
    for pid in set(pids + tree(p.pid)):
        if _alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    try:
        p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    if p in STARTED:
        STARTED.remove(p)
    if port:
        for _ in range(50):
            if not port_open(port):
                break
            time.sleep(0.1)


def stop_all():
    for p in list(STARTED):
        stop(p, grace=3.0)


def run_bounded(argv, timeout, **kw):
    """Run a client to completion (bounded); returns (rc, stdout, stderr, cpu_seconds)."""
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()  # our own child, by PID
        out, err = p.communicate()
    # p is reaped by communicate(); its CPU is in RUSAGE_CHILDREN deltas (see loadgen)
    return p.returncode, out.decode(errors="replace"), err.decode(errors="replace")
