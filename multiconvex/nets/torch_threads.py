"""One torch thread around the unit sweep's small tensor work.

A Gauss–Seidel step over unit blocks runs a few hundred torch operations on tensors of a few thousand entries
(one unit's columns, one layer's ``N × n`` pre-activations). Torch's intra-op pool gains nothing there: its
worker threads spin after every parallel region (process CPU time of one diabetes ``[10, 64, 64, 1]`` sweep:
several times the one-thread figure, and far more on a loaded machine), and a multi-threaded matrix product
may split its sums differently, so the sweep's path depended on the thread count the user happened to have.
:func:`one_torch_thread` holds torch at one thread while such work runs and gives the user's setting back
afterwards (nested contexts change nothing). It acts on the main thread only: torch's thread count is
per-thread state in some builds and process-wide in others, so block solves on a Jacobi executor's worker
threads keep whatever they have rather than save and restore it under each other. Larger tensors (over
:data:`SMALL_ENTRIES`) keep the user's threads.

Examples
--------
>>> import torch
>>> before = torch.get_num_threads()
>>> with one_torch_thread(torch.device("cpu"), 100 * 10):
...     inside = torch.get_num_threads()
>>> inside, torch.get_num_threads() == before
(1, True)
"""

from __future__ import annotations

import contextlib
import threading

import torch

#: Largest tensor (entries) whose sweep work runs on one torch thread: ~8 MiB of float64, far above a unit
#: block's working set on diabetes-sized data. Above it the user's setting holds (whether torch's threads pay for
#: themselves there was not measured), and the sweep's rounding may then depend on the thread count again.
SMALL_ENTRIES = 1 << 20

_depth = 0  # contexts open now (on the main thread)
_saved = 1  # the main thread's torch thread count, given back when the outermost context ends


class _OneTorchThread:
    """Torch at one intra-op thread while the outermost such context is open, then the saved count back."""

    def __enter__(self) -> None:
        global _depth, _saved
        if _depth == 0:
            _saved = torch.get_num_threads()
            if _saved != 1:
                torch.set_num_threads(1)
        _depth += 1

    def __exit__(self, *exc: object) -> None:
        global _depth
        _depth -= 1
        if _depth == 0 and _saved != 1:
            torch.set_num_threads(_saved)


_UNCHANGED = contextlib.nullcontext()


def one_torch_thread(device: torch.device, entries: int) -> contextlib.AbstractContextManager:
    """A context that runs its body with torch at one thread when its tensors are on the CPU and the largest has at
    most :data:`SMALL_ENTRIES` ``entries`` (e.g. a layer's ``N × n`` pre-activations); otherwise one that changes
    nothing."""
    if device.type != "cpu" or entries > SMALL_ENTRIES or threading.current_thread() is not threading.main_thread():
        return _UNCHANGED
    return _OneTorchThread()


__all__ = ["SMALL_ENTRIES", "one_torch_thread"]
