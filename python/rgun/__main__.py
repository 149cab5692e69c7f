"""Console entry point: ``rgun [OPTIONS] [APP_MODULE]`` and ``python -m rgun``."""

import sys


def run():
    from rgun import _core

    sys.exit(_core.main(sys.argv))


if __name__ == "__main__":
    import rgun

    sys.argv[0] = "rgun"
    rgun._launched_as_module = True
    run()
