"""The smooth-loss unit blocks' building and loss evaluation (multiconvex/nets/smooth_units.py with
multiconvex/nets/batched.py's ``gram`` option): a batch built without the squared loss's Gram has the same piece,
and the softmax rows' values and derivatives are those of the loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import logsumexp, softmax

from multiconvex.errors import InvalidInputError
from multiconvex.nets import Architecture, forward, init_params
from multiconvex.nets.batched import piece_context, unit_batch, unit_qps
from multiconvex.nets.network import encode_targets
from multiconvex.nets.smooth_units import _row_max, scalar_loss, smooth_batch


def _softmax_net(n: int = 80, seed: int = 0):
    """A small softmax network ``[4, 6, 5, 3]`` at its seeded start, a few samples pinned to a boundary."""
    arch = Architecture((4, 6, 5, 3), "softmax")
    params = init_params(arch, seed, torch.device("cpu"))
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (n,), generator=g).numpy()
    T = torch.as_tensor(encode_targets(arch, y), dtype=torch.float64)
    _, pre, inputs = forward(arch, params, X)
    for k, i, u in [(0, 3, 1), (1, 7, 2)]:  # a sample on a unit's boundary: its neighbouring piece differs
        pre[k][i, u] = 0.0
    return arch, params, T, pre, inputs


@pytest.mark.parametrize("flip", [False, True])
def test_a_batch_without_the_gram_has_the_same_piece(flip):
    arch, params, T, pre, inputs = _softmax_net()
    for k in range(arch.n_layers):
        for units in (None, [2]):
            own = piece_context(arch, T, pre, inputs, False)
            with_gram = unit_batch(arch, params, T, k, pre, inputs, units, context=own)
            ctx = piece_context(arch, T, pre, inputs, False)
            without = unit_batch(arch, params, T, k, pre, inputs, units, context=ctx, gram=False)
            if flip:  # the neighbouring piece, derived from the own piece's batch of the same context
                with_gram = unit_batch(arch, params, T, k, pre, inputs, units, flip_boundary=True,
                                       context=piece_context(arch, T, pre, inputs, True))
                without = unit_batch(arch, params, T, k, pre, inputs, units, flip_boundary=True,
                                     context=piece_context(arch, T, pre, inputs, True), gram=False)
            assert with_gram.has_gram and not without.has_gram
            assert without.gram.shape == (without.size, 0, 0) and without.lin.shape == (without.size, 0)
            assert torch.equal(with_gram.theta0, without.theta0) and torch.equal(with_gram.z0, without.z0)
            for a, b in [(with_gram.zlo, without.zlo), (with_gram.zhi, without.zhi), (with_gram.sign, without.sign)]:
                assert (a is None and b is None) or (a is not None and b is not None and torch.equal(a, b))


def test_squared_loss_qps_of_a_batch_without_the_gram_are_refused():
    arch, params, T, pre, inputs = _softmax_net()
    batch = unit_batch(arch, params, T, 0, pre, inputs, gram=False)
    with pytest.raises(InvalidInputError, match="gram=False"):
        unit_qps(batch, T.shape[0], 1e-3)


def test_a_neighbour_with_the_gram_after_an_own_batch_without_it_is_built_in_full():
    """The own piece's batch of a context, kept for deriving the neighbouring piece's, has no Gram when built
    without: a neighbouring batch asked with the Gram is then built in full, the same as from a Gram-less start."""
    arch, params, T, pre, inputs = _softmax_net()
    reference = unit_batch(arch, params, T, 0, pre, inputs, flip_boundary=True,
                           context=piece_context(arch, T, pre, inputs, True))
    own = piece_context(arch, T, pre, inputs, False)
    unit_batch(arch, params, T, 0, pre, inputs, context=own, gram=False)
    neighbour = unit_batch(arch, params, T, 0, pre, inputs, flip_boundary=True,
                           context=piece_context(arch, T, pre, inputs, True))
    assert neighbour.has_gram
    assert torch.allclose(neighbour.gram, reference.gram, rtol=1e-12, atol=1e-14)
    assert torch.allclose(neighbour.lin, reference.lin, rtol=1e-12, atol=1e-14)


def test_softmax_rows_are_the_loss_and_its_derivatives():
    """``φ_i(z) = (logsumexp(a_i + v_i z) − t_iᵀ(a_i + v_i z)) / N`` with ``φ'`` and ``φ''`` from the class
    probabilities; rows whose outputs do not move (``v_i = 0``) are constants."""
    rng = np.random.default_rng(3)
    m, K, N = 40, 5, 100
    a, v = rng.normal(size=(m, K)) * 3, rng.normal(size=(m, K))
    v[::4] = 0.0
    t = np.eye(K)[rng.integers(0, K, m)]
    z = rng.normal(size=m)
    val, d1, d2 = scalar_loss("softmax", a, v, t, N)(z)
    f = a + v * z[:, None]
    p = softmax(f, axis=1)
    pv = (p * v).sum(axis=1)
    np.testing.assert_allclose(val, (logsumexp(f, axis=1) - (t * f).sum(axis=1)) / N, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(d1, (pv - (t * v).sum(axis=1)) / N, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(d2, ((p * v * v).sum(axis=1) - pv * pv) / N, rtol=1e-10, atol=1e-15)
    assert np.all(d1[::4] == 0) and np.all(d2[::4] == 0)


def test_the_row_maxima_are_numpys():
    f = np.random.default_rng(0).normal(size=(30, 7))
    f[3, 5] = np.inf
    f[4] = -np.inf
    assert np.array_equal(_row_max(f), f.max(axis=1))


def test_a_smooth_batch_keeps_the_piece_of_the_unit_batch():
    arch, params, T, pre, inputs = _softmax_net()
    batch = smooth_batch(arch, params, T, 0, pre, inputs)
    ref = unit_batch(arch, params, T, 0, pre, inputs, context=piece_context(arch, T, pre, inputs, False))
    lo, hi = ref.z_bounds()
    assert batch.zlo is not None and batch.zhi is not None
    assert np.array_equal(batch.zlo, lo.numpy()) and np.array_equal(batch.zhi, hi.numpy())


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_a_smooth_batchs_slopes_are_the_outputs_derivatives_in_the_units_pre_activations(layer):
    """``slope[g, i, :]`` is ``∂f_i/∂z_i`` for unit ``units[g]``'s own pre-activation ``z_i`` on the piece (autograd
    through the network, ReLU slopes at the point), for a unit two, one and no hidden layers before the output."""
    arch = Architecture((4, 6, 5, 4, 3), "softmax")
    params = init_params(arch, 2, torch.device("cpu"))
    g = torch.Generator().manual_seed(2)
    X = torch.randn(50, 4, generator=g, dtype=torch.float64)
    T = torch.as_tensor(encode_targets(arch, torch.randint(0, 3, (50,), generator=g).numpy()), dtype=torch.float64)
    _, pre, inputs = forward(arch, params, X)
    units = list(range(arch.sizes[layer + 1]))
    batch = smooth_batch(arch, params, T, layer, pre, inputs, units)
    for u in units:
        shift = torch.zeros(X.shape[0], dtype=torch.float64, requires_grad=True)
        a = X
        for k, (W, b) in enumerate(params):
            z = a @ W.T + b
            if k == layer:
                z = z + shift[:, None] * torch.nn.functional.one_hot(torch.tensor(u), W.shape[0])
            a = torch.relu(z) if k < arch.n_layers - 1 else z
        for o in range(a.shape[1]):  # outputs of sample i depend on sample i's shift only
            (grad,) = torch.autograd.grad(a[:, o].sum(), shift, retain_graph=True)
            np.testing.assert_allclose(batch.slope[u, :, o], grad.numpy(), rtol=1e-12, atol=1e-14)


def test_large_cvxpy_smooth_blocks_are_compiled_without_dpp(monkeypatch):
    """cvxpy's parametrised compile of a smooth block's quadratic objective forms a dense array of (rows × parameter
    entries): past ``DPP_PARAMETERS`` entries the block is solved with ``ignore_dpp`` (logistic layer blocks of 16
    units on 5,000 samples asked for 36.7 GiB), below it parametrised (faster on small data)."""
    from multiconvex.models import ReLUNetwork
    from multiconvex.nets import smooth_conic

    small = smooth_conic.CvxpySmoothBlock(Architecture((5, 16, 1), "logistic"), 60, 0, 16, 0, 1e-4)
    large = smooth_conic.CvxpySmoothBlock(Architecture((5, 16, 1), "logistic"), 150, 0, 16, 0, 1e-4)
    assert not small.ignore_dpp and large.ignore_dpp
    seen: list[bool] = []
    real = smooth_conic.solve_block_cvxpy

    def spy(index, problem, backends, options, t0, **kwargs):
        seen.append(bool(options.get("ignore_dpp")))
        return real(index, problem, backends, options, t0, **kwargs)

    monkeypatch.setattr(smooth_conic, "solve_block_cvxpy", spy)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((150, 5))
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    net = ReLUNetwork(hidden_layer_sizes=(16,), loss="logistic", solver="clarabel", max_iter=1, random_state=0)
    net.fit(X, y)
    assert True in seen and net.result_.info.get("failed_block_solves", 0) == 0
    assert net.result_.history[-1].objective < net.result_.history[0].objective
