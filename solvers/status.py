"""The normalised status set shared by every backend and front end.

Every backend outcome is mapped to one of a few strings, so that drivers can
decide what to accept without knowing which solver ran.

Examples
--------
>>> from multiconvex.solvers.status import from_cvxpy, has_solution
>>> from_cvxpy("user_limit")
'iteration_limit'
>>> has_solution("optimal_inaccurate")
True
"""

from __future__ import annotations

OPTIMAL = "optimal"
OPTIMAL_INACCURATE = "optimal_inaccurate"
INFEASIBLE = "infeasible"
UNBOUNDED = "unbounded"
ITERATION_LIMIT = "iteration_limit"
TIME_LIMIT = "time_limit"
NUMERICAL_ERROR = "numerical_error"
SOLVER_ERROR = "solver_error"
LICENCE_ERROR = "licence_error"
#: no point returned because none can beat the caller's cutoff (a proven lower bound is above it: Gurobi's ``CUTOFF``)
CUTOFF = "cutoff"

STATUSES: frozenset[str] = frozenset(
    {
        OPTIMAL,
        OPTIMAL_INACCURATE,
        INFEASIBLE,
        UNBOUNDED,
        ITERATION_LIMIT,
        TIME_LIMIT,
        NUMERICAL_ERROR,
        SOLVER_ERROR,
        LICENCE_ERROR,
        CUTOFF,
    }
)

#: cvxpy status string (``cvxpy.settings``) -> normalised status.
CVXPY_STATUS_MAP: dict[str, str] = {
    "optimal": OPTIMAL,
    "optimal_inaccurate": OPTIMAL_INACCURATE,
    "infeasible": INFEASIBLE,
    "infeasible_inaccurate": NUMERICAL_ERROR,  # inaccurate: a guess, not a proof (drivers end runs on proofs)
    "unbounded": UNBOUNDED,
    "unbounded_inaccurate": NUMERICAL_ERROR,
    "infeasible_or_unbounded": NUMERICAL_ERROR,  # one of two, not which: the cvxpy bridge settles it itself
    "user_limit": ITERATION_LIMIT,
    "solver_error": SOLVER_ERROR,
    "unknown": SOLVER_ERROR,
}

_WITH_SOLUTION = frozenset({OPTIMAL, OPTIMAL_INACCURATE})


def from_cvxpy(status: str | None) -> str:
    """Map a cvxpy problem status to the normalised status set.

    Parameters
    ----------
    status : str or None
        ``problem.status`` after a cvxpy solve (``None`` if it never solved).

    Returns
    -------
    str
        One of :data:`STATUSES`; unknown inputs map to ``"solver_error"``.

    Examples
    --------
    >>> from_cvxpy("infeasible_inaccurate")
    'numerical_error'
    """
    if status is None:
        return SOLVER_ERROR
    return CVXPY_STATUS_MAP.get(str(status).lower(), SOLVER_ERROR)


def has_solution(status: str) -> bool:
    """Whether a normalised status comes with a usable primal point.

    Parameters
    ----------
    status : str
        A normalised status.

    Returns
    -------
    bool
        True for ``"optimal"`` and ``"optimal_inaccurate"``.

    Examples
    --------
    >>> has_solution("iteration_limit")
    False
    """
    return status in _WITH_SOLUTION
