"""Block subproblems as matrix values: our cvxpy front end against plain numpy and a rebuild loop.

Four measurements, side by side in one run (each timed case: one untimed warm-up, then the
median of ``--repeats`` runs; import time is never counted):

1. **Demo job** — digits (``load_digits``, first 600 rows / 16, centred), rank 12, λ = 8,
   ``½‖Y − UV‖² + (λ/2)(‖U‖² + ‖V‖²)`` through ``mc.solve(..., solver="auto")`` against plain numpy
   alternating least squares doing the same number of sweeps (``res.iterations``) from the same
   start (``default_rng(seed).standard_normal`` per variable, in the problem's variable order, as
   ``CvxpyForm.initial_point`` draws it; checked: same start objective, same final objective). ALS runs
   twice per round, with BLAS as found and with one BLAS thread (our small blocks run on one), rounds
   interleaved with ours; the ratio is against the faster ALS.
2. **Front end against a rebuild loop** — MF 200×100, rank 5, λ = 0.1 (the data and start of
   ``bench_factorization.py``): ``mc.solve`` against a loop that builds a fresh cvxpy ``Problem`` for
   every block solve, the other block a constant (``peers.dmcp_style_factorization``), both on
   Clarabel, same start, same number of sweeps; and our side again with ``solver="auto"``.
3. **Large MF** — 3000×2000, rank 10 (600×400 with ``--quick``), low rank plus noise, through
   ``mc.solve(time_limit=30)`` with ``tol=1e-6`` (converges in a few sweeps) and ``tol=0`` (runs
   into the time limit), each in a child process (this module with ``--child-large``), so that
   its peak RSS (``getrusage``) does not include the parent's: wall time to return, peak RSS, and
   numpy ALS doing the same sweeps from the same start in the same child afterwards (its
   memory is not in the reported peak, which is read before it runs).
4. **Jacobi through executors** — MF 1500×1000, rank 10 (300×200, rank 5 with ``--quick``), Gaussian
   low rank plus noise, λ = 0.1, 15 Jacobi iterations (``tol=0``), seed 0, for each ``solver`` of
   ``--jacobi-solvers`` (default ``auto,clarabel``): ``mc.solve(algorithm="jacobi")`` with
   ``executor="inprocess"``, ``"threads"`` (2 workers), ``"processes"`` (2 workers) and, when
   dask.distributed is installed, ``"dask"`` (a ``LocalCluster`` of 2 workers). Each pool is started
   once and its start-up (pool creation and one task per worker that imports the dispatcher) reported
   apart; the timed solves (median of ``--repeats``, rounds interleaved across executors) re-use it.
   One more call per pooled executor as a user writes it (pool start included). Checked: the same
   iterates as in-process (objective history, final U and V). Only compiled (``"matrix"``) blocks
   travel to processes / Dask; the block's numbers are built in this process, so only the backend
   solve (the solver share) is spread over the workers.
5. The solver share (``Result.solver_time / Result.total_time``) of every case, and a case of its own
   (``--only share``) for reduced problems where the backend does real work: MF 200×100, rank 5, λ = 0.1
   (the rebuild case's data and start), 20 Gauss–Seidel sweeps (``tol=0``) with ``clarabel``, ``osqp``,
   ``daqp`` and ``auto`` (the closed form), and MF 3000×2000, rank 10 with ``auto`` (5 sweeps); each the
   median of ``--repeats`` calls after an untimed one, as the share of the whole call (build included) and
   of the driver's run (``total_time − build_time``), against the target 0.9.

``--blas-threads default,1`` runs everything twice: with the BLAS thread pool as found and
limited to one thread (``threadpoolctl`` in this process, ``OPENBLAS_NUM_THREADS`` and friends in
the child). On a shared 2-core machine a multithreaded OpenBLAS call on tiny matrices can wait
milliseconds for a busy core; the two settings side by side show how much that costs.

Run: ``python -m multiconvex.benchmarks.bench_subproblem [--quick] [--repeats 3]
[--blas-threads default,1] [--only demo|rebuild|large|jacobi|share ...]``. Prints markdown tables; writes
``benchmarks/results/subproblem.json`` (``--quick``: only with ``--out``; the JSON is printed). With
``--only`` the cases run replace theirs in an existing JSON file and the others are kept.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cvxpy as cp
import numpy as np

import multiconvex as mc
from multiconvex.solvers import dispatch

try:
    from multiconvex.benchmarks.peers import dmcp_style_factorization
except ImportError:  # run from a checkout that was not installed
    from peers import dmcp_style_factorization  # type: ignore[no-redef]

OUT = Path(__file__).parent / "results"
BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
CHILD_TAG = "BENCH_SUBPROBLEM_CHILD_JSON "


# -- helpers ------------------------------------------------------------------------------------------
def mf_objective(Y: np.ndarray, U: np.ndarray, V: np.ndarray, lam: float) -> float:
    return float(0.5 * np.sum((Y - U @ V) ** 2) + lam / 2 * (np.sum(U ** 2) + np.sum(V ** 2)))


def mf_problem(Y: np.ndarray, rank: int, lam: float) -> tuple[cp.Problem, cp.Variable, cp.Variable]:
    U = cp.Variable((Y.shape[0], rank), name="U")
    V = cp.Variable((rank, Y.shape[1]), name="V")
    prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(Y - U @ V) + lam / 2 * (cp.sum_squares(U) + cp.sum_squares(V))))
    return prob, U, V


def seeded_start(prob: cp.Problem, seed: int) -> dict[str, np.ndarray]:
    """The start ``mc.solve(seed=seed)`` draws: one ``standard_normal`` per variable, in the problem's order."""
    rng = np.random.default_rng(seed)
    return {v.name(): rng.standard_normal(v.shape) for v in prob.variables()}


def als(Y: np.ndarray, U: np.ndarray, V: np.ndarray, lam: float, sweeps: int,
        last_u_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Plain alternating least squares: U then V, each in closed form (normal equations, k×k solves).

    ``last_u_only``: the last sweep updates U only (a Gauss–Seidel sweep cut short by the time limit).
    """
    k = U.shape[1]
    reg = lam * np.eye(k)
    for s in range(sweeps):
        U = np.linalg.solve(V @ V.T + reg, V @ Y.T).T
        if last_u_only and s == sweeps - 1:
            break
        V = np.linalg.solve(U.T @ U + reg, U.T @ Y)
    return U, V


def timed(fn: Callable[[], Any], repeats: int, warmup: bool = True) -> tuple[float, list[float], float | None, Any]:
    """Median wall time of ``repeats`` calls (after one untimed warm-up), all times, the cold time, last output."""
    cold = None
    if warmup:
        t0 = time.perf_counter()
        fn()
        cold = time.perf_counter() - t0
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, cold, out


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(1.0, abs(a), abs(b))


@contextmanager
def blas_threads(setting: str) -> Iterator[None]:
    if setting == "default":
        yield
        return
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=int(setting)):
        yield


def blas_info() -> list[dict]:
    try:
        from threadpoolctl import threadpool_info
        return [{k: d.get(k) for k in ("internal_api", "num_threads", "version", "prefix")} for d in threadpool_info()]
    except Exception as exc:  # pragma: no cover - threadpoolctl is a dependency
        return [{"error": repr(exc)}]


# -- 1. the demo job ----------------------------------------------------------------------------------
def digits_data() -> np.ndarray:
    from sklearn.datasets import load_digits
    Y = load_digits().data[:600] / 16.0
    return Y - Y.mean(axis=0)


def case_demo(repeats: int, rank: int = 12, lam: float = 8.0, seed: int = 0) -> dict:
    """``mc.solve`` and the ALS peers, interleaved (one of each per round, so that the machine's load falls on
    both alike), median of ``repeats`` rounds after an untimed one. The peer is plain numpy ALS as written (BLAS
    as found) and the same with one BLAS thread; the ratio is taken against the faster of the two."""
    Y = digits_data()

    def ours():
        prob, U, V = mf_problem(Y, rank, lam)  # fresh: mc.solve leaves the answer in the variables' values
        t0, c0 = time.perf_counter(), time.thread_time()
        res = mc.solve(prob, [[U], [V]], algorithm="gauss-seidel", solver="auto", seed=seed, tol=1e-6,
                       progress=False)
        cpu.append(time.thread_time() - c0)
        return res, time.perf_counter() - t0, prob

    def peer(start: dict, sweeps: int, threads: str) -> tuple[float, tuple[np.ndarray, np.ndarray]]:
        with blas_threads(threads):
            t0, c0 = time.perf_counter(), time.thread_time()
            out = als(Y, start["U"], start["V"], lam, sweeps)
            if threads == "1":
                als1_cpu.append(time.thread_time() - c0)
            return time.perf_counter() - t0, out

    # CPU time of this thread: with one BLAS thread (ours on small blocks, the second ALS) all the work is
    # here, so the ratio of CPU times does not count the time other processes held the cores
    cpu: list[float] = []
    als1_cpu: list[float] = []
    # first round untimed (cold: lazy imports, caches); the problem build stays outside the timed mc.solve
    res, cold, prob = ours()
    start = seeded_start(prob, seed)
    sweeps = res.iterations
    peer(start, sweeps, "default")
    peer(start, sweeps, "1")
    cpu.clear()
    als1_cpu.clear()
    runs, als_times, als1_times = [], [], []
    for _ in range(repeats):
        runs.append(ours())
        als_times.append(peer(start, sweeps, "default")[0])
        t1, (Ua, Va) = peer(start, sweeps, "1")
        als1_times.append(t1)
    res, _, prob = runs[-1]
    t_ours = statistics.median(r[1] for r in runs)
    t_als, t_als1 = statistics.median(als_times), statistics.median(als1_times)
    t_peer = min(t_als, t_als1)
    f_als = mf_objective(Y, Ua, Va, lam)
    f_start = mf_objective(Y, start["U"], start["V"], lam)
    return {
        "case": "demo: digits 600x64, rank 12, lambda 8, solver=auto",
        "sweeps": sweeps, "status": res.status,
        "certificate": str(res.certificate), "block_gaps": dict(res.certificate.block_gaps),
        "ours_time": t_ours, "ours_times": [r[1] for r in runs], "ours_cold_time": cold,
        "ours_total_time": res.total_time, "ours_build_time": res.build_time,
        "peer_time": t_peer, "peer_als_time": t_als, "peer_als_times": als_times,
        "peer_als_one_thread_time": t_als1, "peer_als_one_thread_times": als1_times,
        "ratio_ours_over_peer": t_ours / t_peer, "ratio_ours_over_als_as_found": t_ours / t_als,
        "ours_cpu_time": statistics.median(cpu), "peer_als_one_thread_cpu_time": statistics.median(als1_cpu),
        "ratio_cpu_ours_over_als_one_thread": statistics.median(cpu) / statistics.median(als1_cpu),
        "ours_objective": res.objective, "peer_objective": f_als, "objective_rel_diff": rel(res.objective, f_als),
        "start_objective_ours": res.history[0].objective, "start_objective_peer": f_start,
        "start_rel_diff": rel(res.history[0].objective, f_start),
        "max_abs_diff_U": float(np.abs(res.values["U"] - Ua).max()),
        "ours_solver_time": res.solver_time,
        "ours_solver_share": statistics.median(r[0].solver_time / r[0].total_time for r in runs),
        "forms": res.info.get("forms"), "backends_used": dict(res.backends_used),
        "cvxpy_path_reasons": res.info.get("cvxpy_path_reasons"),
    }


# -- 2. the front end against a rebuild-every-solve loop ---------------------------------------------
def mf_gaussian(m: int, n: int, rank: int, seed: int = 0, noise: float = 0.1):
    """The data and start of bench_factorization.py: low rank plus noise, then U0, V0 from the same stream."""
    rng = np.random.default_rng(seed)
    Y = rng.standard_normal((m, rank)) @ rng.standard_normal((rank, n)) + noise * rng.standard_normal((m, n))
    return Y, rng.standard_normal((m, rank)), rng.standard_normal((rank, n))


def case_rebuild(repeats: int, sweeps: int, m: int = 200, n: int = 100, rank: int = 5, lam: float = 0.1) -> list[dict]:
    Y, U0, V0 = mf_gaussian(m, n, rank)

    def ours(solver: str):
        prob, U, V = mf_problem(Y, rank, lam)
        t0 = time.perf_counter()
        # tol=0: never stop early, so both sides run exactly `sweeps` sweeps (+ our final certificate pass)
        res = mc.solve(prob, [[U], [V]], algorithm="gauss-seidel", solver=solver, init={U: U0, V: V0},
                       max_iters=sweeps, tol=0.0, progress=False)
        return res, time.perf_counter() - t0

    t_peer, peer_times, peer_cold, peer = timed(
        lambda: dmcp_style_factorization(Y, U0, V0, lam, sweeps, solver="CLARABEL"), repeats)
    rows = []
    for solver in ("clarabel", "auto"):
        runs = [ours(solver) for _ in range(repeats + 1)]
        res = runs[-1][0]
        t_ours = statistics.median(r[1] for r in runs[1:])
        f_ours = res.history[sweeps].objective if len(res.history) > sweeps else res.objective
        rows.append({
            "case": f"rebuild: MF {m}x{n}, rank {rank}, lambda {lam}, {sweeps} sweeps, ours solver={solver}, "
                    "peer clarabel",
            "solver": solver, "sweeps": sweeps, "iterations": res.iterations, "status": res.status,
            "ours_time": t_ours, "ours_times": [r[1] for r in runs[1:]], "ours_cold_time": runs[0][1],
            "ours_time_per_sweep": t_ours / sweeps, "ours_total_time": res.total_time,
            "ours_build_time": res.build_time,
            "peer_time": t_peer, "peer_times": peer_times, "peer_cold_time": peer_cold,
            "peer_time_per_sweep": t_peer / sweeps,
            "speedup_peer_over_ours": t_peer / t_ours,
            "ours_objective": f_ours, "peer_objective": peer["objective"],
            "objective_rel_diff": rel(f_ours, peer["objective"]),
            "ours_solver_time": res.solver_time, "ours_solver_share": res.solver_time / res.total_time,
            "peer_solver_time": peer["solver_time"], "peer_solver_share": peer["solver_time"] / peer["total_time"],
            "forms": res.info.get("forms"), "backends_used": dict(res.backends_used),
            "cvxpy_path_reasons": res.info.get("cvxpy_path_reasons"),
        })
    return rows


# -- 5. the solver share of reduced problems where the backend does real work ------------------------
#: (label, m, n, rank, sweeps, solvers) of the share case.
SHARE_CASES = (("MF 200x100 rank 5", 200, 100, 5, 20, ("clarabel", "osqp", "daqp", "auto")),
               ("MF 3000x2000 rank 10", 3000, 2000, 10, 5, ("auto",)))
SHARE_TARGET = 0.9


@contextmanager
def dispatcher_clock(spent: list[float]) -> Iterator[None]:
    """Adds the wall time of every :func:`multiconvex.solvers.dispatch.solve` call inside to ``spent[0]``: the time
    the backend's module takes, its conversion of the subproblem value to the backend's own format included
    (``Result.solver_time`` is the backend's own solve time)."""
    original = dispatch.solve

    def timed_solve(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - t0
    dispatch.solve = timed_solve
    try:
        yield
    finally:
        dispatch.solve = original


def _share_call(Y: np.ndarray, U0: np.ndarray, V0: np.ndarray, lam: float, solver: str,
                sweeps: int) -> tuple[Any, float, float]:
    """One ``mc.solve`` of the share case: the result, its wall time, and the time in the dispatcher's calls."""
    prob, U, V = mf_problem(Y, U0.shape[1], lam)
    spent = [0.0]
    t0 = time.perf_counter()
    with dispatcher_clock(spent):
        res = mc.solve(prob, [[U], [V]], algorithm="gauss-seidel", solver=solver, init={U: U0, V: V0},
                       max_iters=sweeps, tol=0.0, progress=False)
    return res, time.perf_counter() - t0, spent[0]


def case_share(repeats: int, lam: float = 0.1) -> list[dict]:
    """The solver share of ``mc.solve`` on reduced block subproblems (every block compiled to its own variables),
    per backend: the backend's own solve time (``Result.solver_time``) over the call, and the time of the
    dispatcher's calls (:func:`dispatcher_clock`: the backend module, data conversion included) over the call.
    Median of ``repeats`` calls after an untimed one; ``tol=0`` and ``max_iters=sweeps``, so that every call runs
    the same sweeps (plus the certificate pass)."""
    rows = []
    for label, m, n, rank, sweeps, solvers in SHARE_CASES:
        Y, U0, V0 = mf_gaussian(m, n, rank)
        for solver in solvers:
            _share_call(Y, U0, V0, lam, solver, sweeps)  # untimed: lazy imports, first solves
            runs = [_share_call(Y, U0, V0, lam, solver, sweeps) for _ in range(repeats)]
            res = runs[-1][0]
            share = statistics.median(r.solver_time / r.total_time for r, _, _ in runs)
            run_share = statistics.median(r.solver_time / (r.total_time - r.build_time) for r, _, _ in runs)
            call_share = statistics.median(d / r.total_time for r, _, d in runs)
            rows.append({
                "case": f"share: {label}, lambda {lam}, {sweeps} sweeps, solver={solver}", "label": label,
                "solver": solver, "sweeps": sweeps, "status": res.status, "iterations": res.iterations,
                "ours_time": statistics.median(t for _, t, _ in runs), "ours_times": [t for _, t, _ in runs],
                "ours_solver_time": statistics.median(r.solver_time for r, _, _ in runs),
                "ours_dispatch_time": statistics.median(d for _, _, d in runs),
                "ours_solver_share": share, "ours_solver_share_of_run": run_share,
                "ours_dispatch_share": call_share,
                "meets_target": share >= SHARE_TARGET, "ours_objective": res.objective,
                "forms": res.info.get("forms"), "backends_used": dict(res.backends_used),
                "cvxpy_path_reasons": res.info.get("cvxpy_path_reasons"),
            })
            print(f"share: {label} {solver}: {share:.2f} of the call, {run_share:.2f} of the run, dispatcher "
                  f"{call_share:.2f} of the call ({res.backends_used})", flush=True)
    return rows


# -- 3. large MF in a child process -------------------------------------------------------------------
def child_large(m: int, n: int, rank: int, time_limit: float, max_iters: int, noise: float, tol: float) -> dict:
    """Runs in a fresh process: peak RSS here is mc.solve's, plus the interpreter, imports and data."""
    lam, seed = 0.1, 0
    Y, _, _ = mf_gaussian(m, n, rank, seed=0, noise=noise)  # the start is mc.solve's own seeded draw
    prob, U, V = mf_problem(Y, rank, lam)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t0 = time.perf_counter()
    res = mc.solve(prob, [[U], [V]], algorithm="gauss-seidel", solver="auto", seed=seed, time_limit=time_limit,
                   max_iters=max_iters, tol=tol, progress=False)
    wall = time.perf_counter() - t0
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # read before the peer runs
    start = seeded_start(prob, seed)
    # the driver stops a sweep right after the block during which the deadline passed: replay that
    partial = res.status == "time_limit" and res.history[-1].accepted_block == "U"
    t1 = time.perf_counter()
    Ua, Va = als(Y, start["U"], start["V"], lam, res.iterations, last_u_only=partial)
    t_als = time.perf_counter() - t1
    f_als = mf_objective(Y, Ua, Va, lam)
    f_als_full = f_als if not partial else mf_objective(Y, *als(Y, start["U"], start["V"], lam, res.iterations), lam)
    return {
        "case": f"large: MF {m}x{n}, rank {rank}, lambda {lam}, noise {noise}, time_limit {time_limit}, tol {tol}",
        "m": m, "n": n, "rank": rank, "time_limit": time_limit, "max_iters": max_iters, "tol": tol,
        "status": res.status, "iterations": res.iterations, "message": res.message,
        "last_sweep_partial": partial, "last_sweep_accepted": res.history[-1].accepted_block,
        "ours_time": wall, "ours_total_time": res.total_time, "ours_build_time": res.build_time,
        "within_time_limit": wall <= time_limit, "overshoot": wall - time_limit,
        "rss_before_solve_bytes": rss_before, "peak_rss_bytes": rss_peak,
        "peer_time": t_als, "ratio_ours_over_peer": wall / t_als if t_als > 0 else None,
        "ours_objective": res.objective, "peer_objective": f_als, "objective_rel_diff": rel(res.objective, f_als),
        "peer_objective_all_full_sweeps": f_als_full,
        "start_rel_diff": rel(res.history[0].objective, mf_objective(Y, start["U"], start["V"], lam)),
        "ours_solver_time": res.solver_time, "ours_solver_share": res.solver_time / res.total_time,
        "certificate_max_gap": res.certificate.max_gap,
        "forms": res.info.get("forms"), "backends_used": dict(res.backends_used),
        "cvxpy_path_reasons": res.info.get("cvxpy_path_reasons"), "blas": blas_info(),
    }


def case_large(m: int, n: int, rank: int, time_limit: float, max_iters: int, noise: float, tol: float,
               blas: str) -> dict:
    env = dict(os.environ)
    if blas != "default":
        env.update({k: blas for k in BLAS_ENV})
    cmd = [sys.executable, "-m", "multiconvex.benchmarks.bench_subproblem", "--child-large",
           str(m), str(n), str(rank), str(time_limit), str(max_iters), str(noise), str(tol)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=time_limit * 4 + 300)
    process_wall = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(CHILD_TAG)]
    if proc.returncode != 0 or not lines:
        return {"case": f"large: MF {m}x{n}, tol {tol}", "error": f"child exited {proc.returncode}",
                "stderr_tail": proc.stderr[-3000:], "process_wall": process_wall}
    out = json.loads(lines[-1][len(CHILD_TAG):])
    out["process_wall"] = process_wall  # interpreter start + imports + data + solve + peer
    return out


# -- 4. Jacobi block solves through executors ---------------------------------------------------------
JACOBI_EXECUTORS = (("inprocess", None), ("threads", 2), ("processes", 2), ("dask", 2))


def _warm_worker(seconds: float) -> int:
    """Pool warm-up task: import what a shipped block solve needs (the dispatcher and its backends)."""
    import multiconvex.solvers.dispatch  # noqa: F401

    time.sleep(seconds)
    return os.getpid()


class _KeepOpen:
    """An executor handed to ``mc.solve`` that ``mc.solve`` cannot close: the pool is started once,
    outside the timings, and every timed run re-uses it (``kind`` is what the driver reads to ship
    compiled blocks as plain data to processes / Dask)."""

    def __init__(self, ex: Any):
        self._ex, self.kind, self.workers = ex, ex.kind, ex.workers

    def map(self, fn, items):
        return self._ex.map(fn, items)

    def as_completed(self, fn, items):
        return self._ex.as_completed(fn, items)

    def close(self) -> None:
        pass


def _dask_installed() -> bool:
    try:
        import dask  # noqa: F401
        import distributed  # noqa: F401
    except ImportError:
        return False
    return True


def case_jacobi(repeats: int, solvers: list[str], m: int = 1500, n: int = 1000, rank: int = 10, lam: float = 0.1,
                iters: int = 15, seed: int = 0) -> dict:
    """``mc.solve(algorithm="jacobi")`` on MF m×n through every executor, timings interleaved round by round.

    Per executor: the pool is started once (``make_executor``, then one warm-up task per worker that
    imports the dispatcher: the reported start-up), one untimed warm-up solve, then ``repeats`` timed
    solves through the same pool (median), one round of every executor after another so that load
    drift hits them alike. One more call per pooled executor as a user writes it
    (``executor="processes", workers=2``: pool start and shut-down included). Iterates are compared
    with the in-process run's: objective history and final U, V.
    """
    from multiconvex.executor import make_executor

    Y, _, _ = mf_gaussian(m, n, rank, seed=seed)
    kinds = [(k, w) for k, w in JACOBI_EXECUTORS if k != "dask" or _dask_installed()]
    skipped = [k for k, _ in JACOBI_EXECUTORS if k not in dict(kinds)]

    def one(solver: str, executor: Any, workers: int | None):
        prob, U, V = mf_problem(Y, rank, lam)  # fresh: mc.solve leaves its answer in the variables
        t0 = time.perf_counter()
        res = mc.solve(prob, [[U], [V]], algorithm="jacobi", solver=solver, seed=seed, max_iters=iters, tol=0.0,
                       progress=False, executor=executor, workers=workers)
        return res, time.perf_counter() - t0

    pools: dict[str, Any] = {}
    startup: dict[str, dict] = {}
    out: dict[str, Any] = {"case": f"jacobi: MF {m}x{n}, rank {rank}, lambda {lam}, {iters} Jacobi iterations, "
                                   f"seed {seed}, tol 0", "skipped_executors": skipped, "solvers": {}}
    try:
        for kind, workers in kinds:
            if kind == "inprocess":
                continue
            t0 = time.perf_counter()
            ex = make_executor(kind, workers)
            created = time.perf_counter() - t0
            pause = 0.1
            t1 = time.perf_counter()
            pids = ex.map(_warm_worker, [pause] * workers)
            warmed = time.perf_counter() - t1 - pause  # the task's own sleep is not start-up
            pools[kind] = ex
            startup[kind] = {"create_s": created, "first_tasks_s": warmed, "startup_s": created + warmed,
                             "distinct_worker_pids": len(set(pids)), "describe": ex.describe()}
            print(f"jacobi: {ex.describe()} up in {created + warmed:.2f} s", flush=True)
        for solver in solvers:
            label = {k: k if w is None else f"{k}-{w}" for k, w in kinds}
            spec = {k: (k if k == "inprocess" else _KeepOpen(pools[k]), w) for k, w in kinds}
            runs: dict[str, list] = {k: [] for k, _ in kinds}
            cold = {k: one(solver, *spec[k])[1] for k, _ in kinds}  # untimed: lazy imports, first solves
            for _ in range(repeats):
                for k, _w in kinds:
                    runs[k].append(one(solver, *spec[k]))
            fresh = {k: one(solver, k, w) for k, w in kinds if k != "inprocess"}  # as a user calls it
            ref = runs["inprocess"][-1][0]
            t_ref = statistics.median(r[1] for r in runs["inprocess"])
            rows = {}
            for k, _w in kinds:
                res = runs[k][-1][0]
                t = statistics.median(r[1] for r in runs[k])
                hist = max(rel(a.objective, b.objective) for a, b in zip(res.history, ref.history))
                rows[label[k]] = {
                    "executor": k, "workers": _w, "time": t, "times": [r[1] for r in runs[k]],
                    "cold_time": cold[k], "time_per_iteration": t / iters,
                    "speedup_vs_inprocess": t_ref / t,
                    "startup_s": startup.get(k, {}).get("startup_s"),
                    "fresh_call_time": fresh[k][1] if k in fresh else None,
                    "fresh_call_objective": fresh[k][0].objective if k in fresh else None,
                    "iterations": res.iterations, "status": res.status, "objective": res.objective,
                    "objective_rel_diff_vs_inprocess": rel(res.objective, ref.objective),
                    "history_max_rel_diff_vs_inprocess": hist,
                    "same_history_length": len(res.history) == len(ref.history),
                    "max_abs_diff_U": float(np.abs(res.values["U"] - ref.values["U"]).max()),
                    "max_abs_diff_V": float(np.abs(res.values["V"] - ref.values["V"]).max()),
                    "bitwise_same_objective": res.objective == ref.objective,
                    "solver_time": res.solver_time, "total_time": res.total_time, "build_time": res.build_time,
                    "solver_share": res.solver_time / res.total_time,
                    "forms": res.info.get("forms"), "backends_used": dict(res.backends_used),
                    "cvxpy_path_reasons": res.info.get("cvxpy_path_reasons"),
                }
                print(f"jacobi {solver} {label[k]}: {t:.3f} s (x{t_ref / t:.2f}), objective {res.objective:.10g}",
                      flush=True)
            out["solvers"][solver] = rows
    finally:
        for ex in pools.values():
            ex.close()
    out["startup"] = startup
    return out


def jacobi_markdown(j: dict) -> str:
    head = ["solver", "executor", "wall s (median)", "speed-up vs in-process", "pool start-up s",
            "one call incl. start-up s", "solver share", "objective", "rel diff vs in-process (final / history)",
            "max |ΔU|, |ΔV|"]
    lines = [f"{j['case']}", "", "| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for solver, rows in j["solvers"].items():
        for label, r in rows.items():
            lines.append("| " + " | ".join([
                solver, label, f"{r['time']:.3f}", f"{r['speedup_vs_inprocess']:.2f}×", _fmt(r["startup_s"]),
                _fmt(r["fresh_call_time"]), f"{r['solver_share']:.0%}", f"{r['objective']:.12g}",
                f"{r['objective_rel_diff_vs_inprocess']:.1e} / {r['history_max_rel_diff_vs_inprocess']:.1e}",
                f"{r['max_abs_diff_U']:.1e}, {r['max_abs_diff_V']:.1e}"]) + " |")
    if j.get("skipped_executors"):
        lines.append(f"\nnot run (not installed): {', '.join(j['skipped_executors'])}")
    return "\n".join(lines)


# -- report -------------------------------------------------------------------------------------------
def _fmt(x: Any, unit: str = "") -> str:
    if x is None:
        return "—"
    if isinstance(x, str):
        return x
    if isinstance(x, float) and (abs(x) >= 1e4 or (x != 0 and abs(x) < 1e-3)):
        return f"{x:.3e}{unit}"
    return f"{x:.4g}{unit}"


def table_rows(run: dict) -> list[list[str]]:
    b = run["blas_threads"]
    rows: list[list[str]] = []

    def add(measure, ours, peer, ratio, target, ok=None, unit=""):
        verdict = "" if ok is None else (" ✓" if ok else " ✗")
        rows.append([b, measure, _fmt(ours, unit), _fmt(peer, unit), _fmt(ratio), target + verdict])

    d = run.get("demo")
    if d:
        add(f"demo digits: mc.solve vs numpy ALS (faster of BLAS as found / 1 thread), time (s), {d['sweeps']} "
            "sweeps", d["ours_time"], d["peer_time"], d["ratio_ours_over_peer"], "ours/ALS ≤ 2",
            d["ratio_ours_over_peer"] <= 2)
        if "ours_cpu_time" in d:
            add("demo digits: CPU time of the thread (s), ours vs ALS on one BLAS thread", d["ours_cpu_time"],
                d["peer_als_one_thread_cpu_time"], d["ratio_cpu_ours_over_als_one_thread"], "ours/ALS ≤ 2",
                d["ratio_cpu_ours_over_als_one_thread"] <= 2)
        add("demo digits: objective", d["ours_objective"], d["peer_objective"], d["objective_rel_diff"],
            "rel diff ≤ 1e-8", d["objective_rel_diff"] <= 1e-8)
        add("demo digits: solver share (ALS: all linear algebra)", d["ours_solver_share"], None, None, "—")
    for r in run.get("rebuild", []):
        add(f"MF 200x100 r5: s/sweep, ours {r['solver']} vs rebuild loop (clarabel)", r["ours_time_per_sweep"],
            r["peer_time_per_sweep"], r["speedup_peer_over_ours"], "peer/ours ≥ 10", r["speedup_peer_over_ours"] >= 10)
        add(f"MF 200x100 r5 ({r['solver']}): objective after {r['sweeps']} sweeps", r["ours_objective"],
            r["peer_objective"], r["objective_rel_diff"], "rel diff ≤ 1e-6", r["objective_rel_diff"] <= 1e-6)
        add(f"MF 200x100 r5 ({r['solver']}): solver share", r["ours_solver_share"], r["peer_solver_share"], None, "—")
    for g in run.get("large", []):
        if "error" in g:
            add(g["case"] + ": FAILED", None, None, None, g["error"], False)
        else:
            tag = f"MF {g['m']}x{g['n']} r{g['rank']} tol={g['tol']:g}"
            sweeps = f"{g['iterations']} sweeps" + (" (last: U only)" if g["last_sweep_partial"] else "")
            add(f"{tag}: time to return (s), {sweeps}, {g['status']}; peer numpy ALS",
                g["ours_time"], g["peer_time"], g["ratio_ours_over_peer"], f"≤ {g['time_limit']:g} s",
                g["within_time_limit"])
            add(f"{tag}: peak RSS of the child (GB)", g["peak_rss_bytes"] / 1e9, None, None, "≤ 4 GB",
                g["peak_rss_bytes"] <= 4e9)
            add(f"{tag}: objective", g["ours_objective"], g["peer_objective"], g["objective_rel_diff"],
                "rel diff ≤ 1e-8", g["objective_rel_diff"] <= 1e-8)
            add(f"{tag}: solver share", g["ours_solver_share"], None, None, "—")
    for r in run.get("share", []):
        add(f"{r['label']}, {r['solver']} ({', '.join(r['backends_used'])}), {r['sweeps']} sweeps: solver share of "
            "the call (peer column: the dispatcher's calls, data conversion included)", r["ours_solver_share"],
            r.get("ours_dispatch_share"), None, f"≥ {SHARE_TARGET:g}", r["meets_target"])
    return rows


def markdown(runs: list[dict]) -> str:
    head = ["BLAS threads", "measure", "ours", "peer", "ratio", "target"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for run in runs:
        lines += ["| " + " | ".join(r) + " |" for r in table_rows(run)]
    return "\n".join(lines)


def notes(runs: list[dict]) -> list[str]:
    """Things that look wrong: the cvxpy fallback, objective mismatches, a child that failed."""
    out = []
    for run in runs:
        cases = [run.get("demo"), *run.get("rebuild", []), *run.get("large", []), *run.get("share", [])]
        for c in cases:
            if not c:
                continue
            if "error" in c:
                out.append(f"[{run['blas_threads']}] {c['case']}: {c['error']}")
                continue
            forms = c.get("forms") or {}
            legacy = [b for b, f in forms.items() if f != "matrix"]
            if legacy:
                out.append(f"[{run['blas_threads']}] {c['case']}: blocks {legacy} ran the cvxpy form "
                           f"({c.get('cvxpy_path_reasons')})")
            if c.get("start_rel_diff", 0) > 1e-12:
                out.append(f"[{run['blas_threads']}] {c['case']}: the peer's start differs from ours")
            if c.get("objective_rel_diff", 0) > 1e-8:
                out.append(f"[{run['blas_threads']}] {c['case']}: objective differs from the peer's by "
                           f"{c['objective_rel_diff']:.3g} (relative)")
            if c.get("overshoot", -1) > 0:
                out.append(f"[{run['blas_threads']}] {c['case']}: returned {c['overshoot']:.3f} s after time_limit "
                           f"(build {c['ours_build_time']:.3f} s is before the driver's clock starts; the final "
                           "certificate pass runs after the deadline)")
    for run in runs:
        j = run.get("jacobi")
        for solver, rows in (j or {}).get("solvers", {}).items():
            for label, r in rows.items():
                tag = f"[{run['blas_threads']}] jacobi {solver} {label}"
                legacy = [b for b, f in (r.get("forms") or {}).items() if f != "matrix"]
                if legacy:
                    out.append(f"{tag}: blocks {legacy} ran the cvxpy form ({r.get('cvxpy_path_reasons')})")
                if r["history_max_rel_diff_vs_inprocess"] > 1e-9 or not r["same_history_length"]:
                    out.append(f"{tag}: iterates differ from the in-process run's (objective history rel diff "
                               f"{r['history_max_rel_diff_vs_inprocess']:.3g})")
                elif not r["bitwise_same_objective"]:
                    out.append(f"{tag}: same iterates to {r['history_max_rel_diff_vs_inprocess']:.1e} (relative), "
                               "not bit for bit")
                if r["speedup_vs_inprocess"] < 1:
                    share = rows.get("inprocess", r)["solver_share"]
                    out.append(f"{tag}: slower than in-process ({r['speedup_vs_inprocess']:.2f}×); the backend "
                               f"solves a pool can spread are {share:.0%} of the in-process run")
    return out


def merge_report(old: dict, new: dict, only: set[str]) -> dict:
    """``--only``: the cases run now replace theirs in the stored report (per BLAS setting); the others stay."""
    merged = dict(old)
    runs = [dict(r) for r in old.get("runs", [])]
    for run in new["runs"]:
        parts = {k: run[k] for k in only if k in run}
        parts.update({f"{k}_loadavg": [run["loadavg_start"], run["loadavg_end"]] for k in parts})
        parts.update({f"{k}_when": new["when"] for k in only if k in run})
        target = next((r for r in runs if r.get("blas_threads") == run["blas_threads"]), None)
        if target is None:
            runs.append(run)
        else:
            target.update(parts)
    merged["runs"] = runs
    merged.setdefault("updates", []).append({k: new[k] for k in ("args", "when", "repeats", "multiconvex")})
    return merged


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller large case (600x400), one repeat, 5 sweeps")
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats per case, median taken (default 3)")
    ap.add_argument("--sweeps", type=int, default=None, help="sweeps of the rebuild comparison (default 20)")
    ap.add_argument("--large", type=int, nargs=3, metavar=("M", "N", "RANK"), default=None,
                    help="size of the large case (default 3000 2000 10; --quick 600 400 10)")
    ap.add_argument("--time-limit", type=float, default=30.0, help="time_limit of the large case (s)")
    ap.add_argument("--max-iters", type=int, default=1000, help="max_iters of the large case")
    ap.add_argument("--noise", type=float, default=0.1, help="noise level of the large case's data")
    ap.add_argument("--large-tol", default="1e-6,0",
                    help="comma list of tols for the large case, one child each (0: never converges, so the "
                         "time limit or max_iters stops it)")
    ap.add_argument("--blas-threads", default="default",
                    help="comma list of BLAS thread settings to run under, e.g. 'default,1'")
    ap.add_argument("--only", choices=["demo", "rebuild", "large", "jacobi", "share"], action="append",
                    help="run only these cases")
    ap.add_argument("--jacobi", type=int, nargs=3, metavar=("M", "N", "RANK"), default=None,
                    help="size of the Jacobi executor case (default 1500 1000 10; --quick 300 200 5)")
    ap.add_argument("--jacobi-iters", type=int, default=15, help="Jacobi iterations of the executor case")
    ap.add_argument("--jacobi-solvers", default="auto,clarabel",
                    help="comma list of solver= values for the Jacobi executor case")
    ap.add_argument("--out", default=None, help="JSON path (default results/subproblem.json; --quick: none)")
    ap.add_argument("--child-large", nargs=7, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child_large:
        m, n, rank, tl, mi, noise, tol = args.child_large
        res = child_large(int(m), int(n), int(rank), float(tl), int(mi), float(noise), float(tol))
        print(CHILD_TAG + json.dumps(res, default=float), flush=True)
        return

    repeats = args.repeats or (1 if args.quick else 3)
    sweeps = args.sweeps or (5 if args.quick else 20)
    m, n, rank = args.large or ((600, 400, 10) if args.quick else (3000, 2000, 10))
    only = set(args.only or ["demo", "rebuild", "large", "jacobi", "share"])
    jm, jn, jrank = args.jacobi or ((300, 200, 5) if args.quick else (1500, 1000, 10))
    runs = []
    for blas in args.blas_threads.split(","):
        blas = blas.strip()
        run: dict[str, Any] = {"blas_threads": blas, "loadavg_start": os.getloadavg()}
        with blas_threads(blas):
            run["blas"] = blas_info()
            if "demo" in only:
                run["demo"] = case_demo(repeats)
                print(f"[{blas}] demo done: ours {run['demo']['ours_time']:.4f}s, ALS {run['demo']['peer_time']:.4f}s",
                      flush=True)
            if "rebuild" in only:
                run["rebuild"] = case_rebuild(repeats, sweeps)
                print(f"[{blas}] rebuild done", flush=True)
            if "share" in only:
                run["share"] = case_share(repeats)
                print(f"[{blas}] share done", flush=True)
            if "jacobi" in only:
                run["jacobi"] = case_jacobi(repeats, [s.strip() for s in args.jacobi_solvers.split(",")],
                                            m=jm, n=jn, rank=jrank, iters=args.jacobi_iters)
                print(f"[{blas}] jacobi done", flush=True)
        if "large" in only:
            run["large"] = [case_large(m, n, rank, args.time_limit, args.max_iters, args.noise, float(tol), blas)
                            for tol in args.large_tol.split(",")]
            print(f"[{blas}] large done", flush=True)
        run["loadavg_end"] = os.getloadavg()
        runs.append(run)

    print()
    if any(table_rows(run) for run in runs):
        print(markdown(runs))
    for run in runs:
        if run.get("jacobi"):
            print(f"\nBLAS threads {run['blas_threads']}: " + jacobi_markdown(run["jacobi"]))
    for line in notes(runs):
        print("note:", line)
    report = {"runs": runs, "args": vars(args), "repeats": repeats, "sweeps": sweeps,
              "machine": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
              "numpy": np.__version__, "cvxpy": cp.__version__, "multiconvex": mc.__version__,
              "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    out = args.out or (None if args.quick else str(OUT / "subproblem.json"))
    if out and args.only and Path(out).exists():
        report = merge_report(json.loads(Path(out).read_text()), report, only)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(report, indent=1, default=float))
        print(f"wrote {out}")
    else:
        print(json.dumps(report, indent=1, default=float))


if __name__ == "__main__":
    main()
