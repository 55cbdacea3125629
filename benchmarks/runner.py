"""The runner behind ``multiconvex bench``: cases through an executor into a run directory.

A run directory holds

- ``run.json``: the exact command, suite, options, seeds, the case list and the
  environment of the process that started the run;
- ``results.jsonl``: one JSON record per finished case, appended (and flushed)
  as each case finishes, so an interrupted run loses nothing finished;
- ``results.csv``: the same records, flat, written at the end.

``resume=True`` re-reads ``run.json`` and runs only the cases that have no record.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

import multiconvex as mc
from multiconvex.errors import LicenceError
from multiconvex.executor import InProcessExecutor, iter_completed
from multiconvex.globalopt.relu_convex import convex_relu_regression
from multiconvex.solvers import get_backend

from . import peers
from .environment import environment
from .problems import build
from .suites import GLOBAL_METHODS, OURS, Case, expand

logger = logging.getLogger("multiconvex.bench")

#: Statuses of a case that ran to an answer (others: error, licence_limit, solver_failure, diverged).
OK_STATUSES = ("converged", "stalled", "iteration_limit", "time_limit", "bound_active")
CSV_FIELDS = ("id", "suite", "problem", "method", "backend", "seed", "status", "objective", "reference", "gap",
              "max_block_gap", "is_partial_minimum", "iterations", "wall_time", "cpu_time", "run_time", "solver_time",
              "build_time", "peak_rss_mb", "rss_delta_mb", "worker", "error")


class RunDirError(Exception):
    """A run directory that cannot be used as asked (exists without --resume, or has no run)."""


# -- measuring one case -------------------------------------------------------------------------------
class _PeakRSS:
    """Sample this process's resident memory every ``interval`` seconds (a background thread)."""

    def __init__(self, interval: float = 0.02):
        self.interval = interval
        self.start = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _rss() -> float:
        try:
            with open("/proc/self/statm") as fh:
                return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
        except (OSError, ValueError):  # not Linux: the process peak so far
            import resource  # lazy: Unix-only module, the fallback when /proc is missing

            scale = 1 if sys.platform == "darwin" else 1024
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self._rss())

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())


def _thin(trajectory: list[list[float]], keep: int = 200) -> list[list[float]]:
    if len(trajectory) <= keep:
        return trajectory
    idx = np.unique(np.linspace(0, len(trajectory) - 1, keep).round().astype(int))
    return [trajectory[i] for i in idx]


def _run_ours(case: Case, inst, start: dict, max_iters: int) -> dict:
    model = inst.make()
    model.set_values(start, where=case.id)
    res = mc.solve(model.problem, model.blocks, algorithm=case.method, solver=case.backend, max_iters=max_iters,
                   tol=case.tol, time_limit=case.time_limit, seed=case.seed, progress=False)
    # history times start after the block subproblems are built
    return {**_result_record(res, offset=res.build_time), "build_time": res.build_time,
            "backends_used": dict(res.backends_used)}


def _result_record(res, offset: float = 0.0) -> dict:
    """The record fields every :class:`multiconvex.Result` gives: outcome, times, certificate, trajectory."""
    cert = res.certificate
    return {"objective": float(res.objective), "status": res.status, "iterations": res.iterations,
            "run_time": res.total_time, "solver_time": res.solver_time,
            "max_block_gap": None if math.isnan(cert.max_gap) else float(cert.max_gap),
            "is_partial_minimum": bool(cert.is_partial_minimum), "certificate_tolerance": cert.tolerance,
            "global_optimal": cert.global_optimal,
            "trajectory": _thin([[offset + h.time, h.objective] for h in res.history]), "message": res.message}


def _run_global(case: Case, inst, start: dict, max_iters: int) -> dict:
    """``grow`` (certified global optimum) or the convex reformulation it is checked against."""
    d = inst.data
    if case.method == "convex-reformulation":
        sol = convex_relu_regression(d["Xb"], d["y"], d["lam"], patterns="exact", solver=case.backend)
        return {"objective": float(sol.objective), "status": sol.status, "iterations": None,
                "run_time": sol.wall_time, "solver_time": sol.solver_time,
                "trajectory": [[sol.wall_time, float(sol.objective)]], "global_optimal": None,
                "message": f"{len(sol.patterns)} activation patterns, exact={sol.exact}"}
    if "Y" in d:  # matrix factorization
        from multiconvex.models import MatrixFactorization  # lazy: the models import torch (~0.7 s)

        est = MatrixFactorization(lam=d["lam"], seed=case.seed).fit(d["Y"], algorithm="grow", solver=case.backend,
                                                                   time_limit=case.time_limit)
    else:
        from multiconvex.models import ParallelReLUNetwork  # lazy: the models import torch (~0.7 s)

        est = ParallelReLUNetwork(subnetwork=[d["X"].shape[1], 1, 1], lam=d["lam"], seed=case.seed)
        est.fit(d["X"], d["y"], algorithm="grow", solver=case.backend, patterns="exact", time_limit=case.time_limit)
    return {**_result_record(est.result_), "subnetworks": est.result_.subnetworks}


def _run_peer(case: Case, inst, start: dict, max_iters: int) -> dict:
    if case.method == "dmcp-loop":
        solver = "CLARABEL" if case.backend == "auto" else get_backend(case.backend).cvxpy_target()
        out = peers.dmcp_style_alternation(inst.make(), start, inst.objective, solver=solver, max_sweeps=max_iters,
                                           tol=case.tol, time_limit=case.time_limit)
    elif case.method.startswith("sklearn-"):
        d = inst.data
        out = peers.sklearn_nmf(d["Y"], d["rank"], d["alpha"], start, inst.objective,
                                solver=case.method.split("-", 1)[1], tol=case.tol)
    elif case.method == "bigm-miqp":
        out = peers.bigm_miqp(inst.data["x"], inst.data["y"], inst.data["hidden"],
                              solver=get_backend(case.backend).cvxpy_target())
    elif case.method in ("torch-adam", "torch-gd"):
        out = peers.torch_descent(inst.torch_objective, start, method=case.method.split("-", 1)[1],
                                  nonneg=inst.nonneg, time_limit=case.time_limit, tol=1e-12)
    else:
        raise ValueError(f"unknown method {case.method!r}")
    out["run_time"] = out.pop("total_time")
    out["trajectory"] = _thin(out["trajectory"])
    out.pop("values", None)
    return out


class _Skip(Exception):
    pass


def run_case(case: Case) -> dict:
    """Run one case and return its record. Never raises for a failing case: the record says why."""
    record: dict[str, Any] = {**case.to_dict(), "worker": f"{environment()['host']}:{os.getpid()}",
                              "started": time.time()}
    try:  # building the data (and a reference optimum) is set-up, cached per process: not timed
        t_setup = time.perf_counter()
        inst = build(case.problem)
        record["setup_time"] = time.perf_counter() - t_setup
    except Exception as exc:  # noqa: BLE001
        inst = None
        record.update(status="error", error=f"building {case.problem}: {type(exc).__name__}: {exc}")
    t0, cpu0 = time.perf_counter(), time.process_time()
    try:
        if inst is None:
            raise _Skip
        with _PeakRSS() as mem:
            start = inst.start(case.seed)
            max_iters = case.max_iters or inst.max_iters
            run = _run_ours if case.method in OURS else _run_global if case.method in GLOBAL_METHODS else _run_peer
            out = run(case, inst, start, max_iters)
        record.update(out)
        record["peak_rss_mb"], record["rss_delta_mb"] = mem.peak, mem.peak - mem.start
        ref = inst.reference
        record["reference"], record["reference_note"] = ref, inst.reference_note
        record["gap"] = None if ref is None else (record["objective"] - ref) / max(1.0, abs(ref))
    except _Skip:
        pass
    except LicenceError as exc:
        record.update(status="licence_limit", error=str(exc))
    except Exception as exc:  # noqa: BLE001 - the record carries the failure; the sweep goes on
        record.update(status="error", error=f"{type(exc).__name__}: {exc}")
    record["wall_time"] = time.perf_counter() - t0
    record["cpu_time"] = time.process_time() - cpu0  # wall >> cpu: the case waited for a core
    for key in CSV_FIELDS:  # peers have no certificate, failed cases no objective: recorded as null
        record.setdefault(key, None)
    record["env"] = environment()
    return record


# -- a run directory ----------------------------------------------------------------------------------
def read_records(run_dir: str | Path) -> list[dict]:
    """Every record in ``run_dir/results.jsonl`` (a torn last line from a kill is skipped)."""
    path = Path(run_dir) / "results.jsonl"
    records = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                logger.warning("%s: skipping an unreadable line (an interrupted write)", path)
    return records


def read_run(run_dir: str | Path) -> dict:
    path = Path(run_dir) / "run.json"
    if not path.exists():
        raise RunDirError(f"{run_dir} holds no benchmark run (no run.json); run `multiconvex bench --out {run_dir}`.")
    return json.loads(path.read_text())


def write_csv(run_dir: str | Path, records: list[dict]) -> Path:
    path = Path(run_dir) / "results.csv"
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in records:
            w.writerow({k: r.get(k) for k in CSV_FIELDS})
    return path


@dataclass
class BenchOptions:
    suite: str = "quick"
    solvers: list[str] = field(default_factory=lambda: ["clarabel"])
    seeds: list[int] = field(default_factory=lambda: [0])
    methods: list[str] | None = None
    problems: list[str] | None = None
    max_iters: int | None = None
    time_limit: float | None = None
    tol: float = 1e-6


@dataclass
class BenchSummary:
    run_dir: Path
    total: int
    skipped: int  # finished before (resume)
    ran: int
    failed: list[str]  # ids with status error
    records: list[dict]


def run_bench(out: str | Path, options: BenchOptions | None = None, *, resume: bool = False, executor: Any = None,
              command: list[str] | None = None, on_record: Callable[[dict], None] | None = None,
              progress: bool = False) -> BenchSummary:
    """Run a suite into ``out`` (or finish the run there with ``resume=True``).

    Parameters
    ----------
    out : path
        The run directory. Without ``resume`` it must not hold results yet.
    options : BenchOptions
        What to run; with ``resume`` the options stored in ``run.json`` are used.
    executor : optional
        From :func:`multiconvex.executor.make_executor`; in-process when None.
    on_record : callable, optional
        Called with each record as it is written (the CLI logs it).
    """
    run_dir = Path(out)
    if resume:
        meta = read_run(run_dir)
        options = BenchOptions(**meta["options"])
    else:
        if (run_dir / "results.jsonl").exists():
            raise RunDirError(f"{run_dir} already holds results: pass --resume to finish that run, "
                              "or choose another --out.")
        options = options or BenchOptions()
    cases = expand(options.suite, options.solvers, options.seeds, methods=options.methods,
                   problems=options.problems, max_iters=options.max_iters, time_limit=options.time_limit,
                   tol=options.tol)
    done = {r["id"] for r in read_records(run_dir)}
    todo = [c for c in cases if c.id not in done]
    executor = executor or InProcessExecutor()
    run_dir.mkdir(parents=True, exist_ok=True)
    meta_path = run_dir / "run.json"
    meta = json.loads(meta_path.read_text()) if resume else {
        "command": command or [], "cwd": os.getcwd(), "options": vars(options), "seeds": options.seeds,
        "cases": [c.id for c in cases], "environment": environment(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "sessions": []}
    meta["sessions"].append({"command": command or [], "executor": _describe(executor), "resume": resume,
                             "started": time.strftime("%Y-%m-%d %H:%M:%S"), "todo": len(todo)})
    meta_path.write_text(json.dumps(meta, indent=2, default=str))
    failed: list[str] = []
    bar = _bar(len(cases), len(done), progress)
    try:
        with (run_dir / "results.jsonl").open("a") as fh:
            for _, record in iter_completed(executor, run_case, todo):
                fh.write(json.dumps(record, default=_json_default) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
                if record["status"] == "error":
                    failed.append(record["id"])
                if on_record:
                    on_record(record)
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        records = read_records(run_dir)
        write_csv(run_dir, records)
        meta["sessions"][-1]["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
        meta["sessions"][-1]["complete"] = {c.id for c in cases} <= {r["id"] for r in records}
        meta_path.write_text(json.dumps(meta, indent=2, default=str))
    return BenchSummary(run_dir, len(cases), len(done), len(todo), failed, records)


def _describe(executor: Any) -> str:
    return executor.describe() if hasattr(executor, "describe") else type(executor).__name__


def _bar(total: int, initial: int, show: bool):
    if not show:
        return None

    return tqdm(total=total, initial=initial, desc="bench", unit="case")


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    return str(o)


def list_cases(options: BenchOptions) -> Iterable[Case]:
    return expand(options.suite, options.solvers, options.seeds, methods=options.methods, problems=options.problems,
                  max_iters=options.max_iters, time_limit=options.time_limit, tol=options.tol)
