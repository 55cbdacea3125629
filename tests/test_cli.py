"""The README's main job and the command line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from multiconvex.__main__ import main


def test_solvers_command_lists_every_backend(capsys):
    assert main(["solvers"]) == 0
    out = capsys.readouterr().out
    for name in ("clarabel", "osqp", "scs", "ecos", "highs", "gurobi", "mosek", "scip", "ipopt", "lstsq"):
        assert name in out


def test_small_demo_reaches_the_closed_form_optimum(capsys):
    assert main(["demo", "--samples", "120", "--rank", "6", "--lam", "5.5", "--tol", "1e-9"]) == 0
    out = capsys.readouterr().out
    assert "status=converged" in out
    assert "partial minimum" in out
    gap = float(out.rsplit("relative gap", 1)[1].split()[0])
    assert abs(gap) < 1e-6


@pytest.mark.slow
def test_readme_demo_end_to_end():
    proc = subprocess.run([sys.executable, "-m", "multiconvex", "demo"], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "status=converged" in proc.stdout
    gap = float(proc.stdout.rsplit("relative gap", 1)[1].split()[0])
    assert abs(gap) < 1e-6
