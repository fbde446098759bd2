#!/usr/bin/env python3
"""Runs the real `pypi-server` CLI (pypiserver's own entry point, what its console script calls) and
exits when the test process that started it is gone, so a test runner killed with SIGKILL leaves no
index behind.

    python run_index.py PARENT_PID [pypi-server arguments...]
"""

import os
import sys
import threading
import time


def watch_parent(pid):
    while True:
        time.sleep(0.5)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            os._exit(0)
        except PermissionError:
            pass


def main():
    parent = int(sys.argv[1])
    threading.Thread(target=watch_parent, args=(parent,), daemon=True).start()
    from pypiserver.__main__ import main as pypi_server

    sys.argv = ["pypi-server"] + sys.argv[2:]
    sys.exit(pypi_server())


if __name__ == "__main__":
    main()
