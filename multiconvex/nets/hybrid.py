"""Gradient phase, then block phase: ``algorithm="adam+gauss-seidel"`` (gd, sgd, adam or lbfgs, then a block driver).

A gradient method gets close to a good point cheaply but never says where it stopped; the block
drivers certify a point (every block gap at rounding level, R&R Def 5.8) but crawl from a random
start. :func:`run_hybrid` runs the gradient method for its epochs, then block sweeps from its end
point (the drivers never increase the objective, so the result is at least as good as the
gradient phase's end point) until the partial-minimum certificate holds or a limit is reached, and
returns one :class:`~multiconvex.result.Result` whose history holds both phases
(``info["phases"]``: one record per phase).

With ``layer_steps`` (squared loss) the block phase runs in rounds: the hidden units rescaled so that each
unit's incoming and outgoing weights have equal norms (:func:`multiconvex.nets.balance.balance_units`: the same
function, less weight decay; ``LayerSteps(balance=False)`` skips it), a few joint Newton steps of whole
layers (:func:`multiconvex.nets.layer_step.layer_newton_step`: every unit of a layer at once, which
Gauss–Seidel over units does only slowly when they are coupled), then a few driver iterations. A
layer step only moves the point (and only down); each round's driver run ends with its certifying
pass, so the partial-minimum claim is decided by the unit block gaps exactly as without it.

Examples
--------
>>> import numpy as np, torch
>>> from multiconvex.drivers import DriverOptions
>>> from multiconvex.nets import Architecture, GradientOptions, NetForm, init_params
>>> rng = np.random.default_rng(0)
>>> X = torch.as_tensor(rng.standard_normal((60, 2))); T = X[:, :1] * X[:, 1:]
>>> arch = Architecture((2, 4, 1))
>>> form = NetForm(arch, X, T, 1e-3)
>>> res, params = run_hybrid(form, init_params(arch, 0, X.device), GradientOptions("adam", lr=1e-2, max_iters=50),
...                          DriverOptions("gauss-seidel", max_iters=200))
>>> [p["algorithm"] for p in res.info["phases"]], res.objective <= res.info["phases"][0]["objective"]
(['adam', 'gauss-seidel'], True)
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

from ..drivers import ALGORITHMS as BLOCK_ALGORITHMS
from ..drivers import DriverOptions, run
from ..errors import InvalidInputError
from ..result import Certificate, HistoryEntry, Result
from ..tolerance import gap_tolerance
from .balance import balance_units
from .baselines import GRADIENT_ALGORITHMS, GradientOptions, run_gradient
from .form import NetForm
from .layer_step import layer_newton_step, network_newton_step
from .network import Params

logger = logging.getLogger("multiconvex")

#: Every ``"<gradient>+<block driver>"`` name.
HYBRID_ALGORITHMS = tuple(f"{g}+{b}" for g in GRADIENT_ALGORITHMS for b in BLOCK_ALGORITHMS)


def parse_hybrid(algorithm: str) -> tuple[str, str]:
    """``"adam+gauss-seidel"`` -> ``("adam", "gauss-seidel")``; a clear error for anything else."""
    gradient, _, block = str(algorithm).partition("+")
    if gradient not in GRADIENT_ALGORITHMS or block not in BLOCK_ALGORITHMS:
        raise InvalidInputError(f"algorithm={algorithm!r} is not a hybrid: use '<gradient>+<block driver>' with a "
                                f"gradient method from {GRADIENT_ALGORITHMS} and a block driver from "
                                f"{BLOCK_ALGORITHMS}, e.g. 'adam+gauss-seidel'.")
    return gradient, block


@dataclass(frozen=True)
class LayerSteps:
    """Rounds of the block phase with joint layer steps (:func:`run_hybrid`'s ``layer_steps``).

    Attributes
    ----------
    passes : int
        Layer passes per round: each is one :func:`~multiconvex.nets.layer_step.layer_newton_step` of every
        layer, the last hidden layer first, then the output layer, then the earlier hidden layers.
    sweeps : int
        Block-driver iterations per round (each round's driver run ends with its certifying pass).
    network : int
        Damped Gauss–Newton steps of all layers at once per round, before the layer passes
        (:func:`~multiconvex.nets.layer_step.network_newton_step`): the damping starts at ``DAMPING[0]`` each round,
        falls after a full step and rises after a short or failed one; the round's Gauss–Newton steps stop once it
        exceeds ``DAMPING[1]`` (they stall at the kinks of the pieces).
    balance : bool
        Start each round by rescaling every hidden unit so that its incoming row and outgoing column have equal
        norms (:func:`~multiconvex.nets.balance.balance_units`: the same outputs and piece up to rounding, less
        weight decay).
    """

    passes: int = 5
    sweeps: int = 2
    network: int = 0
    balance: bool = True

    def __post_init__(self):
        for name, least in (("passes", 0), ("sweeps", 1), ("network", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise InvalidInputError(f"LayerSteps({name}={value!r}): {name} must be an integer >= {least}.")
        if not isinstance(self.balance, bool):
            raise InvalidInputError(f"LayerSteps(balance={self.balance!r}): balance must be True or False.")


def as_layer_steps(value, where: str) -> LayerSteps | None:
    """A user's ``layer_steps=`` (``None``/``False``: none, ``True``: :class:`LayerSteps` defaults, or a
    :class:`LayerSteps`) as ``LayerSteps | None``; anything else is a clear error naming ``where``."""
    if value is None or value is False:
        return None
    if value is True:
        return LayerSteps()
    if isinstance(value, LayerSteps):
        return value
    raise InvalidInputError(f"{where}: layer_steps={value!r} ({type(value).__name__}) is not understood: pass True "
                            "(the default LayerSteps), False/None (sweeps only) or a "
                            "multiconvex.nets.hybrid.LayerSteps(passes=..., sweeps=..., network=...).")


def check_layer_steps(form: NetForm, steps: LayerSteps, where: str) -> None:
    """Layer steps need squared loss and ``weight_decay > 0``: a clear error naming ``where`` otherwise."""
    if form.arch.loss != "squared" or not form.weight_decay > 0:
        raise InvalidInputError(f"{where}: layer_steps={steps!r} needs loss='squared' and weight_decay > 0 (got "
                                f"loss={form.arch.loss!r}, weight_decay={form.weight_decay!r}): on a piece the "
                                "objective is then a strictly convex quadratic in each layer; pass layer_steps=None.")


def _phase(res: Result, algorithm: str, start_time: float) -> dict:
    return {"algorithm": algorithm, "iterations": res.iterations, "start_time": start_time,
            "time": res.total_time, "objective": res.objective, "status": res.status, "message": res.message}


def run_hybrid(form: NetForm, params0: Params, gradient: GradientOptions, block: DriverOptions,
               layer_steps: LayerSteps | None = None) -> tuple[Result, Params]:
    """The gradient phase ``gradient`` from ``params0``, then the block driver ``block`` on ``form`` from its end point.

    Parameters
    ----------
    form : NetForm
        The network's standard form (its data and weight decay are the gradient phase's too).
    params0 : Params
        Start of the gradient phase.
    gradient : GradientOptions
        The gradient phase (``max_iters`` epochs/steps; its ``time_limit`` bounds that phase alone).
    block : DriverOptions
        The block phase; its ``time_limit`` bounds the **whole** run: the gradient phase stops at it too,
        and the block phase gets what is left (none once the gradient phase used it all: the run then ends
        ``"time_limit"`` with the gradient phase's best point, its block gaps not computed).
    layer_steps : LayerSteps, optional
        Squared loss with ``weight_decay > 0`` only: run the block phase in rounds of joint layer steps and
        driver iterations (:class:`LayerSteps`); ``block.max_iters`` bounds the driver iterations of all
        rounds together. ``info["layer_steps"]`` records every layer step taken.

    Returns
    -------
    (Result, Params)
        One result: both phases' history (iterations and times continue across the phases; the
        entries up to ``info["phases"][0]["iterations"]`` are the gradient phase's), the block phase's
        certificate, status and message, ``info["phases"]``; and the final parameters.
    """
    if layer_steps is not None:
        check_layer_steps(form, layer_steps, "run_hybrid")
    t0 = time.perf_counter()
    if block.time_limit is not None:  # the whole run's limit holds in the gradient phase too
        own = gradient.time_limit
        gradient = dataclasses.replace(gradient, time_limit=block.time_limit if own is None
                                       else min(own, block.time_limit))
    g_res, params = run_gradient(form.arch, params0, form.X, form.T, form.weight_decay, gradient)
    t_grad = time.perf_counter() - t0
    shift_it = g_res.iterations

    def shifted(h: HistoryEntry) -> HistoryEntry:  # the block phase's entries continue the gradient phase's
        return HistoryEntry(h.iteration + shift_it, h.time + t_grad, h.objective, h.accepted_block,
                            h.max_block_gap, h.solver_time)

    opts = block
    if block.time_limit is not None:  # the messages say the whole run's limit, not what the block phase got of it
        opts = dataclasses.replace(opts, time_limit=max(0.0, block.time_limit - t_grad),
                                   words=block.words.less(block.time_limit,
                                                          f"the gradient phase took {t_grad:.2g}s"))
    if block.callback is not None:
        user_callback = block.callback
        opts = dataclasses.replace(opts, callback=lambda h: user_callback(shifted(h)))
    if g_res.status == "interrupted":  # Ctrl-C or the callback stopped the run in the gradient phase
        g_res.info["phases"] = [_phase(g_res, gradient.algorithm, 0.0)]
        g_res.algorithm = f"{gradient.algorithm}+{block.algorithm}"
        said = g_res.message if "returned" in g_res.message else f"{g_res.message}; the best point so far is returned"
        g_res.message = f"in the gradient phase: {said}; the block phase did not run (block gaps not computed)"
        return g_res, params
    if layer_steps is None:
        b_res = run(form, form.point_from_params(params), opts)
    else:
        b_res = run_rounds(form, params, opts, layer_steps)
    history = list(g_res.history)
    history.extend(shifted(h) for h in b_res.history[1:])
    phases = [_phase(g_res, gradient.algorithm, 0.0), _phase(b_res, block.algorithm, t_grad)]
    info = {**g_res.info, **b_res.info, "phases": phases}
    res = Result(objective=b_res.objective, status=b_res.status, iterations=g_res.iterations + b_res.iterations,
                 history=history, solver_time=b_res.solver_time, total_time=time.perf_counter() - t0,
                 certificate=b_res.certificate, values=b_res.values,
                 algorithm=f"{gradient.algorithm}+{block.algorithm}", backends_used=dict(b_res.backends_used),
                 message=f"{gradient.algorithm}: {g_res.message}; then {block.algorithm}: {b_res.message}", info=info)
    return res, form.params_from_point(form.final_point)


#: the Gauss–Newton damping each round starts from, and the damping at which the round's network steps stop
DAMPING = (1e-3, 1.0)


def _step_name(record: dict) -> str:
    if "name" in record:
        return record["name"]
    layer = record["layer"]
    return f"layer{layer + 1}-step" if layer >= 0 else "network-step"


def _round_start(form: NetForm, params: Params, f: float, steps: LayerSteps) -> Iterator[tuple[Params, float, dict]]:
    """The move that opens a round: the units' balance (``steps.balance``), kept only when ``F`` decreases and then
    yielded as ``(params, F, record)``."""
    if not steps.balance:
        return
    t = time.perf_counter()
    new = balance_units(params)
    f_new = form.evaluate(form.point_from_params(new))[0]
    if f_new < f:
        yield new, f_new, {"name": "balance", "layer": -1, "step": 1.0, "objective_before": f,
                           "objective_after": f_new, "seconds": time.perf_counter() - t}


def _layer_order(form: NetForm) -> list[int]:
    """The last hidden layer first (its units share the output), the output layer, then the earlier hidden layers."""
    hidden = list(range(form.arch.n_layers - 1))
    return hidden[-1:] + [form.arch.n_layers - 1] + hidden[-2::-1]


def _layer_pass(form: NetForm, params: Params, f: float, deadline: float | None,
                damping: float | None = None) -> Iterator[tuple[Params, float, dict]]:
    """One layer step of every layer (:func:`_layer_order`), or with ``damping`` one Gauss–Newton step of all layers
    at once; a step is kept only when the form's own ``F`` decreases, and each kept step is yielded at once as
    ``(params, F, record)`` (so a Ctrl-C later in the pass keeps it). The steps get the ``deadline``: one whose
    estimated cost exceeds the time left is not started, one that runs past it stops."""
    for layer in _layer_order(form) if damping is None else [-1]:
        if deadline is not None and time.perf_counter() >= deadline:
            return
        if damping is None:
            new, info = layer_newton_step(form.arch, params, form.X, form.T, form.weight_decay, layer,
                                          deadline=deadline)
        else:
            new, info = network_newton_step(form.arch, params, form.X, form.T, form.weight_decay, damping,
                                            deadline=deadline)
        if info.step > 0:
            f_new = form.evaluate(form.point_from_params(new))[0]
            if f_new < f:
                params, f = new, f_new
                yield params, f, {**dataclasses.asdict(info), "objective_after": f_new}


def run_rounds(form: NetForm, params: Params, opts: DriverOptions, steps: LayerSteps) -> Result:
    """The block driver ``opts`` from ``params`` in rounds (``steps``): layer steps, then ``steps.sweeps`` driver
    iterations, until a round's driver run ends other than by its iteration limit (converged, stalled without a
    layer step, a failure), or at ``opts.max_iters`` driver iterations in all, or ``opts.time_limit``.

    Parameters
    ----------
    form : NetForm
        Squared loss, ``weight_decay > 0``.
    params : Params
        Start point.
    opts : DriverOptions
        The block driver; ``max_iters`` counts its iterations over all rounds, ``time_limit`` the whole phase.
    steps : LayerSteps

    Returns
    -------
    Result
        History of every step (a layer pass that moved is one entry, ``accepted_block`` ``"layer2-step,..."``; a pass
        cut short by Ctrl-C gets one for the steps it kept, so the last entry is the returned objective); status,
        message and certificate of the last round's driver run (its certifying pass at the final point), or no gaps
        (``nan``) when the time limit or Ctrl-C came before that pass; ``info["layer_steps"]`` (every step kept),
        ``info["failed_block_solves"]`` (all rounds together).
    """
    check_layer_steps(form, steps, "run_rounds")
    t0 = time.perf_counter()
    deadline = t0 + opts.time_limit if opts.time_limit is not None else None
    f = form.evaluate(form.point_from_params(params))[0]
    history = [HistoryEntry(0, 0.0, f, None, math.nan, 0.0)]
    taken: list[dict] = []
    solver_time, sweeps, rounds = 0.0, 0, 0
    backends: dict[str, int] = {}
    failures = 0  # failed block solves of every round's driver run
    extrapolation: dict[str, float] = {}  # every round's tries and those kept (DriverOptions.extrapolate)
    last: Result | None = None
    out_of_time = False  # the time limit came between a round's driver run and the next one
    now: list[dict] = []  # the steps kept in the current layer pass
    try:
        while sweeps < opts.max_iters:
            rounds += 1
            moved, damping = False, DAMPING[0]
            changed = False  # any step kept this round, however small (an older certificate is of another point)
            now = []
            for kept, f_kept, record in _round_start(form, params, f, steps):
                # a move below the driver's tolerance does not count as one (a stalled driver run then ends the rounds)
                moved = moved or record["objective_before"] - f_kept > gap_tolerance(opts.tol, f_kept)
                changed = True
                params, f = kept, f_kept
                now.append(record)
                taken.append(record)
            if now:
                history.append(_steps_entry(history, now, f, t0, solver_time))
                now = []
                if opts.callback is not None and opts.callback(history[-1]):
                    raise _Stopped
            for n in range(steps.network + steps.passes):
                network = n < steps.network
                if network and damping > DAMPING[1]:
                    continue  # the Gauss–Newton steps stalled (at kinks of the pieces): on to the layer passes
                now = []
                for kept, f_kept, record in _layer_pass(form, params, f, deadline, damping if network else None):
                    params, f = kept, f_kept  # at once: a Ctrl-C later in the pass returns this point
                    now.append(record)
                    taken.append(record)
                if network:  # Levenberg–Marquardt: less damping after a full step, more after a short one
                    full = bool(now) and now[0]["step"] == 1.0
                    damping = damping / 3 if full else damping * (2 if now else 10)
                moved = moved or bool(now)
                changed = changed or bool(now)
                if now:
                    history.append(_steps_entry(history, now, f, t0, solver_time))
                    now = []
                    if opts.callback is not None and opts.callback(history[-1]):
                        raise _Stopped
            left = None if deadline is None else max(0.0, deadline - time.perf_counter())
            if left == 0.0:  # out of time: a certificate from before a layer step would speak of another point
                last = None if changed else last
                out_of_time = True
                break
            shift_it, shift_t, shift_s = history[-1].iteration, time.perf_counter() - t0, solver_time
            # a round's driver run says the phase's limits, not the share of them it got
            r_opts = dataclasses.replace(opts, max_iters=min(steps.sweeps, opts.max_iters - sweeps), time_limit=left,
                                         words=opts.words.less(opts.time_limit).fewer(opts.max_iters))
            if opts.callback is not None:
                r_opts = dataclasses.replace(r_opts, callback=_shifted_callback(opts.callback, shift_it, shift_t,
                                                                                shift_s))
            last = run(form, form.point_from_params(params), r_opts)
            history.extend(_shift(h, shift_it, shift_t, shift_s) for h in last.history[1:])
            sweeps += last.iterations
            solver_time += last.solver_time
            for name, n in last.backends_used.items():
                backends[name] = backends.get(name, 0) + n
            failures += int(last.info.get("failed_block_solves", 0))
            if "extrapolation" in last.info:  # each round's run starts its β afresh; the counts add up
                tried, kept = (extrapolation.get(k, 0) + last.info["extrapolation"][k] for k in ("tried", "kept"))
                extrapolation = {**last.info["extrapolation"], "tried": tried, "kept": kept}
            params, f = form.params_from_point(form.final_point), last.objective
            out_of_sweeps = last.status == "iteration_limit" or last.info.get("iteration_limit_reached", False)
            if not (out_of_sweeps or last.status == "stalled") or (last.status == "stalled" and not moved):
                break  # (a round whose sweeps ran out at a certified point goes on: layer steps may still descend)
    except (KeyboardInterrupt, _Stopped) as exc:
        status = "interrupted"
        message = ("interrupted by the user (Ctrl-C)" if isinstance(exc, KeyboardInterrupt) else
                   "stopped by the callback") + " during a layer step; the best point so far is returned"
        logger.warning(message)
        last = None
        if now:  # the steps kept in the interrupted pass: the returned point's objective ends the history
            history.append(_steps_entry(history, now, f, t0, solver_time))
    else:
        status = ""
    form.load(form.point_from_params(params))
    info = {"layer_steps": taken, "rounds": rounds, "failed_block_solves": failures,
            **({"extrapolation": extrapolation} if extrapolation else {})}
    if last is None:  # stopped before or during a round's driver run could certify: no gaps
        gaps = {b.name: math.nan for b in form.blocks}
        cert = Certificate.from_gaps(gaps, gap_tolerance(opts.tol, f))
        return Result(objective=f, status=status or "time_limit", iterations=history[-1].iteration, history=history,
                      solver_time=solver_time, total_time=time.perf_counter() - t0, certificate=cert,
                      values=form.named_values(form.point_from_params(params)), algorithm=opts.algorithm,
                      backends_used=backends, info=info,
                      message=(message if status else f"{opts.words.time(opts.time_limit)} during a layer step")
                      + "; block gaps not computed")
    status, message = last.status, last.message
    if out_of_time:  # no step since the last round's certifying pass: its gaps are this point's
        status, message = "time_limit", f"{opts.words.time(opts.time_limit)}; the gaps are the last round's"
    return Result(objective=last.objective, status=status, iterations=history[-1].iteration, history=history,
                  solver_time=solver_time, total_time=time.perf_counter() - t0, certificate=last.certificate,
                  values=last.values, algorithm=opts.algorithm, backends_used=backends,
                  message=f"{message} ({rounds} rounds of layer steps and iterations, {len(taken)} layer steps "
                  "taken)", info={**last.info, **info})


def _steps_entry(history: list[HistoryEntry], steps: list[dict], f: float, t0: float,
                 solver_time: float) -> HistoryEntry:
    """The history entry of a layer pass that kept ``steps`` (``accepted_block``: ``"layer2-step,..."``)."""
    return HistoryEntry(history[-1].iteration + 1, time.perf_counter() - t0, f,
                        ",".join(_step_name(s) for s in steps), math.nan, solver_time)


def _shifted_callback(user, iterations: int, seconds: float, solver: float):
    return lambda h: user(_shift(h, iterations, seconds, solver))


class _Stopped(Exception):
    """The user's callback asked to stop during the layer steps."""


def _shift(h: HistoryEntry, iterations: int, seconds: float, solver: float) -> HistoryEntry:
    """A round's driver entry continued after the block phase's earlier entries."""
    return HistoryEntry(h.iteration + iterations, h.time + seconds, h.objective, h.accepted_block, h.max_block_gap,
                        h.solver_time + solver)


__all__ = ["HYBRID_ALGORITHMS", "LayerSteps", "as_layer_steps", "check_layer_steps", "parse_hybrid", "run_hybrid",
           "run_rounds"]
