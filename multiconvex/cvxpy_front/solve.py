"""``mc.solve`` and ``prob.solve(method="multiconvex")``: the cvxpy front door."""

from __future__ import annotations

import difflib
import inspect
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import cvxpy as cp
from cvxpy.expressions.variable import Variable
from cvxpy.problems.problem import SolverStats

from ..drivers import ALGORITHMS, DriverOptions, check_callback, run
from ..errors import InvalidInputError
from ..executor import make_executor
from ..result import Callback, LimitWords, Result
from ..solvers import dispatch, problem_class, resolve
from ..solvers.options import check_solver_options
from ..validation import (
    check_finite_data,
    check_flag,
    check_mapping,
    check_options,
    check_seed,
    check_solver_spec,
    check_variables,
)
from .blocks import find_blocks, normalise_blocks
from .form import CvxpyForm, walk_form
from .sizes import check_block_sizes

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
    extrapolate: bool = False,
    executor: Any = None,
    workers: int | None = None,
    verbose: bool = False,
    progress: bool | None = None,
    callback: Callback | None = None,
    _words: LimitWords | None = None,
    **unknown: Any,
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
        Passed through to the backend(s): ``{option: value}`` for every backend, ``{backend: {option: value}}``
        for one. Option names are checked before any solve against the names the backend's library lists
        (:mod:`multiconvex.solvers.options`; SCS, ECOS, MOSEK, SCIP and Ipopt options pass through unchecked).
    max_iters, tol, time_limit : stopping rules. ``tol`` is relative: the run has
        converged when every block gap is <= ``tol * |objective|`` (no absolute floor: at 0 only a gap of 0).
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
    extrapolate : bool
        After each iteration that moved the point, try ``x + β(x − x_prev)`` and keep it only when its objective
        is lower (an extrapolated block-coordinate descent, ``β`` adapted in the manner of Ang & Gillis for NMF:
        :mod:`multiconvex.extrapolation`). One objective evaluation per iteration; where the blocks are coupled
        it lowers the objective faster. ``res.info["extrapolation"]`` counts the tries and those kept.
    executor : {"inprocess", "threads", "processes", "dask"} or an object with ``map``
        Where the independent block solves of a Jacobi iteration run. Blocks compiled to subproblem
        values (``res.info["forms"]`` says ``"matrix"``) are plain data and ship to a process pool or
        Dask workers; blocks on the cvxpy path hold a compiled cvxpy problem in this process, so a run
        with any of them is refused on processes / Dask (threads share it; the backends release the GIL).
    verbose : bool
        Log one line per iteration (``logging``, logger ``"multiconvex"``).
    progress : bool, optional
        Show a progress bar (default: when interactive and not verbose).
    callback : callable, optional
        ``callback(entry)`` after every outer iteration with its :class:`~multiconvex.HistoryEntry`,
        the problem's variables holding the best point so far; a truthy return stops the run
        (status ``"interrupted"``, best point kept). An exception raised in it propagates, with the
        best point loaded into the variables (contract: :mod:`multiconvex.result`).
    _words : LimitWords, optional
        Private, for the estimators that fit through this function: how the messages name the limits (their
        ``max_iter``).

    Raises
    ------
    InvalidInputError
        Bad arguments, option names a backend does not take, and a block whose subproblem would not fit in
        the memory available (:func:`check_block_sizes`: estimated from the shapes before anything is built).

    Returns
    -------
    Result
        With ``status``, ``objective``, ``history``, timing and ``certificate``; the
        problem's variables hold the best point. The problem itself is updated the way a cvxpy
        solve updates it: ``problem.status`` is the run's status, except ``cp.INFEASIBLE`` /
        ``cp.UNBOUNDED`` when a block's backend proved it (see :data:`multiconvex.result.STATUSES`
        for what each proof covers); ``problem.value`` is the objective at the returned point, or
        ``±inf`` as cvxpy reports for those two (``inf`` for an infeasible minimisation, ``-inf``
        for an unbounded one; signs flipped for ``Maximize``); ``problem.solver_stats`` is a cvxpy
        ``SolverStats`` (``solver_name="multiconvex"``, ``solve_time`` the whole run,
        ``num_iters`` the outer iterations, ``extra_stats`` this :class:`Result`).

    Examples
    --------
    >>> import cvxpy as cp, numpy as np, multiconvex as mc
    >>> Y = np.random.default_rng(0).standard_normal((20, 10))
    >>> U, V = cp.Variable((20, 3)), cp.Variable((3, 10))
    >>> prob = cp.Problem(cp.Minimize(cp.sum_squares(Y - U @ V) + 2 * (cp.sum_squares(U) + cp.sum_squares(V))))
    >>> res = mc.solve(prob, [[U], [V]], algorithm="jacobi", solver="clarabel", seed=0, max_iters=500)
    >>> res.certificate.is_partial_minimum
    True

    Extrapolation between the sweeps (Gauss–Seidel, the default) needs fewer of them where the blocks are coupled:

    >>> def fit(**options):  # fresh variables: a solved variable starts from its value
    ...     U, V = cp.Variable((20, 3)), cp.Variable((3, 10))
    ...     prob = cp.Problem(cp.Minimize(cp.sum_squares(Y - U @ V) + 2 * (cp.sum_squares(U) + cp.sum_squares(V))))
    ...     return mc.solve(prob, [[U], [V]], seed=0, tol=1e-8, **options)
    >>> plain, fast = fit(), fit(extrapolate=True)
    >>> plain.iterations, fast.iterations, fast.info["extrapolation"]["kept"] > 0
    (50, 23, True)
    >>> abs(fast.objective - plain.objective) < 1e-6 * plain.objective, fast.certificate.is_partial_minimum
    (True, True)
    """
    if unknown:  # a clear error with the close names (the estimators' ``max_iter`` is ``max_iters`` here)
        known = [n for n in inspect.signature(solve).parameters if not n.startswith("_") and n not in
                 ("problem", "unknown")]
        name = sorted(unknown)[0]
        close = difflib.get_close_matches(name, known, n=2)
        raise InvalidInputError(f"solve() got an unexpected option {name!r}"
                                + (f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else "")
                                + f"; its options are {', '.join(known)}.")
    if not isinstance(problem, cp.Problem):
        raise InvalidInputError(f"expected a cvxpy.Problem, got {type(problem).__name__}.")
    if algorithm not in ALGORITHMS:
        raise InvalidInputError(f"algorithm={algorithm!r} is not known: use one of {', '.join(ALGORITHMS)}.")
    check_options(max_iters=max_iters, tol=tol, time_limit=time_limit, reg=reg, prox=prox)
    check_callback(callback)
    check_seed(seed)
    check_solver_spec(solver)
    check_mapping(solver_options, "solver_options", what="backend options by name")
    check_mapping(init, "init", what="start values by variable or variable name")
    check_flag(verbose, "verbose")
    check_flag(extrapolate, "extrapolate")
    check_variables(problem)
    check_finite_data(problem)
    block_list = find_blocks(problem) if blocks is None else normalise_blocks(problem, blocks)
    resolve(solver, None)  # unknown names fail here, before anything is built
    check_solver_options(solver_options, solver)  # so do option names the backend(s) do not accept
    walked = walk_form(problem, block_list, reg=reg)  # each block's structure, once: for the check and the form
    check_block_sizes(problem, block_list, built=walked.blocks)  # too large for this machine: fails before numbers

    def backends_for(subproblem: cp.Problem, name: str):
        return resolve(solver, problem_class(subproblem))

    plan = dispatch.make_plan(solver, options=dict(solver_options or {}))
    form = CvxpyForm(problem, block_list, backends_for=backends_for, plan=plan, solver_options=solver_options,
                     reg=reg, prox=prox > 0, precompiled=walked)
    x0 = form.initial_point(seed, init)
    ex = make_executor(executor, workers)
    _configure_logging(verbose)
    # the limit covers the whole call: building the blocks counts
    # the messages say the caller's limit, not what the driver had left of it
    left, words = (_words or LimitWords()).after_building(time_limit, form.build_time)
    try:
        res = run(form, x0, DriverOptions(algorithm=algorithm, max_iters=int(max_iters), tol=float(tol),
                                          time_limit=left, prox=float(prox), extrapolate=bool(extrapolate),
                                          executor=ex,
                                          verbose=verbose, progress=progress, callback=callback, words=words))
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


#: Result statuses that are cvxpy statuses too (a backend's proof); the others are written as they are.
_CVXPY_STATUS = {"infeasible": cp.INFEASIBLE, "unbounded": cp.UNBOUNDED}


def _store_on_problem(problem: cp.Problem, res: Result) -> None:
    """Set ``problem.status``, ``problem.value`` and ``problem.solver_stats`` the way cvxpy users read them."""
    sense = -1.0 if isinstance(problem.objective, cp.Maximize) else 1.0
    problem._status = _CVXPY_STATUS.get(res.status, res.status)
    if res.status == "infeasible":
        problem._value = sense * float("inf")
    elif res.status == "unbounded":
        problem._value = -sense * float("inf")
    else:
        problem._value = res.objective
    problem._solver_stats = SolverStats(solver_name="multiconvex", solve_time=res.total_time,
                                        setup_time=res.build_time, num_iters=res.iterations, extra_stats=res)
    problem._multiconvex_result = res


def last_result(problem: cp.Problem) -> Result | None:
    """The :class:`Result` of the last multiconvex solve of ``problem`` (``prob.solve`` returns only the value)."""
    return getattr(problem, "_multiconvex_result", None)


def _cvxpy_method(problem: cp.Problem, *args, **kwargs) -> float:
    """``prob.solve(method="multiconvex", ...)``: same options as :func:`solve`; returns ``problem.value``
    (the objective, or ``±inf`` for a proven infeasible / unbounded problem, as cvxpy's own solves)."""
    if args:
        raise InvalidInputError("prob.solve(method='multiconvex') takes keyword arguments only.")
    kwargs.pop("method", None)
    solve(problem, kwargs.pop("blocks", None), **kwargs)
    return problem._value


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
