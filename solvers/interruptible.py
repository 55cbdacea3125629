"""Long native solves that a Ctrl-C or a deadline does not wait for: the call runs in a worker thread.

A backend's C code runs without returning to Python: a SIGINT is only seen when it returns (DAQP: 5–10 s on one
5,000-row MNIST unit QP), and a solver's own time limit need not cover all of its work (a DAQP layer QP of 400,000
rows ran 2–2.9 s past a 4.35 s limit; where that time went was not pinned down). DAQP releases the GIL while it
solves, so
:func:`call` runs such a call in a daemon thread and waits for it in short steps: a Ctrl-C raises
``KeyboardInterrupt`` in the waiting thread at once, and past ``wait_limit`` seconds the caller gets
:data:`ABANDONED` instead of an answer. The abandoned call runs on in its thread until it ends (its own time limit,
as a rule, soon after: DAQP's): its answer is dropped. Small calls (below ``THREAD_WORK``) run directly: a thread
costs ~0.1 ms, more than a small unit QP.

Examples
--------
>>> call(sum, ([1, 2, 3],), work=10)
6
>>> call(sum, ([1, 2, 3],), work=THREAD_WORK)
6
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

#: Calls whose caller-estimated work (a dense QP's ``rows · variables``) is at least this run in a worker thread:
#: DAQP passes over all rows at every active-set change, ~1 ms a pass from here on.
THREAD_WORK = 1_000_000
#: How often the waiting thread wakes (seconds): the delay of a Ctrl-C or of an abandoned deadline at most.
POLL = 0.05


class _Abandoned:
    def __repr__(self) -> str:
        return "ABANDONED"


#: What :func:`call` returns when ``wait_limit`` passed before the call ended.
ABANDONED: Any = _Abandoned()


def call(fn: Callable[..., Any], args: tuple = (), kwargs: Mapping[str, Any] | None = None, *, work: float,
         wait_limit: float | None = None) -> Any:
    """``fn(*args, **kwargs)``; in a worker thread when ``work >= THREAD_WORK`` (module docstring), where a Ctrl-C
    interrupts the wait and ``wait_limit`` seconds (``None``: no limit) end it with :data:`ABANDONED`. An exception
    of ``fn`` is raised here."""
    kwargs = dict(kwargs or {})
    if work < THREAD_WORK:
        return fn(*args, **kwargs)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["out"] = fn(*args, **kwargs)
        except BaseException as exc:  # handed to the waiting thread, raised there
            box["exc"] = exc

    worker = threading.Thread(target=target, name="multiconvex-native-solve", daemon=True)
    until = None if wait_limit is None else time.perf_counter() + max(0.0, wait_limit)
    worker.start()
    while True:
        worker.join(POLL if until is None else max(0.0, min(POLL, until - time.perf_counter())))
        if not worker.is_alive():
            break
        if until is not None and time.perf_counter() >= until:
            return ABANDONED
    if "exc" in box:
        raise box["exc"]
    return box["out"]


__all__ = ["ABANDONED", "POLL", "THREAD_WORK", "call"]
