"""Any parallel ReLU subnetwork architecture in torch: forward, objective, Adam, and the meta-algorithm's
side for architectures without an exact polar (deeper subnetworks, vector outputs).

Subnetwork ``i`` is a bias-free ReLU net ``[d, n_1, ..., n_K]`` (a bias is a constant input column),
weights ``W_{k,i}`` stacked as tensors ``W_k`` of shape ``(r, n_{k+1}, n_k)``; the output is
``Σ_i φ(W_i)(x)`` (N × n_K), positively homogeneous of degree K in ``W_i``. Regularisers:

* ``"weight_decay"``: ``θ = ½ Σ_k ‖W_{k,i}‖²`` — degree 2, matched only for K = 2;
* ``"power"``: ``θ = Σ_k ‖W_{k,i}‖_F^K / K`` — degree K, always matched (H&V's example).

:class:`TorchGrowProblem` is honest about what it can prove: local descent is L-BFGS on the full
objective (not convex block solves), stationarity is measured by the output-layer block gap (a
convex ridge problem for weight decay) and the gradient norm, and the polar is only bounded
**below** by projected ascent from many random starts — so its certificate is never "globally
optimal"; it reports the lower bound and "not proven".
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from ..tolerance import gap_tolerance
from .grow import LocalDescent, PolarInfo
from .patterns import check_deadline

logger = logging.getLogger("multiconvex")

DTYPE = torch.float64

__all__ = ["REGULARISERS", "regulariser_degree", "init_weights", "forward", "thetas", "objective", "adam",
           "TorchGrowProblem", "TorchState"]

REGULARISERS = ("weight_decay", "power")


def regulariser_degree(regulariser: str, n_layers: int) -> int:
    """Degree of positive homogeneity of θ (φ has degree ``n_layers``)."""
    return 2 if regulariser == "weight_decay" else n_layers


def init_weights(sizes: tuple[int, ...], r: int, rng: np.random.Generator, scale: float = 1.0) -> list[np.ndarray]:
    """Random subnetworks, ``U(−1/√fan_in, 1/√fan_in)`` times ``scale`` (torch's Linear scale)."""
    return [scale * rng.uniform(-1, 1, (r, n, m)) / math.sqrt(m) for m, n in zip(sizes[:-1], sizes[1:])]


def forward(Ws: list[torch.Tensor], X: torch.Tensor, per_subnetwork: bool = False) -> torch.Tensor:
    """``Σ_i φ(W_i)(X)`` (N × out), or per subnetwork (r × N × out)."""
    a = torch.einsum("nd,rhd->rnh", X, Ws[0])
    for W in Ws[1:]:
        a = torch.einsum("rnh,rgh->rng", torch.relu(a), W)
    return a if per_subnetwork else a.sum(0)


def thetas(Ws: list[torch.Tensor], regulariser: str) -> torch.Tensor:
    """``θ(W_i)`` for each subnetwork (r,)."""
    sq = [(W ** 2).sum(dim=(1, 2)) for W in Ws]
    if regulariser == "weight_decay":
        return 0.5 * sum(sq)
    K = len(Ws)
    return sum(s ** (K / 2) for s in sq) / K


def objective(Ws: list[torch.Tensor], X: torch.Tensor, Y: torch.Tensor, lam: float, regulariser: str) -> torch.Tensor:
    """``½ Σ_n ‖y_n − Σ_i φ(W_i)(x_n)‖² + λ Σ_i θ(W_i)`` (sums, not means)."""
    R = Y - forward(Ws, X)
    return 0.5 * (R ** 2).sum() + lam * thetas(Ws, regulariser).sum()


def adam(X: np.ndarray, Y: np.ndarray, Ws0: list[np.ndarray], lam: float, regulariser: str, *, epochs: int = 5000,
         lr: float = 1e-2, time_limit: float | None = None,
         record_every: int = 50) -> tuple[list[np.ndarray], list, int, bool]:
    """Full-batch Adam on :func:`objective`; returns the best weights, ``[(time, objective)]``, the number of epochs
    run and whether ``time_limit`` ended the run before ``epochs``."""
    Xt, Yt = torch.as_tensor(X, dtype=DTYPE), torch.as_tensor(Y, dtype=DTYPE)
    Ws = [torch.tensor(W, dtype=DTYPE, requires_grad=True) for W in Ws0]
    opt = torch.optim.Adam(Ws, lr=lr)
    t0 = time.perf_counter()
    best = (math.inf, [W.detach().clone() for W in Ws])
    hist, ran = [], 0
    for ep in range(epochs):
        opt.zero_grad()
        f = objective(Ws, Xt, Yt, lam, regulariser)
        fv = float(f.detach())
        if fv < best[0]:
            best = (fv, [W.detach().clone() for W in Ws])
        if ep % record_every == 0:
            hist.append((time.perf_counter() - t0, best[0]))
        f.backward()
        opt.step()
        ran = ep + 1
        if time_limit is not None and time.perf_counter() - t0 > time_limit:
            break
    with torch.no_grad():
        fv = float(objective(Ws, Xt, Yt, lam, regulariser))
    if fv < best[0]:
        best = (fv, [W.detach().clone() for W in Ws])
    hist.append((time.perf_counter() - t0, best[0]))
    return [W.numpy().copy() for W in best[1]], hist, ran, ran < epochs


@dataclass(frozen=True)
class TorchState:
    Ws: tuple[np.ndarray, ...]


class TorchGrowProblem:
    """Deeper subnetworks / vector outputs (see the module docstring for what it can and cannot prove)."""

    def __init__(self, X: np.ndarray, Y: np.ndarray, sizes: tuple[int, ...], lam: float, regulariser: str, *,
                 n_starts: int = 64, ascent_steps: int = 300, seed: int | None = 0, zero_tol: float = 1e-10):
        self.X = np.asarray(X, dtype=float)
        self.Y = np.asarray(Y, dtype=float).reshape(len(self.X), -1)
        self.sizes = tuple(sizes)
        self.lam = float(lam)
        self.regulariser = regulariser
        self.degree = len(sizes) - 1
        self.n_starts, self.ascent_steps = n_starts, ascent_steps
        self.rng = np.random.default_rng(seed)
        self.zero_tol = zero_tol
        self._X = torch.as_tensor(self.X, dtype=DTYPE)
        self._Y = torch.as_tensor(self.Y, dtype=DTYPE)
        self._scale = max(1.0, float(np.linalg.norm(self.Y)))

    def _t(self, s: TorchState) -> list[torch.Tensor]:
        return [torch.as_tensor(W, dtype=DTYPE) for W in s.Ws]

    def objective(self, s: TorchState) -> float:
        with torch.no_grad():
            return float(objective(self._t(s), self._X, self._Y, self.lam, self.regulariser))

    def n_subnetworks(self, s: TorchState) -> int:
        return s.Ws[0].shape[0]

    def residual(self, s: TorchState) -> np.ndarray:
        with torch.no_grad():
            return (self._Y - forward(self._t(s), self._X)).numpy()

    def local_descent(self, s: TorchState, *, max_iters: int, tol: float, deadline: float | None) -> LocalDescent:
        if self.n_subnetworks(s) == 0:
            return LocalDescent(s, 0, True, 0.0)
        Ws = [torch.tensor(W, dtype=DTYPE, requires_grad=True) for W in s.Ws]
        opt = torch.optim.LBFGS(Ws, lr=1.0, max_iter=20, history_size=50, line_search_fn="strong_wolfe",
                                tolerance_grad=1e-12, tolerance_change=1e-15)
        f_prev = self.objective(s)
        it, converged = 0, False

        def closure():
            opt.zero_grad()
            f = objective(Ws, self._X, self._Y, self.lam, self.regulariser)
            f.backward()
            return f

        for it in range(1, max_iters + 1):  # noqa: B007 - `it` is the iteration count after the loop
            opt.step(closure)
            f = float(closure().detach())
            if f_prev - f <= gap_tolerance(tol, f):
                converged = True
                break
            f_prev = f
            if deadline is not None and time.perf_counter() > deadline:
                break
        new = TorchState(tuple(W.detach().numpy().copy() for W in Ws))
        return LocalDescent(new if self.objective(new) <= self.objective(s) else s, it, converged, 0.0)

    def block_gaps(self, s: TorchState) -> dict[str, float]:
        """Output-layer block gap (ridge, weight decay only) and the gradient norm as ``"gradient"``."""
        Ws = [torch.tensor(W, dtype=DTYPE, requires_grad=True) for W in s.Ws]
        f = objective(Ws, self._X, self._Y, self.lam, self.regulariser)
        f.backward()
        gnorm = float(torch.sqrt(sum((W.grad ** 2).sum() for W in Ws)))
        gaps: dict[str, float] = {"gradient": gnorm}
        if self.regulariser == "weight_decay" and self.n_subnetworks(s):
            with torch.no_grad():
                H = torch.relu(forward(self._t(s)[:-1], self._X, per_subnetwork=True)) if len(s.Ws) > 1 else None
            if H is not None:
                r, N, h = H.shape
                F = H.permute(1, 0, 2).reshape(N, r * h).numpy()  # features of the last layer
                K = F.T @ F + self.lam * np.eye(r * h)
                B = np.linalg.solve(K, F.T @ self.Y)  # (r h) × out
                Wl = B.T.reshape(self.Y.shape[1], r, h).transpose(1, 0, 2)
                gaps["output"] = float(f.detach()) - self.objective(TorchState(tuple(s.Ws[:-1]) + (Wl,)))
        return gaps

    def drop_zero(self, s: TorchState) -> TorchState:
        with torch.no_grad():
            out = forward(self._t(s), self._X, per_subnetwork=True)
        size = out.reshape(out.shape[0], -1).norm(dim=1).numpy()
        keep = size > self.zero_tol * self._scale
        if keep.all():
            return s
        return TorchState(tuple(W[keep].copy() for W in s.Ws))

    def outputs_for_rescale(self, s: TorchState) -> dict[str, np.ndarray]:
        with torch.no_grad():
            out = forward(self._t(s), self._X, per_subnetwork=True)
        return {"outputs": out.reshape(out.shape[0], -1).numpy().T}

    def thetas(self, s: TorchState) -> np.ndarray:
        with torch.no_grad():
            return thetas(self._t(s), self.regulariser).numpy()

    def scale(self, s: TorchState, factors: np.ndarray) -> TorchState:
        # factors are (1 + β_i)^{1/K} with K = self.degree, φ's degree: every layer scaled by it scales φ by 1 + β_i
        return TorchState(tuple(W * factors[:, None, None] for W in s.Ws))

    def _normalise(self, Ws: list[torch.Tensor]) -> list[torch.Tensor]:
        """Scale each candidate so θ = 1 (balanced layers: every ‖W_k‖ equal)."""
        norms = [W.reshape(W.shape[0], -1).norm(dim=1).clamp_min(1e-300) for W in Ws]
        K = len(Ws)
        geo = torch.exp(sum(torch.log(n) for n in norms) / K)
        bal = [W * (geo / n)[:, None, None] for W, n in zip(Ws, norms)]
        th = thetas(bal, self.regulariser).clamp_min(1e-300)
        c = th ** (-1.0 / regulariser_degree(self.regulariser, K))
        return [W * c[:, None, None] for W in bal]

    def polar(self, s: TorchState, k: int, full: bool = False, deadline: float | None = None) -> PolarInfo:
        """A lower bound on ``sup_{θ(w) ≤ 1} ⟨G, φ(w)⟩`` by projected ascent from ``n_starts`` starts
        (``deadline``: :class:`~.patterns.DeadlinePassed` once passed, checked every ascent step)."""
        t0 = time.perf_counter()
        G = torch.as_tensor(self.residual(s), dtype=DTYPE)
        init = init_weights(self.sizes, self.n_starts, self.rng)
        Ws = [torch.tensor(W, dtype=DTYPE) for W in init]
        Ws = [W.requires_grad_(True) for W in self._normalise(Ws)]
        opt = torch.optim.Adam(Ws, lr=0.05)
        for _ in range(self.ascent_steps):
            check_deadline(deadline, "TorchGrowProblem.polar")
            opt.zero_grad()
            val = (forward(Ws, self._X, per_subnetwork=True) * G[None]).sum(dim=(1, 2))
            (-val.sum()).backward()
            opt.step()
            with torch.no_grad():
                for W, Wn in zip(Ws, self._normalise([W.detach() for W in Ws])):
                    W.copy_(Wn)
        with torch.no_grad():
            val = (forward(Ws, self._X, per_subnetwork=True) * G[None]).sum(dim=(1, 2)).numpy()
        order = np.argsort(-val)
        maxi = [tuple(W[i].detach().numpy().copy() for W in Ws) for i in order[:k]]
        dt = time.perf_counter() - t0
        return PolarInfo(value=float(max(val.max(), 0.0)), upper=math.inf, exact=False,
                         method=f"multistart ascent ({self.n_starts} starts): lower bound",
                         maximisers=maxi, values=[float(val[i]) for i in order[:k]], wall_time=dt, solver_time=0.0)

    def append(self, s: TorchState, polar: PolarInfo, k: int) -> TorchState:
        """Append up to ``k`` subnetworks along the maximisers, each scaled by the exact line search
        ``c = (⟨G, φ⟩ − λ)/‖φ‖²`` on ``c φ(w)`` (θ(w) = 1, so θ(c^{1/p} w) = c)."""
        G = self.residual(s)
        Ws = [list(W) for W in s.Ws]
        added = 0
        for w in polar.maximisers:
            if added >= k:
                break
            with torch.no_grad():
                phi = forward([torch.as_tensor(W[None], dtype=DTYPE) for W in w], self._X).numpy()
            v, hh = float((G * phi).sum()), float((phi ** 2).sum())
            if hh <= 0 or v <= self.lam:
                continue
            c = (v - self.lam) / hh
            # φ(t w) = t^K φ(w) and, matched, θ(t w) = t^K: t = c^{1/K}. Mismatched (certify=False) the
            # line search is not exact and zero may be a local minimum (H&V §6): keep a unit only if it helps
            t = c ** (1.0 / len(s.Ws))
            f_before = self.objective(_stack(Ws, s))
            for layer, W in enumerate(w):
                Ws[layer].append(t * W)
            if self.objective(_stack(Ws, s)) >= f_before:
                for L in Ws:
                    L.pop()
                continue
            G = G - c * phi
            added += 1
        return _stack(Ws, s)

    def values(self, s: TorchState) -> dict[str, np.ndarray]:
        return {f"W{k + 1}": W.copy() for k, W in enumerate(s.Ws)}


def _stack(layers: list[list[np.ndarray]], like: TorchState) -> TorchState:
    return TorchState(tuple(np.stack(L) if L else np.zeros((0,) + like.Ws[i].shape[1:])
                            for i, L in enumerate(layers)))
