"""Gradient phase, then block phase: ``algorithm="adam+gauss-seidel"`` (any of gd/sgd/adam, then any block driver).

A gradient method gets close to a good point cheaply but never says where it stopped; the block
drivers certify a point (every block gap at rounding level, R&R Def 5.8) but crawl from a random
start. :func:`run_hybrid` runs the gradient method for its epochs, then block sweeps from its end
point (the drivers never increase the objective, so the result is at least as good as the
gradient phase's end point) until the partial-minimum certificate holds or a limit is reached, and
returns one :class:`~multiconvex.result.Result` whose history holds both phases
(``info["phases"]``: one record per phase).

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
import time

from ..drivers import ALGORITHMS as BLOCK_ALGORITHMS
from ..drivers import DriverOptions, run
from ..errors import InvalidInputError
from ..result import HistoryEntry, Result
from .baselines import GRADIENT_ALGORITHMS, GradientOptions, run_gradient
from .form import NetForm
from .network import Params

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


def _phase(res: Result, algorithm: str, start_time: float) -> dict:
    return {"algorithm": algorithm, "iterations": res.iterations, "start_time": start_time,
            "time": res.total_time, "objective": res.objective, "status": res.status, "message": res.message}


def run_hybrid(form: NetForm, params0: Params, gradient: GradientOptions,
               block: DriverOptions) -> tuple[Result, Params]:
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

    Returns
    -------
    (Result, Params)
        One result: both phases' history (iterations and times continue across the phases; the
        entries up to ``info["phases"][0]["iterations"]`` are the gradient phase's), the block phase's
        certificate, status and message, ``info["phases"]``; and the final parameters.
    """
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
    if block.time_limit is not None:
        opts = dataclasses.replace(opts, time_limit=max(0.0, block.time_limit - t_grad))
    if block.callback is not None:
        user_callback = block.callback
        opts = dataclasses.replace(opts, callback=lambda h: user_callback(shifted(h)))
    if g_res.status == "interrupted":  # Ctrl-C or the callback stopped the run in the gradient phase
        g_res.info["phases"] = [_phase(g_res, gradient.algorithm, 0.0)]
        g_res.algorithm = f"{gradient.algorithm}+{block.algorithm}"
        return g_res, params
    b_res = run(form, form.point_from_params(params), opts)
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


__all__ = ["HYBRID_ALGORITHMS", "parse_hybrid", "run_hybrid"]
