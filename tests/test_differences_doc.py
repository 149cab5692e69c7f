"""docs/differences.md is generated from compat/settings.json and conformance/known_differences.toml
by compat/gen_differences.py; the committed file must be current (and every refused setting must
have a reason, or the generator fails)."""

import os
import subprocess
import sys

from support import ROOT


def test_differences_doc_is_current():
    p = subprocess.run([sys.executable, os.path.join(ROOT, "compat", "gen_differences.py"), "--check"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
