"""A worker never outlives the ``zoo`` process that started it.

On Linux the kernel sends the worker SIGKILL when its parent dies (``PR_SET_PDEATHSIG``); the
parent's pid travels in ``ZOO_PARENT_PID`` so that a parent which died before the call took
effect is noticed too. Elsewhere a watchdog thread polls the parent.
"""

from __future__ import annotations

import ctypes
import os
import signal
import threading
import time

PARENT_ENV = "ZOO_PARENT_PID"
_PR_SET_PDEATHSIG = 1


def tie_to_parent() -> None:
    """Die with the parent named by ``ZOO_PARENT_PID`` (no-op when it is unset)."""
    expected = os.environ.get(PARENT_ENV, "")
    if not expected.isdigit():
        return
    parent = int(expected)
    try:
        tied = ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        tied = False
    if os.getppid() != parent:  # the parent died before the kernel could be told
        os._exit(137)
    if not tied:
        threading.Thread(target=_watch, args=(parent,), daemon=True, name="zoo-parent-watch").start()


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(137)
