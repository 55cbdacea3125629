"""HiGHS through cvxpy (LP, small convex QP) and Pyomo, and the silencing of its stdout banner."""

from __future__ import annotations

import functools
import os
import sys
from typing import Any

from .base import Backend

__all__ = ["HighsBackend", "silence_highs_banner"]


class HighsBackend(Backend):
    """HiGHS: LP (simplex/IPM) and convex QP (active set, small/medium only).

    Through cvxpy's QP interface HiGHS takes convex QPs, but its active-set
    QP solver declares "Solve error" on large equality-constrained QPs (e.g. a
    21000-column ridge QP ended with primal infeasibility 6e-5). It is
    preferred for LP only.
    """

    name = "highs"
    cvxpy_name = "HIGHS"
    pyomo_name = "highs"
    modules = ("highspy",)
    distribution = "highspy"
    classes = frozenset({"EQP", "LP", "QP"})
    time_limit_option = "time_limit"

    def options(self, user_options: dict[str, Any] | None = None) -> dict[str, Any]:
        silence_highs_banner()
        return super().options(user_options)


@functools.lru_cache(maxsize=1)
def silence_highs_banner() -> None:
    """Create the process's first ``highspy.Highs()`` with file descriptor 1 sent to /dev/null.

    HiGHS prints a copyright banner on stdout when the first solver object of a process is made, from
    C++ and before any option (``output_flag``) can apply; it would break ``--quiet`` and any stdout a
    user parses. Later objects print nothing. Does nothing when highspy is missing.
    """
    try:
        import highspy  # lazy and optional: only when the banner must be silenced
    except ImportError:
        return

    sys.stdout.flush()
    saved, null = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(null)
        os.close(saved)
