"""``mc.solve`` and ``prob.solve(method="multiconvex")``: the cvxpy front door."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import cvxpy as cp
from cvxpy.expressions.variable import Variable

from ..drivers import ALGORITHMS, DriverOptions, run
from ..errors import InvalidInputError
from ..executor import make_executor
from ..result import Result
from ..solvers import dispatch, problem_class, resolve
from ..validation import check_finite_data, check_options, check_variables
from .blocks import find_blocks, normalise_blocks
from .form import CvxpyForm

logger = logging.getLogger("multiconvex")


def solve(
    problem: cp.Problem,
    blocks: Sequence[Sequence[Variable] | Variable] | None = None,
    *,
    algorithm: str = "gauss-seidel",
    solver: str | Sequence[str] | None = "auto",
    solver_options: Mapping[str, Any] | None = None,
    max_iters: int = 100,
    tol: float = 1e-6,
    time_limit: float | None = None,
    seed: int | None = None,
    init: Mapping[Any, Any] | None = None,
    reg: float = 0.0,
    prox: float = 0.0,
    executor: Any = None,
    workers: int | None = None,
    verbose: bool = False,
    progress: bool | None = None,
) -> Result:
    """Minimise (or maximise) a multi-convex cvxpy problem by iterated convex optimization.

    Parameters
    ----------
    problem : cvxpy.Problem
        A problem that is convex in each block when the other blocks are fixed and
        every :func:`multiconvex.relu` is fixed to its piece.
    blocks : list of lists of cvxpy.Variable, optional
        Blocks of variables (they may overlap; an auxiliary variable may be listed in
        every block). ``None``: found by :func:`multiconvex.find_blocks`.
    algorithm : {"gauss-seidel", "jacobi"}
        Blocks one after another, or all blocks from the same point and the best
        candidate accepted (R&R Def 7.1; the block solves are independent and go
        through ``executor``).
    solver : str or list of str
        Backend registry name (``mc.available_solvers()``), ``"auto"`` (the fastest
        installed backend for each block's problem class) or a fallback list such as
        ``["gurobi", "clarabel"]``.
    solver_options : dict, optional
        Passed through to the backend(s).
    max_iters, tol, time_limit : stopping rules. ``tol`` is relative: the run has
        converged when every block gap is <= ``tol * max(1, |objective|)``.
    seed : int, optional
        Seeds the random start of variables that have no value.
    init : dict, optional
        Start values by variable (or variable name); otherwise a variable's own
        ``.value`` is kept when set.
    reg : float
        Adds ``reg * Σ_v ‖v‖_F`` (a norm of the whole point; R&R Thm 7.2) to the
        objective. Reported objectives include it.
    prox : float
        Proximal weight ρ: each block step minimises ``f + (ρ/2)‖x_b − x_b^k‖²``.
        Certificates are always computed without it.
    executor : {"inprocess", "threads", "processes", "dask"} or an object with ``map``
        Where the independent block solves of a Jacobi iteration run. Blocks compiled to subproblem
        values (``res.info["forms"]`` says ``"matrix"``) are plain data and ship to a process pool or
        Dask workers; blocks on the cvxpy path hold a compiled cvxpy problem in this process, so a run
        with any of them is refused on processes / Dask (threads share it; the backends release the GIL).
    verbose : bool
        Log one line per iteration (``logging``, logger ``"multiconvex"``).
    progress : bool, optional
        Show a progress bar (default: when interactive and not verbose).

    Returns
    -------
    Result
        With ``status``, ``objective``, ``history``, timing and ``certificate``; the
        problem's variables hold the best point.

    Examples
    --------
    >>> import cvxpy as cp, numpy as np, multiconvex as mc
    >>> Y = np.random.default_rng(0).standard_normal((20, 10))
    >>> U, V = cp.Variable((20, 3)), cp.Variable((3, 10))
    >>> prob = cp.Problem(cp.Minimize(cp.sum_squares(Y - U @ V) + 2 * (cp.sum_squares(U) + cp.sum_squares(V))))
    >>> res = mc.solve(prob, [[U], [V]], algorithm="jacobi", solver="clarabel", seed=0, max_iters=500)
    >>> res.certificate.is_partial_minimum
    True
    """
    if not isinstance(problem, cp.Problem):
        raise InvalidInputError(f"expected a cvxpy.Problem, got {type(problem).__name__}.")
    if algorithm not in ALGORITHMS:
        raise InvalidInputError(f"algorithm={algorithm!r} is not known: use one of {', '.join(ALGORITHMS)}.")
    check_options(max_iters=max_iters, tol=tol, time_limit=time_limit, reg=reg, prox=prox)
    check_variables(problem)
    check_finite_data(problem)
    block_list = find_blocks(problem) if blocks is None else normalise_blocks(problem, blocks)
    resolve(solver, None)  # unknown names fail here, before anything is built

    def backends_for(subproblem: cp.Problem, name: str):
        return resolve(solver, problem_class(subproblem))

    plan = dispatch.make_plan(solver, options=dict(solver_options or {}))
    form = CvxpyForm(problem, block_list, backends_for=backends_for, plan=plan, solver_options=solver_options,
                     reg=reg, prox=prox > 0)
    x0 = form.initial_point(seed, init)
    ex = make_executor(executor, workers)
    _configure_logging(verbose)
    try:
        res = run(form, x0, DriverOptions(algorithm=algorithm, max_iters=int(max_iters), tol=float(tol),
                                          # the limit covers the whole call: building the blocks counts
                                          time_limit=None if time_limit is None else
                                          max(0.0, float(time_limit) - form.build_time),
                                          prox=float(prox), executor=ex,
                                          verbose=verbose, progress=progress))
    finally:
        ex.close()
    res.build_time = form.build_time
    res.total_time += form.build_time
    res.info["blocks"] = [b.name for b in form.blocks]
    res.info["forms"] = dict(form.forms)
    if form.compile_notes:
        res.info["cvxpy_path_reasons"] = dict(form.compile_notes)
    res.info["dpp"] = {s.name: s.dpp for s in form.sections if s is not None}
    res.info["backends"] = {b.name: (["auto"] if plan.auto else plan.names) if s is None else [x.name for x in bs]
                            for b, s, bs in zip(form.blocks, form.sections, form.backends)}
    _store_on_problem(problem, res)
    return res


def _store_on_problem(problem: cp.Problem, res: Result) -> None:
    """Set ``problem.status`` and ``problem.value`` the way cvxpy users read them."""
    problem._status = res.status
    problem._value = res.objective
    problem._multiconvex_result = res


def last_result(problem: cp.Problem) -> Result | None:
    """The :class:`Result` of the last multiconvex solve of ``problem`` (``prob.solve`` returns only the value)."""
    return getattr(problem, "_multiconvex_result", None)


def _cvxpy_method(problem: cp.Problem, *args, **kwargs) -> float:
    """``prob.solve(method="multiconvex", ...)``: same options as :func:`solve`; returns the objective."""
    if args:
        raise InvalidInputError("prob.solve(method='multiconvex') takes keyword arguments only.")
    kwargs.pop("method", None)
    return solve(problem, kwargs.pop("blocks", None), **kwargs).objective


def register() -> None:
    cp.Problem.register_solve("multiconvex", _cvxpy_method)


_handler: logging.Handler | None = None


def _configure_logging(verbose: bool) -> None:
    global _handler
    log = logging.getLogger("multiconvex")
    if verbose:
        if not log.handlers and not logging.getLogger().handlers:
            _handler = logging.StreamHandler()
            _handler.setFormatter(logging.Formatter("%(message)s"))
            log.addHandler(_handler)
        log.setLevel(logging.INFO)
    elif _handler is not None or log.level == logging.INFO:
        log.setLevel(logging.WARNING)
