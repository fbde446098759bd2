#!/usr/bin/env python3
"""Runs the real `pypi-server` CLI (pypiserver's own entry point, what its console script calls) and
exits when the test process that started it is gone, so a test runner killed with SIGKILL leaves no
index behind.

    python run_index.py PARENT_PID [pypi-server arguments...]

With VLLM_WS_INDEX_BASIC_AUTH=USER:PASSWORD in its environment (never on the command line, which every
user of the machine can read), every listing and download needs HTTP basic auth with those credentials,
as a private index does: pypiserver's own check (401 with a Basic challenge without credentials, 403 with
wrong ones), with the password compared here instead of read from an htpasswd file (which would need
passlib in the servers' venv).
"""

import hmac
import os
import sys

from parent_watch import exit_with


def main():
    exit_with(int(sys.argv[1]))
    from pypiserver.__main__ import main as pypi_server

    args = sys.argv[2:]
    creds = os.environ.pop("VLLM_WS_INDEX_BASIC_AUTH", "")
    if creds:
        from pypiserver import config

        want_user, _, want_password = creds.partition(":")

        def auther(user, password):
            return hmac.compare_digest((user or "").encode(), want_user.encode()) and hmac.compare_digest((password or "").encode(), want_password.encode())

        config.RunConfig.get_auther = lambda self, passed: auther
        args += ["-a", "list,download,update", "-P", "(checked in run_index.py)"]
    sys.argv = ["pypi-server"] + args
    sys.exit(pypi_server())


if __name__ == "__main__":
    main()
