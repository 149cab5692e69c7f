"""rgun: gunicorn, rewritten in Rust, as a drop-in.

The Python side is deliberately thin: it hands argv to the Rust core
(``rgun._core``), which parses the command line, executes the config file in
this interpreter, and runs the master and its workers.
"""

from rgun._core import GUNICORN_VERSION, __version__

__all__ = ["__version__", "GUNICORN_VERSION"]
