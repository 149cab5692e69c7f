"""Process-level settings that are naturally Python: ``daemon`` (gunicorn's double fork) and
the worker's switch to ``user``/``group`` (``initgroups``)."""

import os
import pwd
import sys

REDIRECT_TO = getattr(os, "devnull", "/dev/null")


def daemonize(enable_stdio_inheritance=False):
    """Double fork, ``setsid``, ``umask(0o22)``, stdio to /dev/null (spec 8.11)."""
    if "GUNICORN_FD" in os.environ:
        return
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    os.umask(0o22)
    if not enable_stdio_inheritance:
        os.closerange(0, 3)
        fd_null = os.open(REDIRECT_TO, os.O_RDWR)
        os.set_inheritable(fd_null, True)
        if fd_null != 0:
            os.dup2(fd_null, 0)
        os.dup2(fd_null, 1)
        os.dup2(fd_null, 2)
        return
    fd_null = os.open(REDIRECT_TO, os.O_RDWR)
    if fd_null != 0:
        os.close(0)
        os.dup2(fd_null, 0)
    for stream, expected in ((sys.stdout, 1), (sys.stderr, 2)):
        try:
            fd = stream.fileno()
            if fd == expected and stream.isatty():
                os.close(fd)
                os.dup2(fd_null, fd)
        except (AttributeError, ValueError, OSError):
            pass


def set_owner_process(uid, gid, initgroups=False):
    """The worker's switch to ``group`` then ``user``, in gunicorn's order (spec 8.14)."""
    if gid:
        username = None
        if uid:
            try:
                username = pwd.getpwuid(uid).pw_name
            except KeyError:
                initgroups = False
        if initgroups and username is not None:
            os.initgroups(username, gid)
        elif gid != os.getgid():
            os.setgid(gid)
    if uid and uid != os.getuid():
        os.setuid(uid)


def reexec(server, master_pid, fds, systemd):
    """SIGUSR2, in the forked child after ``pre_exec``: execute the original command line again
    with the environment as it was when the configuration was read, plus ``GUNICORN_PID`` and
    the listeners (``GUNICORN_FD``, or ``LISTEN_PID``/``LISTEN_FDS`` for systemd's sockets)."""
    environ = server.cfg.env_orig.copy()
    environ["GUNICORN_PID"] = str(master_pid)
    if systemd:
        environ["LISTEN_PID"] = str(os.getpid())
        environ["LISTEN_FDS"] = str(len(fds))
    else:
        environ["GUNICORN_FD"] = ",".join(str(fd) for fd in fds)
    for fd in fds:
        os.set_inheritable(fd, True)
    os.chdir(server.START_CTX["cwd"])
    os.execvpe(server.START_CTX[0], server.START_CTX["args"], environ)
