"""multiconvex: train piecewise multi-convex models by iterated convex optimization.

Blocks of variables are optimised by convex subproblems on the current piece, handed
to the backend solver of your choice, and every result carries its certificate.

>>> import multiconvex as mc
>>> res = mc.solve(prob, blocks=[[U], [V]], algorithm="jacobi", solver="clarabel")  # doctest: +SKIP
>>> res.certificate.is_partial_minimum                                                # doctest: +SKIP
"""

from . import errors
from .cvxpy_front import find_blocks, is_multiconvex, last_result, relu, solve
from .cvxpy_front import register as _register_cvxpy
from .errors import (
    InvalidInputError,
    LicenceError,
    MulticonvexError,
    NotMulticonvexError,
    SolverFailure,
    SolverUnavailableError,
    UnknownSolverError,
)
from .pyomo_front import ReLURelation
from .pyomo_front import register as _register_pyomo
from .result import Certificate, HistoryEntry, Result
from .subproblem import BlockSubproblem, KronTerm

__version__ = "0.1.0"


def available_solvers():
    """Every backend in the registry: installed, licence state, version (see :mod:`multiconvex.solvers`)."""
    from .solvers import available_solvers as _available

    return _available()


_register_cvxpy()
_register_pyomo()

__all__ = [
    "solve", "find_blocks", "is_multiconvex", "relu", "ReLURelation", "last_result", "available_solvers",
    "Result", "Certificate", "HistoryEntry", "BlockSubproblem", "KronTerm", "errors", "MulticonvexError",
    "InvalidInputError",
    "NotMulticonvexError", "UnknownSolverError", "SolverUnavailableError", "LicenceError", "SolverFailure",
]
