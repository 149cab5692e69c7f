"""Command-line cases: --print-config/--check-config on real-world-style config files,
and startup errors (exit code + normalised output)."""
import glob
import os
import re
import shlex
import signal
import subprocess
from concurrent.futures import ThreadPoolExecutor

from .compare import diff
from .matrix import APPS, APPS_DIR, CONFS
from .normalise import ERR_PREFIX, Normaliser, cli_text

FLASK = APPS["flask"]["cwd"]
DJANGO = APPS["django"]["cwd"]
AREA = "cli"


class CliCase:
    def __init__(self, name, argv, cwd=FLASK, env=None, server=False, area=AREA):
        self.name = name
        self.argv = argv
        self.cwd = cwd
        self.env = env or {}
        self.server = server          # starts an arbiter: bind an ephemeral port, wait for exit
        self.area = area
        self.case_id = "cli/%s" % name


def _cases():
    cases = []
    for path in sorted(glob.glob(os.path.join(CONFS, "printconfig", "*.py"))):
        name = os.path.basename(path)[:-3]
        cwd, app = (DJANGO, "confsite.wsgi:application") if "django" in name else (FLASK, "app:app")
        env = {"DJANGO_SETTINGS_MODULE": "confsite.settings"} if "django" in name else {}
        cases.append(CliCase("print_config.%s" % name, ["-c", path, "--print-config", app], cwd, env))
        cases.append(CliCase("check_config.%s" % name, ["-c", path, "--check-config", app], cwd, env))
    cases += [
        CliCase("print_config.defaults", ["--print-config", "app:app"]),
        CliCase("print_config.hooks_conf", ["-c", os.path.join(CONFS, "hooks.conf.py"), "--print-config", "app:app"]),
        CliCase("print_config.forwarded_conf", ["-c", os.path.join(CONFS, "forwarded.conf.py"), "--print-config", "app:app"]),
        CliCase("print_config.cli_flags", ["-w", "3", "-k", "gthread", "--threads", "8", "-b", "127.0.0.1:9000",
                                           "-b", "unix:/tmp/x.sock", "--access-logfile", "-", "--log-level", "debug",
                                           "-e", "A=1", "-e", "B=two", "--forwarded-allow-ips", "*",
                                           "--limit-request-line", "0", "--print-config", "app:app"]),
        CliCase("print_config.cmd_args_env_precedence",
                ["-c", os.path.join(CONFS, "printconfig", "09_cmd_args_env.py"), "--timeout", "60", "--print-config", "app:app"],
                env={"GUNICORN_CMD_ARGS": "--workers 5 --timeout 45 --keep-alive 7"}),
        CliCase("print_config.web_concurrency_env", ["--print-config", "app:app"], env={"WEB_CONCURRENCY": "6"}),
        CliCase("print_config.wsgi_app_setting", ["-c", os.path.join(CONFS, "printconfig", "03_django_prod.py"), "--print-config"],
                DJANGO, {"DJANGO_SETTINGS_MODULE": "confsite.settings"}),
        CliCase("check_config.ok_flask", ["--check-config", "app:app"]),
        CliCase("check_config.ok_django", ["--check-config", "confsite.wsgi:application"], DJANGO,
                {"DJANGO_SETTINGS_MODULE": "confsite.settings"}),
        CliCase("check_config.ok_factory_default_name", ["--check-config", "app"]),
        CliCase("errors.version", ["--version"]),
        CliCase("errors.help", ["--help"]),
        CliCase("errors.bad_flag", ["--no-such-flag", "app:app"]),
        CliCase("errors.ambiguous_flag", ["--log", "debug", "app:app"]),
        CliCase("errors.bad_int", ["--workers", "abc", "app:app"]),
        CliCase("errors.bad_choice_value", ["--log-level", "loud", "--print-config", "app:app"]),
        CliCase("errors.no_app", []),
        CliCase("errors.no_app_check_config", ["--check-config"]),
        CliCase("errors.missing_module_check", ["--check-config", "nosuchmodule:app"]),
        CliCase("errors.missing_attribute_check", ["--check-config", "app:nope"]),
        CliCase("errors.not_callable_check", ["--check-config", "app:STATIC_FILE"]),
        CliCase("errors.bad_app_syntax_check", ["--check-config", "app:app("]),
        CliCase("errors.missing_config_file", ["-c", "/nonexistent/gunicorn.conf.py", "app:app"]),
        CliCase("errors.config_file_python_module", ["-c", "python:no.such.module", "app:app"]),
        CliCase("errors.bad_worker_class_check", ["-k", "nosuch.Worker", "--check-config", "app:app"]),
        CliCase("errors.missing_module_start", ["nosuchmodule:app"], server=True),
        CliCase("errors.missing_attribute_start", ["app:nope"], server=True),
        CliCase("errors.bad_worker_class_start", ["-k", "nosuch.Worker", "app:app"], server=True),
        CliCase("errors.bad_bind_start", ["-b", "256.256.256.256:1", "app:app"], server=True),
    ]
    return cases


CLI_CASES = _cases()


def _role_split_text(text, pid0):
    """For server-starting cases: split error-log lines by process (master first)."""
    lines = text.splitlines()
    master_pid = pid0
    for line in lines:
        m = re.search(r"Listening at: .* \((\d+)\)", line)
        if m:
            master_pid = int(m.group(1))
            break
    else:
        for line in lines:
            m = ERR_PREFIX.match(line)
            if m:
                master_pid = int(m.group(1))
                break
    master, worker, other = [], [], []
    for line in lines:
        m = ERR_PREFIX.match(line)
        if not m:
            other.append(line)   # tracebacks / bare prints: their interleaving with the other process races
        elif int(m.group(1)) == master_pid:
            master.append(line)
        else:
            worker.append(line)
    return master, worker, other


def _run_one(case, command, tmpdir):
    argv = shlex.split(command) + case.argv
    if case.server:
        argv = shlex.split(command) + ["-b", "127.0.0.1:0", "--no-control-socket"] + case.argv
        if any(a == "-b" for a in case.argv):
            argv = shlex.split(command) + ["--no-control-socket"] + case.argv
    env = {k: v for k, v in os.environ.items() if k not in ("GUNICORN_CMD_ARGS", "WEB_CONCURRENCY")}
    env.update(case.env)
    env["PYTHONHASHSEED"] = "0"
    proc = subprocess.Popen(argv, cwd=case.cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=90)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=10)
        code = "still running after 90s (killed)"
    out = out.decode("utf-8", "replace")
    err = err.decode("utf-8", "replace")
    pids = {proc.pid} | {int(m.group(1)) for m in (ERR_PREFIX.match(l) for l in err.splitlines()) if m}
    pids |= {int(p) for p in re.findall(r"pid:? ?(\d+)", err)}
    norm = Normaliser(tmpdir, None, pids, APPS_DIR)
    obs = {"exit_code": code, "stdout": [cli_text(l, tmpdir) for l in out.splitlines()]}
    if case.server:
        master, worker, other = _role_split_text(err, proc.pid)
        obs["master_log"] = [cli_text(l) for l in norm.error_log(master)]
        obs["worker_log"] = [cli_text(l) for l in norm.error_log(worker)]
        obs["log"] = [cli_text(l) for l in norm.error_log(other)]
    else:
        obs["stderr"] = [cli_text(l) for l in norm.error_log(err.splitlines())]
    return obs


def run_cli_cases(cases, commands, tmproot):
    from .engine import Outcome
    outcomes = []

    def one(item):
        idx, case = item
        results = {}
        for role, letter in (("baseline", "b"), ("candidate", "c")):
            tmp = os.path.join(tmproot, "cli%03d-%s" % (idx, letter))
            os.makedirs(tmp, exist_ok=True)
            results[role] = _run_one(case, commands[role], tmp)
        return Outcome(case.case_id, case.area, "cli", diff(results["baseline"], results["candidate"]),
                       results["baseline"], results["candidate"])

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(one, enumerate(cases)))
    return outcomes
