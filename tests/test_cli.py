"""The README's main job and the command line: commands, help, exit codes."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import pytest

from multiconvex.__main__ import EXIT_FAILED, EXIT_OK, EXIT_RUN_DIR, EXIT_UNAVAILABLE, EXIT_USAGE, main
from multiconvex.solvers import LicenceStatus, get_backend


def _row(out: str, name: str) -> str:
    return next(line for line in out.splitlines() if line.split() and line.split()[0] == name)


def test_solvers_command_lists_every_backend(capsys):
    assert main(["solvers"]) == EXIT_OK
    out = capsys.readouterr().out
    for name in ("clarabel", "osqp", "scs", "ecos", "highs", "gurobi", "mosek", "scip", "ipopt", "lstsq"):
        assert name in out


def test_solvers_row_of_a_block_only_backend_says_what_it_solves(capsys):
    """nnls declares no whole-problem classes (no cvxpy or Pyomo route): its row says what it does solve."""
    assert main(["solvers"]) == EXIT_OK
    row = _row(capsys.readouterr().out, "nnls")
    assert row.split()[5] == "-"  # the classes column
    assert "block subproblems only" in row and "lower bounds" in row


def test_solvers_reports_unlicensed_mosek_as_installed_not_available(capsys, monkeypatch):
    mosek = get_backend("mosek")
    monkeypatch.setattr(mosek, "installed", lambda: True)
    monkeypatch.setattr(mosek, "version", lambda: "11.0")
    monkeypatch.setattr(mosek, "licence", lambda: LicenceStatus("missing", "no licence file at ~/mosek/mosek.lic"))
    assert main(["solvers"]) == EXIT_OK
    row = _row(capsys.readouterr().out, "mosek")
    assert row.split()[1:4] == ["True", "missing", "False"]  # installed, licence, available
    assert "installed but unlicensed" in row


def test_solvers_row_of_this_machines_mosek_says_unlicensed(capsys):
    mosek = get_backend("mosek")
    if not mosek.installed() or mosek.licence().state != "missing":
        pytest.skip("needs mosek installed without a licence, as on the reference machine")
    main(["solvers"])
    row = _row(capsys.readouterr().out, "mosek")
    assert row.split()[1:4] == ["True", "missing", "False"]
    assert "installed but unlicensed" in row


def test_help_lists_commands_examples_and_exit_codes(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for text in ("solvers", "demo", "bench", "report", "--scheduler", "exit codes", "130 interrupted"):
        assert text in out


def test_bench_help_names_suites_and_parallel_options(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    out = capsys.readouterr().out
    for text in ("quick", "factorization", "counterexample", "relu", "cvxpy-peers", "--workers", "--dask",
                 "--resume", "--quiet"):
        assert text in out


@pytest.mark.parametrize("argv", [
    ["bench", "--suite", "nonsense"],
    ["bench", "--solvers", "no-such-solver"],
    ["bench", "--problems", "no-such-problem"],
    ["bench", "--methods", "no-such-method"],
])
def test_bad_bench_arguments_exit_with_usage_code(argv, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path / "run")]) == EXIT_USAGE
    assert "error" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_bench_with_an_unlicensed_solver_exits_with_unavailable_code(tmp_path, capsys, monkeypatch):
    mosek = get_backend("mosek")
    monkeypatch.setattr(mosek, "installed", lambda: True)
    monkeypatch.setattr(mosek, "licence", lambda: LicenceStatus("missing", "no licence file"))
    assert main(["bench", "--solvers", "mosek", "--out", str(tmp_path / "run")]) == EXIT_UNAVAILABLE
    assert "licence" in capsys.readouterr().err


def test_report_on_a_directory_without_a_run_exits_with_run_dir_code(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == EXIT_RUN_DIR
    assert "no benchmark run" in capsys.readouterr().err


def test_bench_list_prints_case_ids(capsys):
    assert main(["bench", "--suite", "counterexample", "--solvers", "clarabel,osqp", "--list"]) == EXIT_OK
    ids = capsys.readouterr().out.split()
    assert "neuron-bad/gauss-seidel/osqp/seed0" in ids and "neuron-good/torch-adam/torch/seed0" in ids


def _gaps(out: str) -> list[float]:
    return [float(part.split()[0].rstrip(";")) for part in out.split("relative gap")[1:]]


def test_small_demo_proves_global_optimality_and_matches_the_closed_form(capsys):
    assert main(["demo", "--samples", "120", "--rank", "6", "--lam", "5.5", "--tol", "1e-9"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "global optimality: True" in out  # grow's certificate
    assert "globally optimal (proven)" in out
    grow_gap, block_gap = _gaps(out)
    assert abs(grow_gap) < 1e-9  # the certified point is the closed-form optimum
    assert abs(block_gap) < 1e-6
    assert "status=converged" in out.split("2. ")[1]  # the comparison run converged too


def test_demo_that_does_not_converge_exits_1(capsys):
    assert main(["demo", "--samples", "120", "--rank", "6", "--max-iters", "2", "--quiet"]) == EXIT_FAILED
    assert "iteration_limit" in capsys.readouterr().out


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"multiconvex {importlib.metadata.version('multiconvex')}"


@pytest.mark.slow
def test_console_script_entry_point_runs():
    proc = subprocess.run([sys.executable, "-m", "multiconvex", "solvers", "--quiet"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "clarabel" in proc.stdout


@pytest.mark.slow
def test_readme_demo_end_to_end():
    proc = subprocess.run([sys.executable, "-m", "multiconvex", "demo"], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "global optimality: True" in proc.stdout
    grow_gap, block_gap = _gaps(proc.stdout)
    assert abs(grow_gap) < 1e-9 and abs(block_gap) < 1e-6
    seconds = float(proc.stdout.rsplit("s after imports", 1)[0].rsplit(" ", 1)[1])
    assert seconds < 6.0  # the target is 3 s of compute; slack for a shared machine


def test_demo_at_lam_zero_reports_instead_of_dividing_by_zero(capsys):
    # the closed-form optimum is 0 at λ = 0 with enough factors: the relative gap divided by it (internal error)
    rc = main(["demo", "--lam", "0", "--samples", "50", "--quiet"])
    assert rc in (0, 1)
    assert "closed-form check: relative gap" in capsys.readouterr().out


def test_a_scheduler_that_is_not_an_address_is_a_usage_error(tmp_path, capsys):
    rc = main(["bench", "--scheduler", "garbage", "--out", str(tmp_path / "run")])
    assert rc == EXIT_USAGE and "scheduler address 'garbage' is not valid" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
