"""The one executor interface: in-process, threads, process pool, Dask; the same answers from each."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from multiconvex.errors import InvalidInputError
from multiconvex.executor import (
    THREAD_ENV_VARS,
    FuturesExecutor,
    InProcessExecutor,
    iter_completed,
    make_executor,
    pin_threads,
)


def test_inprocess_is_the_default_and_keeps_order():
    ex = make_executor()
    assert isinstance(ex, InProcessExecutor)
    assert ex.map(abs, [-1, 2, -3]) == [1, 2, 3]
    assert list(ex.as_completed(abs, [-1, -2])) == [(0, 1), (1, 2)]


def test_thread_pool_returns_results_by_index_as_they_complete():
    with make_executor("threads", workers=2) as ex:
        assert ex.kind == "threads" and ex.workers == 2
        assert ex.map(abs, [-1, 2, -3]) == [1, 2, 3]
        assert sorted(ex.as_completed(abs, [-4, -5, 6])) == [(0, 4), (1, 5), (2, 6)]


def test_a_user_pool_is_wrapped_and_left_open():
    pool = ThreadPoolExecutor(1)
    ex = make_executor(pool)
    assert isinstance(ex, FuturesExecutor)
    ex.close()
    assert pool.submit(abs, -1).result() == 1  # not ours to shut down
    pool.shutdown()


def test_objects_with_map_pass_through_and_iter_completed_falls_back_to_map():
    class Mapper:
        def map(self, fn, items):
            return [fn(x) for x in items]

    m = Mapper()
    assert make_executor(m) is m
    assert list(iter_completed(m, abs, [-1, -2])) == [(0, 1), (1, 2)]


@pytest.mark.parametrize("bad", [0, -2, 1.5, True])
def test_bad_worker_counts_are_refused(bad):
    with pytest.raises(InvalidInputError, match="workers"):
        make_executor("threads", workers=bad)


def test_unknown_executor_names_are_refused_with_the_choices():
    with pytest.raises(InvalidInputError, match="processes"):
        make_executor("gpu-cluster")


def test_pin_threads_sets_every_thread_variable(monkeypatch):
    for var in THREAD_ENV_VARS:
        monkeypatch.setenv(var, "8")
    import torch
    from threadpoolctl import threadpool_limits

    torch_threads = torch.get_num_threads()
    try:
        with threadpool_limits():  # restores the BLAS pools after the test
            pin_threads(1)
            assert all(os.environ[var] == "1" for var in THREAD_ENV_VARS)
            assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(torch_threads)


def test_jacobi_blocks_on_the_cvxpy_path_are_refused_on_a_process_pool_with_the_reason():
    """Blocks compiled to subproblem values ship (tests/test_compiled_cvxpy.py); a ReLU block keeps a compiled
    cvxpy problem in this process, which would solve a stale copy elsewhere."""
    import cvxpy as cp
    import numpy as np

    import multiconvex as mc

    Y = np.random.default_rng(0).standard_normal((6, 5))
    U, V = cp.Variable((6, 2)), cp.Variable((2, 5))
    prob = cp.Problem(cp.Minimize(cp.sum_squares(Y - mc.relu(U @ V)) + cp.sum_squares(U) + cp.sum_squares(V)))
    with pytest.raises(InvalidInputError, match="executor='threads'"):  # no stale-copy iterates
        mc.solve(prob, [[U], [V]], algorithm="jacobi", solver="clarabel", seed=0, max_iters=2,
                 executor="processes", workers=1)
