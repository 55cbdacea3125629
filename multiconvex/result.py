"""What a run hands back: :class:`Result`, its :class:`Certificate` and history.

Per-iteration callbacks
-----------------------
Every run (``mc.solve``, ``prob.solve(method="multiconvex")``, the Pyomo solver's ``callback``
option, the gradient baselines and every estimator's ``fit`` that passes ``callback=`` through)
accepts ``callback``: a plain callable called once per outer iteration, right after its
:class:`HistoryEntry` is appended to the history, as ``callback(entry)``.

- When it runs, the model's variables (cvxpy ``.value``, Pyomo ``.value``) hold the best point so far
  (the block drivers load it just before the call; the gradient baselines have no user model).
- A truthy return value stops the run: status ``"interrupted"``, the best point so far is kept and
  loaded, and its certificate is computed as for any other stop. On the iteration that ends a run by
  itself (converged, stalled, a failure), the return value changes nothing.
- An exception raised inside the callback propagates to the caller unchanged; the best point so far
  is still written into the user's variables first (no :class:`Result` is returned).
- ``callback`` is checked to be callable before anything is built or solved
  (:class:`~multiconvex.errors.InvalidInputError` otherwise).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from .errors import InvalidInputError

Status = Literal["converged", "stalled", "iteration_limit", "time_limit", "interrupted", "solver_failure",
                 "infeasible", "unbounded"]

STATUSES: tuple[str, ...] = (
    "converged",  # every block gap <= tolerance at the returned point: a partial minimum
    "stalled",  # no block step lowers the objective, yet some gap exceeds the tolerance
    "iteration_limit",
    "time_limit",
    "interrupted",  # Ctrl-C or a callback returned True: the best point so far is returned
    "solver_failure",  # every block solve of an iteration failed: the best point so far is returned
    # a block subproblem's backend proved its cross-section (other blocks fixed, piece fixed) infeasible while
    # no feasible point had been found: infeasibility of that cross-section, not of the whole problem unless
    # the block's constraints involve no other block
    "infeasible",
    # a block subproblem's backend proved it unbounded below where every row not involving the block holds exactly:
    # its feasible points are feasible for the whole problem and the objective agrees there, so the whole problem
    # is unbounded
    "unbounded",
)

#: ``callback(entry)`` (see the module docstring): a truthy return stops the run as ``"interrupted"``.
Callback = Callable[["HistoryEntry"], Any]

#: Format tag written by :meth:`Result.to_dict` (bumped when the layout changes).
DICT_FORMAT = "multiconvex.Result/1"


@dataclass(frozen=True)
class LimitWords:
    """How a run's messages name its limits: in the words of whoever set them.

    ``max_iters`` is the iteration limit's name as the caller knows it (an estimator's ``max_iter``, a hybrid's
    block phase ``block_iters``), ``iterations_given`` the limit itself where the run got a share of it (a round of
    :func:`~multiconvex.nets.hybrid.run_rounds`; ``None``: the run's own). ``time_limit`` is the time limit as the
    caller gave it, in seconds, where the run itself got less of it (``None``: what the run got), with ``spent``
    saying where the rest went ("building the blocks took 0.02s"). The front ends set them; a driver only says
    them, so that no one rewrites its messages afterwards.

    >>> LimitWords("max_iter").iterations(300)
    'stopped after max_iter=300 iterations'
    >>> LimitWords().less(5.0, "the gradient phase took 1.2s").time(3.8)
    'stopped at time_limit=5s (the gradient phase took 1.2s)'
    """

    max_iters: str = "max_iters"
    time_limit: float | None = None
    spent: str = ""
    iterations_given: int | None = None

    def iterations(self, n: int) -> str:
        """The message of a run stopped after ``n`` iterations, its limit."""
        limit = self.iterations_given if self.iterations_given is not None else n
        return f"stopped after {self.max_iters}={limit} iterations"

    def time(self, limit: float | None) -> str:
        """The message of a run stopped at its time limit ``limit`` (seconds, as the run got it)."""
        said = self.time_limit if self.time_limit is not None else limit
        return f"stopped at time_limit={said:g}s" + (f" ({self.spent})" if self.spent else "")

    def less(self, given: float | None, spent: str = "") -> LimitWords:
        """These words for a run that gets less than its caller's limit ``given``: its messages still say ``given``
        (or the limit these words already say, from a caller further out)."""
        if given is None or self.time_limit is not None:
            return self
        return dataclasses.replace(self, time_limit=float(given), spent=spent)

    def after_building(self, given: float | None, seconds: float, what: str = "building the blocks"
                       ) -> tuple[float | None, LimitWords]:
        """What a front end's driver gets of its caller's limit ``given`` once ``what`` (building the blocks, an
        estimator's start) took ``seconds`` (the limit covers the whole call), and these words saying so.

        >>> LimitWords().after_building(5.0, 1.5)[1].time(3.5)
        'stopped at time_limit=5s (building the blocks took 1.5s)'
        """
        left = None if given is None else max(0.0, float(given) - seconds)
        return left, self.less(given, f"{what} took {seconds:.2g}s")

    def fewer(self, given: int) -> LimitWords:
        """These words for a run that gets a share of its caller's iteration limit ``given``: its messages say
        ``given`` (or the limit these words already say)."""
        return self if self.iterations_given is not None else dataclasses.replace(self, iterations_given=int(given))


@dataclass(frozen=True)
class HistoryEntry:
    """One outer iteration: when it ended, the objective reached, what was accepted."""

    iteration: int
    time: float
    objective: float
    accepted_block: str | None
    max_block_gap: float
    solver_time: float


@dataclass(frozen=True)
class Certificate:
    """Optimality evidence computed at the returned point.

    Attributes
    ----------
    block_gaps : dict[str, float]
        For each block, objective at the point minus the optimum of that block's
        convex subproblem on the cross-section through the point, restricted to its
        piece (R&R Def 5.8). Nonnegative up to solver accuracy; ``nan`` where the block
        solve failed, was only ``optimal_inaccurate``, or returned an optimum above the
        objective by more than ``tolerance`` (a wrong optimum certifies nothing). Where a
        form bounds the gap over every piece containing the point (a network's unit
        blocks), a gap within the tolerance is the larger of the two; a gap above it is
        the solved pieces' own (the block is not certified either way).
    tolerance : float
        Absolute tolerance the gaps were compared with.
    is_partial_minimum : bool
        True when every block gap was computed and is <= ``tolerance``.
    global_optimal : bool | None
        ``None``: no global certificate was computed (the theory gives none for a
        general multi-convex problem). Never set without a computation behind it.
    globalopt : multiconvex.globalopt.GlobalCertificate | None
        For parallel-subnetwork models (``algorithm="grow"``): the polar value or
        interval, λ, how the polar was computed, stationarity, and the proven lower
        bound on the global optimum with its gap bound. ``None`` when not computed.
    """

    block_gaps: dict[str, float]
    tolerance: float
    is_partial_minimum: bool
    global_optimal: bool | None = None
    globalopt: Any = None

    @property
    def polar(self) -> float | None:
        """The polar ``Ω°(−∇ℓ)`` (exact, or a lower bound: see ``globalopt.polar_exact``); None if not computed."""
        return None if self.globalopt is None else self.globalopt.polar

    @property
    def max_gap(self) -> float:
        """The largest block gap; ``nan`` when there is none or any block's gap was not computed (``nan``)."""
        gaps = list(self.block_gaps.values())
        if not gaps or any(math.isnan(g) for g in gaps):
            return math.nan
        return max(gaps)

    @classmethod
    def from_gaps(cls, gaps: dict[str, float], tolerance: float) -> Certificate:
        ok = bool(gaps) and all(np.isfinite(g) and -tolerance <= g <= tolerance for g in gaps.values())
        return cls(block_gaps=dict(gaps), tolerance=float(tolerance), is_partial_minimum=ok)

    def __str__(self) -> str:
        gaps = ", ".join(f"{k}: {v:.3g}" for k, v in self.block_gaps.items())
        unknown = sum(math.isnan(g) for g in self.block_gaps.values())
        above = sum(not math.isnan(g) and abs(g) > self.tolerance for g in self.block_gaps.values())
        if self.is_partial_minimum:
            verdict = "partial minimum"
        elif not self.block_gaps:
            verdict = "partial minimum not computed"
        elif above:
            verdict = "NOT a partial minimum"
        else:  # every computed gap within the tolerance, some not computed: no claim either way
            verdict = f"partial minimum not proven ({unknown} of {len(self.block_gaps)} block gaps not computed)"
        glob = "not computed" if self.global_optimal is None else str(self.global_optimal)
        text = f"{verdict} (block gaps {{{gaps}}} vs tol {self.tolerance:.3g}); global optimality: {glob}"
        if self.globalopt is not None:
            text += f"\n  {self.globalopt}"
        return text


@dataclass
class Result:
    """The outcome of a multiconvex run.

    Attributes
    ----------
    objective : float
        Objective at the returned (best) point, in the user's sense (a
        ``Maximize`` problem reports the maximised value), including a norm
        regulariser ``reg`` when one was asked for.
    status : str
        How the run ended: one of :data:`STATUSES`.
    iterations : int
        Outer iterations carried out.
    history : list[HistoryEntry]
        Time and objective after each iteration (entry 0 is the start).
    solver_time, total_time, build_time : float
        Seconds inside backend solvers, wall time of the whole run, and time spent
        building the block subproblems (once).
    certificate : Certificate
        Per-block gaps at the returned point.
    values : dict
        Best point, keyed by variable name.
    message : str
        One line explaining the status.
    subnetworks : int | None
        Number of (nonzero) parallel subnetworks at the returned point, for models grown by
        ``algorithm="grow"``; None otherwise.
    """

    objective: float
    status: str
    iterations: int
    history: list[HistoryEntry]
    solver_time: float
    total_time: float
    certificate: Certificate
    values: dict[str, np.ndarray] = field(default_factory=dict)
    build_time: float = 0.0
    algorithm: str = ""
    backends_used: dict[str, int] = field(default_factory=dict)
    message: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    subnetworks: int | None = None

    @property
    def solver_share(self) -> float:
        """Fraction of wall time spent inside backend solvers."""
        return self.solver_time / self.total_time if self.total_time > 0 else math.nan

    @property
    def objectives(self) -> np.ndarray:
        return np.array([h.objective for h in self.history])

    def summary(self) -> str:
        return (
            f"status={self.status} objective={self.objective:.10g} iterations={self.iterations} "
            f"time={self.total_time:.3f}s (solver {self.solver_time:.3f}s, {100 * self.solver_share:.0f}%)\n"
            f"certificate: {self.certificate}"
        )

    def __repr__(self) -> str:  # keep reprs short: values may be large
        return (
            f"Result(status={self.status!r}, objective={self.objective!r}, iterations={self.iterations}, "
            f"is_partial_minimum={self.certificate.is_partial_minimum})"
        )

    def to_dict(self, values: bool = True) -> dict[str, Any]:
        """The result as plain JSON data (``json.dumps(res.to_dict(), allow_nan=False)`` works).

        Conversion rule, applied recursively (``info``, ``certificate.globalopt`` included):
        numbers, strings, booleans and ``None`` stay; a non-finite float becomes the string
        ``"NaN"``, ``"Infinity"`` or ``"-Infinity"`` (strict JSON has no such numbers; ``float()``
        reads them back); numpy scalars become Python numbers; arrays and tensors (anything with
        ``tolist()``) become nested lists; dataclasses (history entries, the global certificate)
        and mappings become objects with string keys; lists, tuples and sets become lists; any
        other object becomes its ``repr()`` string (a lossy record, not data).

        Parameters
        ----------
        values : bool
            Include the returned point (``values``, as nested lists); ``False`` for a compact record.

        Returns
        -------
        dict
            With a ``"format"`` tag, every field of the result, and the derived
            ``solver_share``; :meth:`from_dict` reads it back.

        Examples
        --------
        >>> import json
        >>> res = Result(objective=1.5, status="converged", iterations=1, solver_time=0.1, total_time=0.2,
        ...              history=[HistoryEntry(0, 0.0, 2.0, None, math.nan, 0.0)],
        ...              certificate=Certificate.from_gaps({"U": 0.0}, 1e-6))
        >>> d = json.loads(json.dumps(res.to_dict(), allow_nan=False))
        >>> d["history"][0]["max_block_gap"], Result.from_dict(d).history[0].objective
        ('NaN', 2.0)
        """
        out: dict[str, Any] = {"format": DICT_FORMAT}
        for f in dataclasses.fields(self):
            if f.name == "values" and not values:
                continue
            out[f.name] = to_jsonable(getattr(self, f.name))
        out["solver_share"] = to_jsonable(self.solver_share)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Result:
        """A :class:`Result` from :meth:`to_dict`'s output (after a JSON round trip too).

        Numbers, history, block gaps and values come back as written (values as float arrays);
        ``info`` and ``certificate.globalopt`` stay plain JSON data (lists, dicts), since the
        objects they came from are not rebuilt.
        """
        fmt = data.get("format")
        if fmt != DICT_FORMAT:
            raise InvalidInputError(f"Result.from_dict: format={fmt!r} is not {DICT_FORMAT!r}: pass the output "
                                    "of Result.to_dict() (or its JSON round trip).")
        cert = data["certificate"]
        certificate = Certificate(
            block_gaps={str(k): _float(v) for k, v in cert["block_gaps"].items()},
            tolerance=_float(cert["tolerance"]), is_partial_minimum=bool(cert["is_partial_minimum"]),
            global_optimal=cert.get("global_optimal"), globalopt=cert.get("globalopt"))
        history = [HistoryEntry(int(h["iteration"]), _float(h["time"]), _float(h["objective"]), h["accepted_block"],
                                _float(h["max_block_gap"]), _float(h["solver_time"])) for h in data["history"]]
        return cls(
            objective=_float(data["objective"]), status=str(data["status"]), iterations=int(data["iterations"]),
            history=history, solver_time=_float(data["solver_time"]), total_time=_float(data["total_time"]),
            certificate=certificate,
            values={str(k): np.asarray(_floats(v), dtype=float) for k, v in (data.get("values") or {}).items()},
            build_time=_float(data.get("build_time", 0.0)), algorithm=str(data.get("algorithm", "")),
            backends_used={str(k): int(v) for k, v in (data.get("backends_used") or {}).items()},
            message=str(data.get("message", "")), info=dict(data.get("info") or {}),
            subnetworks=data.get("subnetworks"))


_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def to_jsonable(value: Any) -> Any:
    """``value`` as plain JSON data, by the rule of :meth:`Result.to_dict`."""
    if value is None or isinstance(value, (bool, str, int)) and not isinstance(value, np.generic):
        return value
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else ("NaN" if math.isnan(v) else "Infinity" if v > 0 else "-Infinity")
    if isinstance(value, np.generic):  # numpy bool and integer scalars
        return value.item()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays, torch tensors (duck-typed: torch is not imported here)
        try:
            return to_jsonable(value.tolist())
        except (TypeError, ValueError, RuntimeError):
            pass
    return repr(value)


def _float(v: Any) -> float:
    return _NON_FINITE[v] if isinstance(v, str) else float(v)


def _floats(v: Any) -> Any:
    return [_floats(x) for x in v] if isinstance(v, list) else _float(v)


Key = Hashable
