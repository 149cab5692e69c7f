"""The server matrix: app x worker x config."""
import os
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APPS_DIR = os.path.join(ROOT, "apps")
CONFS = os.path.join(APPS_DIR, "confs")

APPS = {
    "flask": {"cwd": os.path.join(APPS_DIR, "flaskapp"), "appspec": "app:app", "env": {}},
    "django": {"cwd": os.path.join(APPS_DIR, "djangoapp"), "appspec": "confsite.wsgi:application",
               "env": {"DJANGO_SETTINGS_MODULE": "confsite.settings"}},
}
WORKERS = ["sync", "gthread"]
CONFIGS = {
    # name: (extra args, env, unix, prefix)
    "default": ([], {}, False, ""),
    "hooks": (["-c", os.path.join(CONFS, "hooks.conf.py")], {}, False, ""),
    "forwarded": (["-c", os.path.join(CONFS, "forwarded.conf.py")], {}, False, ""),
    "unix": ([], {}, True, ""),
    "scriptname": ([], {"SCRIPT_NAME": "/shop"}, False, "/shop"),
}


@dataclass
class ServerSetup:
    app: str
    worker: str
    config: str
    cwd: str
    appspec: str
    extra_args: list = field(default_factory=list)
    env: dict = field(default_factory=dict)
    unix: bool = False
    prefix: str = ""

    @property
    def name(self):
        return "%s/%s/%s" % (self.app, self.worker, self.config)


def build(db_path):
    setups = []
    for app, a in APPS.items():
        for worker in WORKERS:
            for cname, (args, env, unix, prefix) in CONFIGS.items():
                e = dict(a["env"])
                e.update(env)
                e["CONFORMANCE_DB"] = db_path
                setups.append(ServerSetup(app, worker, cname, a["cwd"], a["appspec"], list(args), e, unix, prefix))
    return setups
