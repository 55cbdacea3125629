import itertools
import logging
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def svt_value(Y: np.ndarray, lam: float) -> float:
    """Optimum of ½‖Y − X‖²_F + λ‖X‖_*: singular values soft-thresholded at λ (closed form)."""
    s = np.linalg.svd(Y, compute_uv=False)
    t = np.maximum(s - lam, 0.0)
    return float(0.5 * np.sum((s - t) ** 2) + lam * np.sum(t))


@pytest.fixture(autouse=True)
def _quiet_logs():
    logging.getLogger("multiconvex").setLevel(logging.WARNING)
    yield


@pytest.fixture
def interrupt_child(tmp_path):
    """Run ``python -c code <ready file> *args``, wait until the child creates the ready file, let it work
    ``after`` seconds more, send it a real SIGINT and return ``(returncode, stdout, stderr, sent, exited)``
    (``sent``/``exited``: ``time.time()`` when the signal went and when the child had exited).

    The child first sets Python's own SIGINT handler: started from a process that ignores SIGINT (pytest run as a
    background job of a non-interactive shell), it would inherit ``SIG_IGN``, Python would keep it, and the child
    would never hear the signal (both Ctrl-C tests of ``test_limits.py`` hung so until their 60 s timeout)."""
    def run(code: str, *args: str, after: float, start_timeout: float = 120.0):
        ready = tmp_path / "ready"
        code = "import signal\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n" + code
        child = subprocess.Popen([sys.executable, "-c", code, str(ready), *args], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + start_timeout
            while not ready.exists():
                assert child.poll() is None, child.communicate()
                assert time.monotonic() < deadline, "the child never started iterating"
                time.sleep(0.01)
            time.sleep(after)
            sent = time.time()
            os.kill(child.pid, signal.SIGINT)
            out, err = child.communicate(timeout=60)
            exited = time.time()
        finally:
            if child.poll() is None:
                child.kill()
                child.communicate()
        return child.returncode, out, err, sent, exited
    return run


def random_interval_qps(seed: int, B: int, n: int, m: int):
    """``B`` strictly convex QPs in ``n`` variables sharing ``m`` interval rows (half bounded below, half above):
    ``(P, q, C, lower, upper)`` as :func:`multiconvex.solvers.batched_qp.solve_interval_qps` takes them."""
    rng = np.random.default_rng(seed)
    R = rng.standard_normal((B, n, n))
    P = R @ R.transpose(0, 2, 1) + 0.1 * np.eye(n)
    q = rng.standard_normal((B, n)) * 5
    C = rng.standard_normal((m, n))
    lower = np.where(rng.random((B, m)) < 0.5, -1.0, -np.inf)
    upper = np.where(np.isinf(lower), 1.0, np.inf)
    return P, q, C, lower, upper


def logistic_rows(a: np.ndarray, v: np.ndarray, w: float):
    """``φ_i(z) = w · log(1 + exp(a_i + v_i z))`` with two derivatives (:data:`~multiconvex.solvers.newton_qp.
    ScalarLoss`)."""
    def phi(z):
        u = a + v * z
        s = 1 / (1 + np.exp(-u))
        return w * np.logaddexp(0.0, u), w * v * s, w * v * v * s * (1 - s)
    return phi


def kinked_regression_data(n: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """``X`` (n × 3, Gaussian) and ``y = |x₁| − x₂ + 0.1·noise``: a two-layer ReLU target with a kink."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 3))
    return X, np.abs(X[:, 0]) - X[:, 1] + 0.1 * rng.standard_normal(n)


def small_relu_net(sizes=(2, 6, 6, 1), n: int = 40, seed: int = 0, loss: str = "squared"):
    """A small ReLU network on smooth synthetic targets: ``(arch, params, X, T)``, float64, CPU; ``params`` are
    fresh copies (tests may change them in place); one target column, repeated for each output."""
    import torch  # lazy: most test modules do not need torch

    from multiconvex.nets import Architecture, init_params

    arch = Architecture(sizes, loss=loss)
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, sizes[0], generator=g, dtype=torch.float64)
    T = (torch.sin(X[:, :1]) + X[:, -1:] * X[:, :1]).repeat(1, sizes[-1])
    params = [(W.clone(), b.clone()) for W, b in init_params(arch, seed, X.device)]
    return arch, params, X, T


def adjacent_sign_patterns(arch, pre, k: int, u: int, max_entries: int, moving=None, reached=None):
    """The sign patterns (±1 per hidden entry, a list of tensors like ``pre[:-1]``) of every piece of unit block
    ``(k, u)`` containing the point whose forward pass gave ``pre``: every sign of every boundary entry (``|z|`` within
    the boundary tolerance) that the block may move — unit ``u``'s own and every later hidden unit's, the latter only
    at the samples ``moving`` (a bool mask over samples) and of the units ``reached[j]`` (a bool mask per later layer
    ``j``: the units with a path of nonzero weights from unit ``u``) when given. ``None`` when there are more than
    ``max_entries`` such entries."""
    import torch  # lazy: most test modules do not need torch

    from multiconvex.nets.network import BOUNDARY_TOL

    base = [torch.where(z >= 0, 1.0, -1.0).to(z.dtype) for z in pre[:-1]]
    entries = []
    for j in range(k, arch.n_layers - 1):
        near = pre[j].abs() <= BOUNDARY_TOL * max(1.0, float(pre[j].abs().amax()))
        if j == k:
            near = near & (torch.arange(pre[j].shape[1]) == u)[None, :]
        else:
            if moving is not None:
                near = near & moving[:, None]
            if reached is not None:
                near = near & reached[j][None, :]
        entries += [(j, int(i), int(v)) for i, v in torch.nonzero(near).tolist()]
    if len(entries) > max_entries:
        return None
    patterns = []
    for flips in itertools.product((1.0, -1.0), repeat=len(entries)):
        signs = [x.clone() for x in base]
        for (j, i, v), fl in zip(entries, flips):
            signs[j][i, v] = fl
        patterns.append(signs)
    return patterns


def unit_theta(params, k: int, u: int):
    """Unit ``u`` of layer ``k`` as its block's variables: its weight row, then its bias (torch)."""
    import torch  # lazy: most test modules do not need torch

    W, b = params[k]
    return torch.cat([W[u]] + ([b[u:u + 1]] if b is not None else []))


def with_unit_row(params, k: int, u: int, theta):
    """``params`` (copied) with unit ``u`` of layer ``k`` set to ``theta`` (its weight row, then its bias)."""
    out = [(W.clone(), None if b is None else b.clone()) for W, b in params]
    W, b = out[k]
    W[u] = theta[:W.shape[1]]
    if b is not None:
        b[u] = theta[W.shape[1]]
    return out


def piece_linearization(arch, params, X, k: int, u: int, signs):
    """Block ``(k, u)`` on the piece ``signs`` (±1 per hidden entry) at the point, by forward passes with that piece's
    activation pattern: ``(θ⁰, f⁰, z⁰, J_f, J_z, s)`` in numpy — the block's variables, the outputs and hidden
    pre-activations (flattened) and their Jacobians in ``θ`` (exact: affine on the piece), and the signs flattened."""
    import torch  # lazy: most test modules do not need torch

    from multiconvex.nets import forward

    th0 = unit_theta(params, k, u)
    patterns = [0.5 * (s + 1) for s in signs]

    def pass_(th):
        out, pre, _ = forward(arch, with_unit_row(params, k, u, th), X, patterns=patterns)
        return out.reshape(-1), torch.cat([z.reshape(-1) for z in pre[:-1]])

    f0, z0 = pass_(th0)
    Jf, Jz = torch.func.jacrev(pass_)(th0)
    s = torch.cat([x.reshape(-1) for x in signs])
    return tuple(t.detach().numpy() for t in (th0, f0, z0, Jf, Jz, s))
