"""The deflated bound on σ_max: a proof from an estimated top subspace without the n × n Gram matrix (issue 11).

Every bound is checked against a dense SVD on adversarial matrices (scales 1e-200…1e200, repeated top values,
a spike a hair above a cluster, rank one plus rounding noise) and with subspaces that are right, rotated,
missing the top direction, or random: a poor subspace may give a loose bound, never a false one.
"""

import math

import numpy as np
import pytest

from multiconvex.globalopt.deflated_bound import deflated_spectral_bound
from multiconvex.globalopt.grow import GrowOptions, grow
from multiconvex.globalopt.mf_polar import mf_polar
from multiconvex.globalopt.mf_problem import MFGrowProblem, MFState
from multiconvex.globalopt.spectral_bound import UNIT_ROUNDOFF
from multiconvex.models import svt_optimum


def spectrum_matrix(m, n, s, seed):
    rng = np.random.default_rng(seed)
    A, _ = np.linalg.qr(rng.standard_normal((m, len(s))))
    B, _ = np.linalg.qr(rng.standard_normal((n, len(s))))
    return (A * s) @ B.T, B


def matrices():
    rng = np.random.default_rng(0)
    q = 120
    yield "gap", np.r_[[5.0, 5.0, 4.0], rng.uniform(0, 0.5, q - 3)], 3
    yield "repeated", np.r_[np.full(7, 5.0), np.full(5, 5.0 * (1 - 1e-7)), rng.uniform(0, 4, q - 12)], 12
    yield "spike_over_cluster", np.r_[[1.0 + 1e-9], np.ones(40), rng.uniform(0, 0.5, q - 41)], 1
    yield "flat", np.ones(q), 4
    yield "rank_one", np.r_[[3.0], np.full(q - 1, 1e-15)], 1


CASES = [(name, s, p, scale, seed) for seed, (name, s, p) in enumerate(matrices())
         for scale in (1e-200, 1e-8, 1.0, 1e8, 1e200)]


@pytest.mark.parametrize("name,s,p,scale,seed", CASES, ids=[f"{c[0]}-{c[3]:g}" for c in CASES])
def test_the_bound_is_never_below_sigma_max_whatever_the_subspace(name, s, p, scale, seed):
    G, B = spectrum_matrix(200, 150, s, seed)
    G = scale * G
    top = float(np.linalg.svd(G, compute_uv=False)[0])
    slack = 8 * 150 * UNIT_ROUNDOFF   # the dense SVD's own error, relative
    rng = np.random.default_rng(seed)
    rotated = B[:, :p] @ np.linalg.qr(rng.standard_normal((p, p)))[0]
    subspaces = {"right": B[:, :p], "rotated": rotated, "missing_the_top": B[:, 1:p + 1],
                 "random": np.linalg.qr(rng.standard_normal((150, p)))[0], "not_orthonormal": 1.3 * B[:, :p]}
    for label, Q in subspaces.items():
        b = deflated_spectral_bound(G, Q)
        assert b.upper >= top * (1 - slack), (label, b.upper, top)   # a false proof would be caught here
    if name in ("gap", "rank_one"):   # a wide gap below the subspace: as tight as the Gram test (tighter)
        assert deflated_spectral_bound(G, B[:, :p]).upper <= top * (1 + 1e-10)


def test_an_orthonormality_defect_beyond_a_half_is_refused_and_zero_is_exact():
    G, B = spectrum_matrix(60, 40, np.r_[[2.0], np.ones(39) * 0.1], 1)
    assert deflated_spectral_bound(G, 2.0 * B[:, :1]).upper == math.inf
    assert deflated_spectral_bound(np.zeros((30, 20)), np.eye(20)[:, :2]).upper == 0.0
    bad = G.copy()
    bad[0, 0] = math.nan
    assert deflated_spectral_bound(bad, B[:, :1]).upper == math.inf


def test_mf_polar_auto_proves_by_deflation_where_there_is_a_gap_and_falls_back_where_there_is_none():
    G, _ = spectrum_matrix(400, 300, np.r_[[9.0, 8.0], np.random.default_rng(2).uniform(0, 1, 298)], 2)
    p = mf_polar(G, k=2, method="svds", proof="auto")
    top = np.linalg.svd(G, compute_uv=False)[0]
    assert p.method == "subspace+deflation+cholesky" and p.exact and top <= p.upper <= top * (1 + 1e-10)
    noise = np.random.default_rng(3).standard_normal((400, 300))     # no gap: the Gram test decides
    q = mf_polar(noise, k=2, method="svds", proof="auto")
    top = np.linalg.svd(noise, compute_uv=False)[0]
    assert q.method.endswith("+cholesky") and q.exact and top * (1 - 1e-12) <= q.upper <= top * (1 + 1e-6)


def test_a_start_that_spans_the_top_is_the_answer_and_one_that_misses_it_is_not():
    G, B = spectrum_matrix(400, 300, np.r_[[6.0, 6.0, 6.0], np.random.default_rng(4).uniform(0, 1, 297)], 4)
    top = np.linalg.svd(G, compute_uv=False)[0]
    p = mf_polar(G, k=4, method="svds", proof="auto", start=B[:, :3], relevant_above=5.0)
    assert p.method == "start-ritz+deflation+cholesky" and p.steps == 0 and top <= p.upper <= top * (1 + 1e-10)
    assert p.sigmas == pytest.approx([6.0] * 3, rel=1e-12)
    # the start misses one of the three top directions: the rest exceeds relevant_above, the block iteration runs
    q = mf_polar(G, k=4, method="svds", proof="auto", start=B[:, :2], relevant_above=5.0)
    assert q.method == "subspace+deflation+cholesky" and q.sigmas[:3] == pytest.approx([6.0] * 3, rel=1e-10)


def test_grow_certifies_a_large_factorization_by_the_start_span_and_matches_the_closed_form():
    rng = np.random.default_rng(5)
    Y = rng.standard_normal((600, 5)) @ rng.standard_normal((5, 400)) + 0.1 * rng.standard_normal((600, 400))
    s = np.linalg.svd(Y, compute_uv=False)
    lam = float(0.5 * (s[4] + s[5]))
    problem = MFGrowProblem(Y, lam)
    res, _ = grow(problem, MFState(np.zeros((600, 0)), np.zeros((400, 0))), GrowOptions(n_maximisers=6))
    g = res.certificate.globalopt
    assert res.certificate.global_optimal and g.method == "start-ritz+deflation+cholesky"
    assert lam * (1 - 1e-12) <= g.polar_upper <= lam * (1 + 1e-10)
    assert res.objective == pytest.approx(svt_optimum(Y, lam)[1], rel=1e-10)
    assert problem.form.counts["expanded"] > 0
