"""Exceptions raised by multiconvex.

Every error says what was wrong, where, and what to do about it. Input
errors are raised before any solve; backend errors are normalised so that a
user sees the same kinds of exception whatever solver they picked.
"""

from __future__ import annotations


class MulticonvexError(Exception):
    """Base class of every error multiconvex raises on purpose."""


class InvalidInputError(MulticonvexError, ValueError):
    """Bad input found before any solve: NaN/inf data, shapes, empty models, block lists."""


class NotMulticonvexError(InvalidInputError):
    """A block subproblem is not convex when the other blocks are fixed.

    Attributes
    ----------
    block : str
        Name of the offending block.
    term : str
        The objective term or constraint that breaks convexity.
    """

    def __init__(self, message: str, *, block: str | None = None, term: str | None = None):
        super().__init__(message)
        self.block = block
        self.term = term


class UnknownSolverError(InvalidInputError):
    """A solver name that the backend registry does not know."""


class SolverUnavailableError(MulticonvexError, RuntimeError):
    """A known backend that is not installed here (the message says how to install it)."""


class LicenceError(MulticonvexError, RuntimeError):
    """A backend whose licence is missing or too small for the problem.

    Attributes
    ----------
    solver : str
        Registry name of the backend.
    limit : str | None
        The limit that was hit (e.g. "2000 variables/constraints"), if any.
    """

    def __init__(self, message: str, *, solver: str, limit: str | None = None):
        super().__init__(message)
        self.solver = solver
        self.limit = limit


class SolverFailure(MulticonvexError, RuntimeError):
    """A backend solve that ended without a usable solution.

    Attributes
    ----------
    solver : str
        Registry name of the backend.
    status : str
        Normalised status (see :mod:`multiconvex.solvers.status`).
    """

    def __init__(self, message: str, *, solver: str, status: str = "solver_error"):
        super().__init__(message)
        self.solver = solver
        self.status = status
