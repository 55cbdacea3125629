"""The runner behind ``multiconvex bench``: cases through an executor into a run directory.

The run directory's files (``run.json``, ``results.jsonl`` appended and fsynced per record,
``results.csv``) and the rules that keep them whole are :mod:`.rundir`'s; its names are
re-exported here. ``resume=True`` re-reads ``run.json`` and runs only the cases of the run that have no
record (a case that ended in an error has its record: it is counted, not run again). Ctrl-C (SIGINT) stops
the run after writing what finished.
"""

from __future__ import annotations

import logging
import math
import os
import signal
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
from multiconvex.errors import InvalidInputError, LicenceError
from multiconvex.executor import InProcessExecutor, iter_completed
from multiconvex.globalopt.relu_convex import convex_relu_regression
from multiconvex.solvers import get_backend
from multiconvex.validation import check_int, check_number, check_seed

from . import peers
from .environment import environment
from .problems import PROBLEMS, build
from .rundir import (
    CSV_FIELDS,
    RECORD_ID_FIELDS,
    RunDirError,
    append_record,
    prepare_new_run_dir,
    read_records,
    read_run_json,
    repair_torn_tail,
    run_lock,
    write_csv,
    write_json_atomic,
)
from .suites import GLOBAL_METHODS, OURS, SUITES, Case, expand

__all__ = ["OK_STATUSES", "CSV_FIELDS", "RECORD_ID_FIELDS", "MAX_SEEDS", "RunDirError", "BenchOptions", "BenchSummary",
           "run_case", "run_bench", "read_run", "read_records", "options_of", "cases_of", "case_states", "list_cases",
           "prepare_new_run_dir", "write_json_atomic", "repair_torn_tail", "append_record", "write_csv"]

logger = logging.getLogger("multiconvex.bench")

#: Statuses of a case that ran to an answer (others: error, licence_limit, solver_failure, diverged).
OK_STATUSES = ("converged", "stalled", "iteration_limit", "time_limit", "bound_active")


# -- measuring one case -------------------------------------------------------------------------------
class _CaseMemory:
    """The growth of this process's resident memory during one case (sampled every ``interval`` s).

    ``growth_mb`` = peak RSS during the case − RSS when it started: what the case itself added
    (its data, compiled problems, solver workspaces, including memory allocated inside C/Rust
    backends, which ``tracemalloc`` would miss; tracing also slowed cases 4-5x here). Memory
    the process already held and the case reused is not counted.
    """

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

    @property
    def growth_mb(self) -> float:
        return max(0.0, self.peak - self.start)

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

        est = MatrixFactorization(lam=d["lam"], algorithm="grow", solver=case.backend, time_limit=case.time_limit,
                                  random_state=case.seed).fit(d["Y"])
    else:
        from multiconvex.models import ParallelReLUNetwork  # lazy: the models import torch (~0.7 s)

        est = ParallelReLUNetwork(hidden_layer_sizes=(1,), lam=d["lam"], random_state=case.seed, algorithm="grow",
                                  solver=case.backend, patterns="exact", time_limit=case.time_limit)
        est.fit(d["X"], d["y"])
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
        with _CaseMemory() as mem:
            start = inst.start(case.seed)
            max_iters = inst.max_iters if case.max_iters is None else case.max_iters
            run = _run_ours if case.method in OURS else _run_global if case.method in GLOBAL_METHODS else _run_peer
            out = run(case, inst, start, max_iters)
        record.update(out)
        record["case_memory_mb"] = mem.growth_mb
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


def read_run(run_dir: str | Path) -> dict:
    """``run_dir/run.json``, checked: a JSON object with the run's ``options`` (every field present, each
    one valid) and ``cases``."""
    meta = read_run_json(run_dir)
    meta["options"] = vars(options_of(meta, run_dir))  # checked, with every field present
    return meta


def options_of(meta: dict, run_dir: str | Path) -> BenchOptions:
    """The :class:`BenchOptions` stored in a run's ``run.json`` (checked: unknown, missing or bad values refused)."""
    path = Path(run_dir) / "run.json"
    known = set(BenchOptions.__dataclass_fields__)
    unknown = sorted(set(meta["options"]) - known)
    missing = sorted(known - set(meta["options"]))
    if unknown or missing:
        what = f"unknown options {unknown}" if unknown else f"options {missing} missing"
        raise RunDirError(f"{path}: {what}: restore the file, or start a new run with another --out.")
    try:
        options = BenchOptions(**meta["options"])
        expand(options.suite, options.solvers, options.seeds, methods=options.methods, problems=options.problems)
    except Exception as exc:  # noqa: BLE001 - any bad stored option is a damaged run directory
        raise RunDirError(f"{path}: its options cannot be expanded into cases ({type(exc).__name__}: {exc}): "
                          "restore the file, or start a new run with another --out.") from None
    return options


def cases_of(meta: dict, run_dir: str | Path) -> list[Case]:
    """The cases of a stored run, in its order: the ids ``run.json`` lists, rebuilt from its options.

    An id its options no longer give (a backend the run used is not installed or licensed here any more, or the
    file was edited) is refused by name: the run cannot be finished as it was started.
    """
    options = BenchOptions(**meta["options"])
    rebuilt = {c.id: c for c in list_cases(options)}
    lost = [i for i in meta["cases"] if i not in rebuilt]
    if lost:
        shown = ", ".join(lost[:3]) + (f" and {len(lost) - 3} more" if len(lost) > 3 else "")
        raise RunDirError(f"{Path(run_dir) / 'run.json'}: {len(lost)} of its cases ({shown}) do not follow from its "
                          "options here (a backend they use is not installed or licensed on this machine, or the "
                          "file was edited): finish the run where it started, or start a new run with another --out.")
    return [rebuilt[i] for i in meta["cases"]]


def case_states(run_dir: str | Path) -> list[tuple[str, str | None]]:
    """Each case of the run in ``run_dir`` with the status of its record (None: not run yet)."""
    meta = read_run(run_dir)
    status = {r["id"]: r["status"] for r in read_records(run_dir)}
    return [(c.id, status.get(c.id)) for c in cases_of(meta, run_dir)]


class _SigintGuard:
    """Notes a Ctrl-C during the run and still raises ``KeyboardInterrupt``.

    A solver that catches the interrupt and returns its best point (status ``interrupted``) would
    otherwise let the sweep go on to the next case; with the note the runner drops that partial
    record (the case runs again on ``--resume``) and stops.
    """

    def __init__(self) -> None:
        self.hit = False
        self._previous: Any = None

    def _handle(self, signum: int, frame: Any) -> None:
        self.hit = True
        raise KeyboardInterrupt

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


#: The most seeds one run takes (each is a case per problem, method and backend).
MAX_SEEDS = 10_000


@dataclass
class BenchOptions:
    """What a run runs; checked when made (a value of the wrong type or out of range is refused by name)."""

    suite: str = "quick"
    solvers: list[str] = field(default_factory=lambda: ["clarabel"])
    seeds: list[int] = field(default_factory=lambda: [0])
    methods: list[str] | None = None
    problems: list[str] | None = None
    max_iters: int | None = None
    time_limit: float | None = None
    tol: float = 1e-6

    def __post_init__(self) -> None:
        where = "bench options"
        if not isinstance(self.suite, str) or self.suite not in SUITES:
            raise InvalidInputError(f"{where}: unknown suite {self.suite!r}; known suites: {', '.join(SUITES)}")
        for name in ("solvers", "methods", "problems"):
            names = getattr(self, name)
            if names is None and name != "solvers":
                continue
            if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
                raise InvalidInputError(f"{where}: {name}={names!r}: give a non-empty list of names.")
        for name in self.solvers:
            if name != "auto":
                get_backend(name)  # UnknownSolverError names the known ones
        unknown = [p for p in self.problems or () if p not in PROBLEMS]
        if unknown:
            raise InvalidInputError(f"{where}: unknown problem(s) {', '.join(unknown)}; known: {', '.join(PROBLEMS)}")
        if not isinstance(self.seeds, list) or not 1 <= len(self.seeds) <= MAX_SEEDS:
            raise InvalidInputError(f"{where}: seeds={_short(self.seeds)}: give a list of 1 to {MAX_SEEDS} seeds.")
        for seed in self.seeds:
            check_seed(seed, "seed", where=where)
        if len(set(self.seeds)) < len(self.seeds):
            raise InvalidInputError(f"{where}: seeds={_short(self.seeds)} repeats a seed: give each seed once.")
        check_int(self.max_iters, "max_iters", minimum=1, allow_none=True, where=where)
        check_number(self.time_limit, "time_limit", minimum=0.0, strict=True, allow_none=True, where=where)
        check_number(self.tol, "tol", minimum=0.0, where=where)


def _short(value: Any, n: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= n else text[: n - 3] + "..."


@dataclass
class BenchSummary:
    run_dir: Path
    total: int
    skipped: int  # finished before (resume)
    ran: int
    failed: list[str]  # ids with status error, run in this session
    records: list[dict]
    failed_before: list[str] = field(default_factory=list)  # ids with status error recorded by earlier sessions


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
    fresh = None if resume else (options or BenchOptions())
    if fresh is None:
        read_run(run_dir)  # refused before anything is written: no lock file in what is not a run
    else:
        prepare_new_run_dir(run_dir)
    with run_lock(run_dir):
        if fresh is None:
            meta = read_run(run_dir)  # again, under the lock: as the last session left it
            cases = cases_of(meta, run_dir)
        else:
            prepare_new_run_dir(run_dir)  # again, under the lock: no other run started here meanwhile
            cases = list_cases(fresh)
            meta = {"command": command or [], "cwd": os.getcwd(), "options": vars(fresh), "seeds": fresh.seeds,
                    "cases": [c.id for c in cases], "environment": environment(),
                    "started": time.strftime("%Y-%m-%d %H:%M:%S"), "sessions": []}
        return _run_locked(run_dir, meta, cases, resume, executor or InProcessExecutor(), command, on_record,
                           progress)


def _run_locked(run_dir: Path, meta: dict, cases: list[Case], resume: bool, executor: Any,
                command: list[str] | None, on_record: Callable[[dict], None] | None, progress: bool) -> BenchSummary:
    """:func:`run_bench` once the run directory is locked and the cases are known."""
    results = run_dir / "results.jsonl"
    repair_torn_tail(results)
    ids = {c.id for c in cases}
    earlier = [r for r in read_records(run_dir) if r["id"] in ids]  # a record of another run's case is not ours
    done = {r["id"] for r in earlier}
    failed_before = sorted({r["id"] for r in earlier if r["status"] == "error"})
    todo = [c for c in cases if c.id not in done]
    meta.setdefault("sessions", []).append({"command": command or [], "executor": _describe(executor),
                                            "resume": resume, "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                                            "todo": len(todo)})
    meta_path = run_dir / "run.json"
    write_json_atomic(meta_path, meta)
    failed: list[str] = []
    ran = 0
    bar = _bar(len(cases), len(done), progress)
    try:
        with _SigintGuard() as sigint, results.open("a") as fh:
            for _, record in iter_completed(executor, run_case, todo):
                if sigint.hit:  # the case caught Ctrl-C and returned early: not a finished case
                    raise KeyboardInterrupt
                append_record(fh, record)
                ran += 1
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
        meta["sessions"][-1]["complete"] = ids <= {r["id"] for r in records}
        write_json_atomic(meta_path, meta)
    return BenchSummary(run_dir, len(cases), len(done), ran, failed, records, failed_before)


def _describe(executor: Any) -> str:
    return executor.describe() if hasattr(executor, "describe") else type(executor).__name__


def _bar(total: int, initial: int, show: bool):
    if not show:
        return None

    return tqdm(total=total, initial=initial, desc="bench", unit="case")



def list_cases(options: BenchOptions) -> Iterable[Case]:
    return expand(options.suite, options.solvers, options.seeds, methods=options.methods, problems=options.problems,
                  max_iters=options.max_iters, time_limit=options.time_limit, tol=options.tol)
