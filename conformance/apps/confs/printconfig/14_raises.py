import os

bind = os.environ["CONFORMANCE_REQUIRED_BUT_UNSET"]
