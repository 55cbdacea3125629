"""Warm starts between the smooth unit solves (multiconvex/nets/smooth_units.py): kept per problem, safe in threads.

A neighbouring-piece solve starts DAQP from the working set of the same unit's own-piece solve at the same point.
Review of edffe35: that cache was one process-global dict, mutated without a lock (its eviction could raise
"dictionary changed size during iteration" with solves in worker threads) and keyed by (layer, unit, samples,
point), which two problems of the same shape started from the same seed share."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from multiconvex.errors import InvalidInputError
from multiconvex.nets import Architecture, forward, init_params
from multiconvex.nets.network import encode_targets
from multiconvex.nets.smooth_units import WarmStarts, smooth_batch, solve_smooth_units

ARCH = Architecture((3, 8, 3), "softmax")
N = 200


def _problem(target_seed: int):
    """The first layer's unit blocks, on their own pieces and across their boundaries, of a problem whose data and
    start are those of every other ``target_seed`` (same shape, same point) but whose targets are its own."""
    X = np.random.default_rng(0).standard_normal((N, 3))
    y = np.argmax(X @ np.random.default_rng(target_seed).standard_normal((3, 3)), 1)
    Xt, Tt = torch.as_tensor(X), torch.as_tensor(encode_targets(ARCH, y))
    params = init_params(ARCH, 0, Xt.device)
    _, pre, inputs = forward(ARCH, params, Xt)
    return (smooth_batch(ARCH, params, Tt, 0, pre, inputs),
            smooth_batch(ARCH, params, Tt, 0, pre, inputs, flip_boundary=True))


def _own_then_across(batches, warm: WarmStarts) -> list[tuple]:
    """Every unit's own-piece solve, then its neighbouring-piece solve (warm from the first), as comparable tuples."""
    sols = [s for batch in batches for s in solve_smooth_units(ARCH, batch, 1.0, N, 1e-2, 0.0, warm=warm)]
    return [(s.status, s.value, s.how, None if s.x is None else s.x.tobytes()) for s in sols]


def test_own_piece_solves_leave_one_warm_start_per_unit_for_the_neighbouring_ones():
    own, across = _problem(1)
    warm = WarmStarts()
    solve_smooth_units(ARCH, own, 1.0, N, 1e-2, 0.0, warm=warm)
    assert len(warm) == own.size
    solve_smooth_units(ARCH, across, 1.0, N, 1e-2, 0.0, warm=warm)  # read only
    assert len(warm) == own.size
    cold = solve_smooth_units(ARCH, across, 1.0, N, 1e-2, 0.0)
    warmed = solve_smooth_units(ARCH, across, 1.0, N, 1e-2, 0.0, warm=warm)
    for a, b in zip(cold, warmed):  # only a start: the same answers
        assert a.status == b.status
        if a.x is not None:
            assert b.value == pytest.approx(a.value, rel=1e-9)


def test_a_neighbouring_piece_solve_starts_from_its_own_piece_solves_hessian(monkeypatch):
    """Unit by unit (as a Gauss–Seidel step: own piece, then across its boundary, from the same point): the
    neighbouring piece's first Hessian is the own piece's corrected on the rows whose ``φ''`` differs, and the
    answers are those of a cold solve. One Hessian is kept: the last own-piece solve's, for its unit and point."""
    from multiconvex.solvers import newton_qp

    X = np.random.default_rng(0).standard_normal((N, 3))
    y = np.argmax(X @ np.random.default_rng(1).standard_normal((3, 3)), 1)
    Xt, Tt = torch.as_tensor(X), torch.as_tensor(encode_targets(ARCH, y))
    params = init_params(ARCH, 0, Xt.device)
    W, bias = params[0]
    bias.copy_(-(Xt[0] @ W.T))  # sample 0 on every first-layer unit's kink: the neighbouring piece flips it
    _, pre, inputs = forward(ARCH, params, Xt)
    corrected = []
    real = newton_qp._corrected_hessian
    monkeypatch.setattr(newton_qp, "_corrected_hessian",
                        lambda C, d2, mu, given: corrected.append(np.count_nonzero(d2 - given[1])) or
                        real(C, d2, mu, given))
    warm = WarmStarts()
    for u in range(ARCH.sizes[1]):
        own = smooth_batch(ARCH, params, Tt, 0, pre, inputs, units=[u])
        across = smooth_batch(ARCH, params, Tt, 0, pre, inputs, units=[u], flip_boundary=True)
        solve_smooth_units(ARCH, own, 1.0, N, 1e-2, 0.0, warm=warm)
        key, point = (0, u, N), own.theta0[0].tobytes()
        assert warm.curvature(key, point) is not None and warm.curvature((0, u + 1, N), point) is None
        assert warm.curvature(key, b"another point") is None
        before = len(corrected)
        warmed = solve_smooth_units(ARCH, across, 1.0, N, 1e-2, 0.0, warm=warm)[0]
        cold = solve_smooth_units(ARCH, across, 1.0, N, 1e-2, 0.0)[0]
        assert len(corrected) == before + 1  # the warm solve's first step, not the cold one's
        assert warmed.status == cold.status
        if cold.x is not None:
            assert warmed.value == pytest.approx(cold.value, rel=1e-9)
    assert 0 < min(corrected) and max(corrected) < N // 10  # a few rows differ: the flipped sample's


def test_problems_of_the_same_shape_solved_in_threads_take_their_serial_paths():
    """Two problems of the same shape at the same point, each solved three times at once in worker threads, each
    run with its problem's own warm starts: every run repeats that problem's serial run exactly."""
    problems = {seed: _problem(seed) for seed in (1, 2)}
    serial = {seed: _own_then_across(p, WarmStarts()) for seed, p in problems.items()}
    assert serial[1] != serial[2]  # the two problems differ (their warm starts would too)
    jobs = [seed for _ in range(3) for seed in problems]
    with ThreadPoolExecutor(4) as pool:
        runs = list(pool.map(lambda seed: _own_then_across(problems[seed], WarmStarts()), jobs))
    for seed, run in zip(jobs, runs):
        assert run == serial[seed]


def test_warm_starts_shared_by_threads_keep_their_bound_and_their_entries():
    """Eight threads writing and reading one small cache at once (eviction on most writes): no error, never more
    than ``size`` entries, and a read returns the working set written for that key and point or nothing."""
    warm, n_rows, errors = WarmStarts(size=8), 16, []

    def sense_of(key: tuple[int, int, int]) -> np.ndarray:
        return (np.arange(n_rows) % (key[1] + 2) == 0).astype(np.int32) * 3

    def work(worker: int) -> None:
        rng = np.random.default_rng(worker)
        try:
            for _ in range(3000):
                key = (0, int(rng.integers(40)), n_rows)
                if rng.random() < 0.5:
                    warm.put(key, b"p", sense_of(key))
                else:
                    got = warm.get(key, b"p")
                    assert got is None or np.array_equal(got, sense_of(key))
                assert len(warm) <= 8
        except Exception as exc:  # noqa: BLE001 - any failure in a worker is the test's failure
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


@pytest.mark.parametrize("size", [0, -1, 2.5])
def test_a_warm_start_cache_needs_a_positive_size(size):
    with pytest.raises(InvalidInputError, match="size="):
        WarmStarts(size=size)
