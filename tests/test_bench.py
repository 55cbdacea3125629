"""`multiconvex bench` and `multiconvex report`: suites end to end, resumable runs, reports true to the raw results."""

from __future__ import annotations

import csv
import json
import math
import random
import re
import signal
import subprocess
import sys
import time

import pytest

from multiconvex.__main__ import EXIT_INTERRUPTED, EXIT_OK, EXIT_RUN_DIR, main
from multiconvex.benchmarks import runner
from multiconvex.benchmarks.problems import PROBLEMS, build
from multiconvex.benchmarks.report import best_known, shifted_geometric_mean, succeeded, summarise
from multiconvex.benchmarks.suites import SUITES, expand
from multiconvex.solvers import get_backend

# test-sized quick suite: every problem and method of `quick`, one backend, few iterations
QUICK = ["bench", "--suite", "quick", "--solvers", "clarabel", "--max-iters", "15", "--quiet"]
RECORD_KEYS = ("objective", "gap", "status", "max_block_gap", "is_partial_minimum", "iterations", "wall_time",
               "solver_time", "case_memory_mb", "env")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "quick"
    code = main([*QUICK, "--out", str(out)])
    assert main(["report", str(out), "--quiet"]) == EXIT_OK
    return code, out


def _records(out):
    return {r["id"]: r for r in runner.read_records(out)}


@pytest.mark.slow
def test_quick_suite_runs_every_case_and_stores_raw_results(quick_run):
    code, out = quick_run
    assert code == EXIT_OK
    meta = json.loads((out / "run.json").read_text())
    records = _records(out)
    assert sorted(records) == sorted(meta["cases"])
    assert meta["command"][:4] == ["multiconvex", "bench", "--suite", "quick"]
    assert meta["seeds"] == [0] and "versions" in meta["environment"]
    with (out / "results.csv").open() as fh:
        assert sorted(row["id"] for row in csv.DictReader(fh)) == sorted(records)
    for r in records.values():
        assert r["status"] in runner.OK_STATUSES, (r["id"], r.get("error"))
        for key in RECORD_KEYS:
            assert key in r, (r["id"], key)
        assert r["env"]["versions"]["cvxpy"] and r["env"]["cpu"]


@pytest.mark.slow
def test_quick_suite_covers_every_family_and_peer(quick_run):
    _, out = quick_run
    records = _records(out)
    families = {PROBLEMS[r["problem"]].family for r in records.values()}
    assert families == {"factorization", "nmf", "neuron", "relu", "bilinear"}
    assert {r["method"] for r in records.values()} == {"gauss-seidel", "jacobi", "dmcp-loop", "sklearn-cd",
                                                        "sklearn-mu", "torch-gd", "torch-adam"}


@pytest.mark.slow
def test_counterexample_reaches_both_local_minima_with_certificates(quick_run):
    _, out = quick_run
    records = _records(out)
    bad, good = records["neuron-bad/gauss-seidel/clarabel/seed0"], records["neuron-good/gauss-seidel/clarabel/seed0"]
    assert bad["objective"] == pytest.approx(36.0, rel=1e-6) and bad["is_partial_minimum"]
    assert good["objective"] == pytest.approx(9.0, rel=1e-6) and good["is_partial_minimum"]
    assert bad["gap"] == pytest.approx(3.0, rel=1e-6)  # a certified partial minimum 4x the global optimum


@pytest.mark.slow
def test_factorization_reaches_the_svt_optimum(quick_run):
    _, out = quick_run
    r = _records(out)["mf-synth-60x40/gauss-seidel/clarabel/seed0"]
    assert r["reference"] == pytest.approx(build("mf-synth-60x40").reference)
    assert -1e-9 <= r["gap"] < 1e-2  # 15 sweeps (test size); the full suite converges to ~1e-6


def _table_rows(section: str) -> list[list[str]]:
    rows = [line.strip("|").split("|") for line in section.splitlines() if line.startswith("| ")]
    return [[c.strip() for c in row] for row in rows[1:]]  # drop the header


@pytest.mark.slow
def test_report_numbers_match_the_raw_results(quick_run):
    _, out = quick_run
    records = _records(out)
    text = (out / "report.md").read_text()
    sections = dict(re.findall(r"^### (\S+)\n(.*?)(?=^### |^## |\Z)", text, flags=re.S | re.M))
    assert set(sections) == {r["problem"] for r in records.values()}
    seen = set()
    for problem, body in sections.items():
        for method, backend, seed, status, objective, gap, _, partial, iters, wall, *_ in _table_rows(body):
            r = records[f"{problem}/{method}/{backend}/seed{seed}"]
            seen.add(r["id"])
            assert status == r["status"]
            assert float(objective) == pytest.approx(r["objective"], rel=1e-9, abs=1e-12)
            assert int(iters) == r["iterations"]
            assert float(wall) == pytest.approx(r["wall_time"], rel=1e-3)
            if r.get("gap") is not None:  # a reference optimum: the gap printed is the recorded one
                assert float(gap) == pytest.approx(r["gap"], rel=1e-3, abs=1e-12)
            if r.get("is_partial_minimum") is not None:
                assert partial == ("yes" if r["is_partial_minimum"] else "no")
    assert seen == set(records)


@pytest.mark.slow
def test_report_summary_matches_a_recount_of_the_raw_results(quick_run):
    _, out = quick_run
    records = list(_records(out).values())
    text = (out / "report.md").read_text()
    summary = text.split("## Summary per method and backend", 1)[1].split("## ", 1)[0]
    rows = {(r[0], r[1]): r for r in _table_rows(summary)}
    best = best_known(records)
    penalty = max(r["wall_time"] for r in records)
    for (method, backend), row in rows.items():
        group = [r for r in records if r["method"] == method and r["backend"] == backend]
        ok = [succeeded(r, best, 1e-4) for r in group]
        assert row[2] == str(len(group))
        assert row[3].startswith(f"{sum(ok)}/{len(group)} ")
        times = [r["wall_time"] if s else penalty for r, s in zip(group, ok)]
        expected = math.exp(sum(math.log(t + 1.0) for t in times) / len(times)) - 1.0
        assert float(row[4]) == pytest.approx(expected, rel=1e-3)
    assert len(rows) == len({(r["method"], r["backend"]) for r in records})


@pytest.mark.slow
def test_report_writes_plots_and_environment(quick_run):
    _, out = quick_run
    text = (out / "report.md").read_text()
    pngs = sorted(p.name for p in (out / "plots").glob("*.png"))
    assert "performance_profile.png" in pngs
    assert {f"objective_{p}.png" for p in {r["problem"] for r in _records(out).values()}} <= set(pngs)
    for name in pngs:
        assert (out / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"plots/{name}" in text
    assert "## Environment" in text and "cvxpy" in text


@pytest.mark.slow
def test_report_compares_runs(quick_run, tmp_path):
    _, out = quick_run
    assert main(["report", str(out), str(out), "--out", str(tmp_path), "--no-plots", "--quiet"]) == EXIT_OK
    assert "## Runs compared" in (tmp_path / "report.md").read_text()


@pytest.mark.slow
def test_bench_refuses_to_overwrite_a_run_without_resume(quick_run, capsys):
    _, out = quick_run
    assert main([*QUICK, "--out", str(out)]) == EXIT_RUN_DIR
    assert "--resume" in capsys.readouterr().err


SMALL = ["bench", "--suite", "quick", "--solvers", "clarabel", "--problems", "neuron-bad,neuron-good,bilinear-10",
         "--quiet"]


def test_interrupted_bench_resumes_without_redoing_finished_cases(tmp_path, monkeypatch):
    out = tmp_path / "run"
    real = runner.run_case
    calls: list[str] = []

    def interrupted_after_two(case):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(case.id)
        return real(case)

    monkeypatch.setattr(runner, "run_case", interrupted_after_two)
    assert main([*SMALL, "--out", str(out)]) == EXIT_INTERRUPTED
    first = _records(out)
    assert sorted(first) == sorted(calls)

    resumed: list[str] = []
    monkeypatch.setattr(runner, "run_case", lambda case: (resumed.append(case.id), real(case))[1])
    assert main(["bench", "--resume", "--out", str(out), "--quiet"]) == EXIT_OK
    everything = json.loads((out / "run.json").read_text())["cases"]
    assert sorted(resumed) == sorted(set(everything) - set(first))  # nothing finished is run again
    final = runner.read_records(out)
    assert sorted(r["id"] for r in final) == sorted(everything)  # every case exactly once
    for r in final:
        if r["id"] in first:
            assert r["started"] == first[r["id"]]["started"]
    assert json.loads((out / "run.json").read_text())["sessions"][-1]["complete"]


PARALLEL = ["bench", "--suite", "quick", "--solvers", "clarabel", "--problems", "mf-synth-60x40,neuron-bad,bilinear-10",
            "--methods", "gauss-seidel,dmcp-loop", "--max-iters", "15", "--quiet"]


def _objectives(out):
    return {i: r["objective"] for i, r in _records(out).items()}


@pytest.mark.slow
def test_process_pool_and_dask_give_the_in_process_objectives(quick_run, tmp_path):
    pytest.importorskip("distributed")
    assert main([*PARALLEL, "--workers", "2", "--out", str(tmp_path / "pool")]) == EXIT_OK
    assert main([*PARALLEL, "--dask", "--workers", "2", "--out", str(tmp_path / "dask")]) == EXIT_OK
    in_process = _objectives(quick_run[1])  # the same cases, run in-process by the quick run (same options)
    base = {i: in_process[i] for i in _objectives(tmp_path / "pool")}
    assert len(base) == 5
    for name in ("pool", "dask"):
        other = _objectives(tmp_path / name)
        assert sorted(other) == sorted(base)
        for case_id, f in base.items():
            assert other[case_id] == pytest.approx(f, rel=1e-7, abs=1e-9), (name, case_id)
    workers = {r["worker"] for r in runner.read_records(tmp_path / "pool")}
    assert all(not w.endswith(f":{__import__('os').getpid()}") for w in workers)  # ran in worker processes
    for name in ("pool", "dask"):  # BLAS pinned to one thread in every worker: no oversubscription
        for r in runner.read_records(tmp_path / name):
            assert all(pool.endswith(":1") for pool in r["env"]["threadpools"]), r["env"]["threadpools"]
    sessions = json.loads((tmp_path / "dask" / "run.json").read_text())["sessions"]
    assert sessions[0]["executor"].startswith("dask (LocalCluster")


def test_every_suite_expands_to_cases_with_known_problems():
    for suite in SUITES:
        cases = expand(suite, ["clarabel", "osqp", "lstsq"], [0, 1])
        assert cases, suite
        assert all(c.problem in PROBLEMS for c in cases)
        assert len({c.id for c in cases}) == len(cases)
    # lstsq solves only equality-constrained QPs: never offered for NMF, neurons, networks or LPs
    lstsq = {c.problem for c in expand("all", ["lstsq"], [0]) if c.backend == "lstsq"}
    assert lstsq and all(PROBLEMS[p].family == "factorization" for p in lstsq)


def test_shifted_geometric_mean():
    assert shifted_geometric_mean([1.0, 1.0], shift=1.0) == pytest.approx(1.0)
    assert shifted_geometric_mean([0.0, 3.0], shift=1.0) == pytest.approx(1.0)  # sqrt(1 * 4) - 1


def test_summary_counts_failures_with_the_penalty_time():
    recs = [{"id": "a", "problem": "p", "method": "m", "backend": "b", "seed": 0, "status": "converged",
             "objective": 1.0, "reference": 1.0, "wall_time": 2.0},
            {"id": "b", "problem": "p", "method": "m", "backend": "b", "seed": 1, "status": "error",
             "objective": None, "reference": None, "wall_time": 0.5}]
    (row,) = summarise(recs, tol=1e-4, shift=1.0, time_limit=10.0)
    assert row["successes"] == 1 and row["success_rate"] == 0.5
    assert row["sgm_time"] == pytest.approx(math.sqrt(3.0 * 11.0) - 1.0)


@pytest.mark.slow
def test_global_miqp_finds_the_optimum_a_local_method_misses():
    if not get_backend("gurobi").available():
        pytest.skip("the fast global test uses Gurobi's pip licence (SCIP takes ~6 s); -m slow runs SCIP")
    miqp = runner.run_case(expand("global", ["clarabel"], [0], methods=["bigm-miqp"])[0])
    assert miqp["backend"] == "gurobi" and miqp["status"] == "converged"
    assert abs(miqp["gap"]) < 1e-6  # the same MIQPs by the same backend give the reference
    stuck = runner.run_case(expand("global", ["clarabel"], [2], methods=["gauss-seidel"],
                                   problems=["relu-global-20"])[0])
    assert stuck["is_partial_minimum"] and stuck["gap"] > 0.1  # certified partial minimum, far from global


@pytest.mark.slow
def test_global_suite_grows_to_certified_optima_and_checks_them_against_the_convex_reformulation():
    cases = expand("global", ["clarabel", "osqp"], [0], methods=["grow", "convex-reformulation"])
    assert {(c.problem, c.method) for c in cases} == {("mf-synth-60x40", "grow"), ("relu-units-40", "grow"),
                                                      ("relu-units-40", "convex-reformulation")}
    assert {c.backend for c in cases} == {"clarabel"}  # OSQP takes no second-order cones
    records = {(c.problem, c.method): runner.run_case(c) for c in cases}
    for (problem, method), rec in records.items():
        assert rec["status"] in ("converged", "optimal"), rec.get("error")
        assert abs(rec["gap"]) < 1e-6, (problem, method, rec["gap"])
        if method == "grow":
            assert rec["global_optimal"] is True
    assert records[("relu-units-40", "convex-reformulation")]["global_optimal"] is None  # the oracle claims nothing


@pytest.mark.slow
def test_global_miqp_with_scip_agrees_with_gurobi():
    if not (get_backend("gurobi").available() and get_backend("scip").available()):
        pytest.skip("needs both MIQP backends")
    cases = {c.backend: c for c in expand("global", ["clarabel"], [0], methods=["bigm-miqp"])}
    values = {b: runner.run_case(c)["objective"] for b, c in cases.items()}
    assert values["scip"] == pytest.approx(values["gurobi"], rel=1e-6)


@pytest.mark.slow
def test_bench_joins_an_existing_dask_cluster_by_scheduler_address(quick_run, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster:
        assert main([*PARALLEL, "--scheduler", cluster.scheduler_address, "--out", str(tmp_path / "remote")]) == EXIT_OK
        assert cluster.status.name == "running"  # the cluster is left running for its owner
    in_process = _objectives(quick_run[1])
    for case_id, f in _objectives(tmp_path / "remote").items():
        assert f == pytest.approx(in_process[case_id], rel=1e-7, abs=1e-9)
    session = json.loads((tmp_path / "remote" / "run.json").read_text())["sessions"][0]
    assert session["executor"].startswith(f"dask ({cluster.scheduler_address}")


# -- kill -9 and Ctrl-C during a run -------------------------------------------------------------------
KILLABLE = [sys.executable, "-m", "multiconvex", "bench", "--suite", "quick", "--solvers", "clarabel", "--problems",
            "neuron-bad,neuron-good,bilinear-10", "--seeds", "3", "--max-iters", "15", "--quiet"]


def _complete_lines(path):
    """The records a kill cannot take back: every line that ends in a newline and parses."""
    if not path.exists():
        return {}
    out = {}
    for line in path.read_bytes().split(b"\n")[:-1]:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        out[record["id"]] = record["started"]
    return out


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume_loses_no_record(tmp_path):
    out = tmp_path / "run"
    rng = random.Random(12)
    kept: dict[str, float] = {}
    for attempt in range(6):
        resume = (out / "run.json").exists()
        cmd = [*KILLABLE, "--out", str(out), *(["--resume"] if resume else [])]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            proc.wait(timeout=rng.uniform(1.5, 6.0))  # imports take ~2 s: kills land in set-up and in cases
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        now = _complete_lines(out / "results.jsonl")
        for case_id, started in kept.items():  # nothing finished before is lost or rerun
            assert now.get(case_id) == started, (attempt, case_id)
        kept = now
        if proc.returncode == 0:
            break
    # on a loaded machine every kill can land in the imports, before run.json: then the last run starts it
    resume = ["--resume"] if (out / "run.json").exists() else []
    final = subprocess.run([*KILLABLE, "--out", str(out), *resume], capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    records = runner.read_records(out)
    cases = json.loads((out / "run.json").read_text())["cases"]
    assert sorted(r["id"] for r in records) == sorted(cases)  # every case exactly once
    for r in records:
        if r["id"] in kept:
            assert r["started"] == kept[r["id"]]
    with (out / "results.csv").open() as fh:
        assert sorted(row["id"] for row in csv.DictReader(fh)) == sorted(cases)


@pytest.mark.slow
def test_ctrl_c_stops_bench_with_130_and_keeps_finished_cases(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([*KILLABLE, "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 120
    while not _complete_lines(out / "results.jsonl") and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_INTERRUPTED, err
    assert time.monotonic() - sent < 5.0
    assert "--resume" in err and "Traceback" not in err
    finished = _complete_lines(out / "results.jsonl")
    assert finished and all(r["status"] != "interrupted" for r in runner.read_records(out))
    cases = json.loads((out / "run.json").read_text())["cases"]
    assert len(finished) < len(cases)
    assert main(["bench", "--resume", "--out", str(out), "--quiet"]) == EXIT_OK
    records = runner.read_records(out)
    assert sorted(r["id"] for r in records) == sorted(cases)
    for r in records:
        if r["id"] in finished:
            assert r["started"] == finished[r["id"]]


def _rec(problem, method, wall, objective, seed=0):
    return {"id": f"{problem}/{method}/b/seed{seed}", "problem": problem, "method": method, "backend": "b",
            "seed": seed, "status": "converged", "objective": objective, "reference": 1.0, "wall_time": wall}


def test_performance_profile_counts_only_the_instances_a_method_ran():
    from multiconvex.benchmarks.report import performance_profile

    records = [_rec("p1", "ours", 1.0, 1.0), _rec("p1", "peer", 2.0, 1.0),
               _rec("p2", "ours", 3.0, 1.0),  # the peer never ran p2: not a failure of the peer
               _rec("p3", "ours", 1.0, 5.0), _rec("p3", "peer", 4.0, 1.0)]  # ours ran p3 and missed the optimum
    profile = performance_profile(records, tol=1e-6)
    assert profile["peer/b"].tolist() == [1.0, 2.0]
    assert profile["ours/b"].tolist() == [1.0, 1.0, math.inf]
