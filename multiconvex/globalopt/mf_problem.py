"""Matrix factorization as a parallel-subnetwork problem for :func:`.grow.grow`.

Subnetworks are the columns ``(u_j, v_j)``: ``φ = u_j v_jᵀ`` (degree 2), ``θ = ½(‖u_j‖² + ‖v_j‖²)``,
objective ``½‖Y − U Vᵀ‖²_F + λ Σ_j θ_j``. Local descent is iterated convex optimization over the
blocks ``U`` and ``V`` run by the package's Gauss–Seidel driver on :class:`MFForm`, a standard
form whose block subproblems (ridge regressions) are solved in closed form — the least-squares
backend's job without the modeling layer, which matters at 5000 × 2000. The polar is the top
singular value (:mod:`.mf_polar`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..drivers import DriverOptions, run
from ..standard_form import Block, BlockSolution, Point, StandardForm
from .certificate import norm_upper, objective_with_error, sum_of_squares
from .grow import LocalDescent, PolarInfo
from .mf_expanded import FactorizationValues
from .mf_polar import mf_polar
from .patterns import check_deadline
from .spectral_bound import SUBNORMAL_SPACING, gamma

__all__ = ["MFForm", "MFState", "MFGrowProblem", "PROVE_BELOW", "EXPANDED_SHARE"]

#: The polar is proven (:mod:`.spectral_bound`) only when its estimate is at most this multiple of λ.
PROVE_BELOW = 1.1


#: The expanded value (:mod:`.mf_expanded`) is used where its proven rounding bound is at most this share of
#: the run's gap tolerance ``tol·|f|``; the residual otherwise.
EXPANDED_SHARE = 1e-3



def _ridge_solve(K: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """``rhs K⁻¹`` for the symmetric ``K = FᵀF + λI`` (least squares where it is singular)."""
    try:
        return np.linalg.solve(K, rhs.T).T
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(K, rhs.T, rcond=None)[0].T


class MFForm(StandardForm):
    """``½‖Y − U Vᵀ‖² + (λ/2)(‖U‖² + ‖V‖²)`` with blocks ``U`` and ``V`` solved in closed form.

    Values come from the expansion (:class:`.mf_expanded.FactorizationValues`: no ``m × n`` pass, ``YV`` and
    ``YᵀU`` shared with the ridge regressions) where its proven rounding bound is at most
    :data:`EXPANDED_SHARE` of the run's gap tolerance (:meth:`set_tolerance`), else from the residual. Before a
    tolerance is set (and with ``tol = 0``) every value is the residual's.
    """

    def __init__(self, Y: np.ndarray, lam: float):
        self.Y = Y
        self.lam = float(lam)
        self.blocks = [Block("U", ("U",)), Block("V", ("V",))]
        self._prepared: dict[int, Point] = {}
        self._last_residual: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self.expanded = FactorizationValues(Y, self.lam)
        self._rtol = 0.0
        self.counts = {"expanded": 0, "residual": 0}  # which way each value was computed (for tests and profiles)

    def keys(self) -> list[Hashable]:
        return ["U", "V"]

    def initial_point(self, seed: int | None, init: Mapping[Any, Any] | None) -> Point:
        return {k: np.asarray(v, dtype=float) for k, v in (init or {}).items()}

    def set_tolerance(self, tol: float) -> None:
        self._rtol = EXPANDED_SHARE * float(tol)

    def residual(self, U: np.ndarray, V: np.ndarray) -> np.ndarray:
        """``Y − U Vᵀ`` (read-only), remembered for the last factor values (compared by value: the driver hands
        back copies): the certificate and the polar ask for the same point. Without factors it is a view of ``Y``."""
        last = self._last_residual
        if last is not None and (last[0] is U or np.array_equal(last[0], U)) \
                and (last[1] is V or np.array_equal(last[1], V)):
            return last[2]
        if U.shape[1] == 0:
            R = self.Y.view()
        else:
            R = U @ V.T
            np.subtract(self.Y, R, out=R)  # Y − UVᵀ in the product's buffer: one m × n allocation, not two
        R.setflags(write=False)
        self._last_residual = (U.copy(), V.copy(), R)
        return R

    def value(self, U: np.ndarray, V: np.ndarray) -> float:
        """The objective: expanded where its bound allows (see the class), else from the residual."""
        return self.value_with_error(U, V)[0]

    def value_with_error(self, U: np.ndarray, V: np.ndarray) -> tuple[float, float]:
        """``(f̂, e)``: the objective as :meth:`value` computes it and a proven bound ``|f̂ − f(U, V)| ≤ e``.

        The expanded value carries its own bound (:class:`.mf_expanded.FactorizationValues`); the residual's is
        :func:`.certificate.objective_with_error` with ``‖R̂ − R‖ ≤ γ_k‖U‖‖V‖ + γ_1‖R̂‖`` for
        ``R̂ = fl(Y − fl(UVᵀ))`` (``γ_k|U||Vᵀ|`` entrywise for the product, one rounding for the subtraction,
        ``2⁻¹⁰⁷⁴`` per product for underflow; exact without factors) — no pass beyond the sums of squares the
        value takes anyway.
        """
        k = U.shape[1]
        if self._rtol > 0.0 and k > 0:
            f, err = self.expanded.value(U, V, need=self._rtol)
            if err <= self._rtol * abs(f):
                self.counts["expanded"] += 1
                return f, err
        self.counts["residual"] += 1
        R = self.residual(U, V)
        rr, uu, vv = sum_of_squares(R), sum_of_squares(U), sum_of_squares(V)
        r_err = 0.0
        if k > 0:
            r_err = (gamma(k) * norm_upper(uu) * norm_upper(vv) + gamma(1) * norm_upper(rr)
                     + math.sqrt(R.size) * k * SUBNORMAL_SPACING)
        return objective_with_error(rr, r_err, (uu, vv), self.lam)

    def ridge(self, index: int, U: np.ndarray, V: np.ndarray) -> np.ndarray:
        """Block ``index``'s minimiser with the other factor fixed: ``U = YV (VᵀV + λI)⁻¹`` (0) or
        ``V = YᵀU (UᵀU + λI)⁻¹`` (1); ``YV``/``YᵀU`` and the Gram matrix are the ones the values use."""
        F = V if index == 0 else U
        rhs = self.expanded.YV(V)[0] if index == 0 else self.expanded.YtU(U)[0]
        K = self.expanded.gram(F).gram + self.lam * np.eye(F.shape[1])
        return _ridge_solve(K, rhs)

    def evaluate(self, point: Point) -> tuple[float, float]:
        return self.value(point["U"], point["V"]), 0.0

    def merit(self, index: int, sol: BlockSolution) -> tuple[float, float] | None:
        # solve_prepared valued the candidate itself
        return (sol.value, 0.0) if sol.ok and math.isfinite(sol.value) else None

    def piece(self, point: Point) -> tuple[np.ndarray, ...]:
        return ()

    def prepare(self, index: int, point: Point, *, prox: float = 0.0, flip_boundary: bool = False) -> bool:
        self._prepared[index] = point
        return False

    def solve_prepared(self, index: int) -> BlockSolution:
        t0 = time.perf_counter()
        p = self._prepared[index]
        U, V = p["U"], p["V"]
        vals: dict[Hashable, np.ndarray]
        if index == 0:
            U = self.ridge(0, U, V)
            vals = {"U": U}
        else:
            V = self.ridge(1, U, V)
            vals = {"V": V}
        dt = time.perf_counter() - t0
        return BlockSolution(block=index, status="optimal", values=vals, value=self.value(U, V),
                             backend="closed-form", solve_time=dt, wall_time=dt)

    def load(self, point: Point) -> None:
        self.final_point = point

    def named_values(self, point: Point) -> dict[str, np.ndarray]:
        return {"U": point["U"].copy(), "V": point["V"].copy()}


@dataclass(frozen=True)
class MFState:
    U: np.ndarray
    V: np.ndarray


class MFGrowProblem:
    """The factorization's side of the meta-algorithm (see :class:`.grow.SubnetworkProblem`)."""

    degree = 2

    def __init__(self, Y: np.ndarray, lam: float, *, seed: int | None = 0, zero_tol: float = 1e-12):
        self.Y = np.asarray(Y, dtype=float)
        self.lam = float(lam)
        self.form = MFForm(self.Y, self.lam)
        self.seed = seed
        self.zero_tol = zero_tol
        self._scale = float(np.linalg.norm(self.Y)) or 1.0

    def objective(self, s: MFState) -> float:
        return self.form.value(s.U, s.V)

    def objective_bound(self, s: MFState) -> tuple[float, float]:
        """``(f̂, e)`` with ``|f̂ − f| ≤ e`` proven (:meth:`MFForm.value_with_error`): what the certificate's gap uses."""
        return self.form.value_with_error(s.U, s.V)

    def n_subnetworks(self, s: MFState) -> int:
        return s.U.shape[1]

    def local_descent(self, s: MFState, *, max_iters: int, tol: float, deadline: float | None) -> LocalDescent:
        if s.U.shape[1] == 0:
            return LocalDescent(s, 0, True, 0.0, block_gaps={"U": 0.0, "V": 0.0})

        limit = None if deadline is None else max(0.0, deadline - time.perf_counter())
        # the driver's test is tol·|f| (multiconvex.tolerance), as scale-equivariant as the certificate's
        res = run(self.form, {"U": s.U, "V": s.V},
                  DriverOptions(algorithm="gauss-seidel", max_iters=max_iters, tol=tol, time_limit=limit,
                                progress=False))
        st = MFState(res.values["U"], res.values["V"])
        # the driver catches Ctrl-C and returns its best point: the meta-algorithm must stop too
        interrupted = res.status == "interrupted"
        # after a limit or Ctrl-C the driver computed no gaps (nan): none are passed on
        gaps = None if res.status in ("time_limit", "interrupted") else dict(res.certificate.block_gaps)
        return LocalDescent(st, res.iterations, res.status == "converged", res.solver_time, block_gaps=gaps,
                            interrupted=interrupted)

    def block_gaps(self, s: MFState) -> dict[str, float]:
        if s.U.shape[1] == 0:
            return {"U": 0.0, "V": 0.0}
        f = self.objective(s)
        U = self.form.ridge(0, s.U, s.V)
        gap_u = f - self.form.value(U, s.V)
        V = self.form.ridge(1, s.U, s.V)
        return {"U": gap_u, "V": f - self.form.value(s.U, V)}

    def drop_zero(self, s: MFState) -> MFState:
        size = np.linalg.norm(s.U, axis=0) * np.linalg.norm(s.V, axis=0)
        keep = size > self.zero_tol * self._scale
        if keep.all():
            return s
        return MFState(s.U[:, keep].copy(), s.V[:, keep].copy())

    def outputs_for_rescale(self, s: MFState) -> dict[str, np.ndarray]:
        """The outputs ``u_j v_jᵀ`` in compressed coordinates: with ``U = Q_U R_U`` and ``V = Q_V R_V``
        (thin QR), ``u_j v_jᵀ = Q_U (R_U[:, j] R_V[:, j]ᵀ) Q_Vᵀ`` and the orthonormal factors keep inner
        products, so the r² × r matrix of ``vec(R_U[:, j] R_V[:, j]ᵀ)`` has the same null space as the
        m n × r stacked outputs — and an SVD of it is accurate (a Gram matrix would square the error)."""
        Ru = np.linalg.qr(s.U, mode="r")
        Rv = np.linalg.qr(s.V, mode="r")
        return {"outputs": np.einsum("aj,bj->abj", Ru, Rv).reshape(-1, s.U.shape[1])}

    def thetas(self, s: MFState) -> np.ndarray:
        return 0.5 * (np.sum(s.U**2, axis=0) + np.sum(s.V**2, axis=0))

    def scale(self, s: MFState, factors: np.ndarray) -> MFState:
        return MFState(s.U * factors, s.V * factors)

    def residual(self, s: MFState) -> np.ndarray:
        return self.form.residual(s.U, s.V)

    def polar(self, s: MFState, k: int, full: bool = False, deadline: float | None = None) -> PolarInfo:
        """The top singular values of the residual (one SVD-sized step: ``deadline`` is checked before it)."""
        check_deadline(deadline, "MFGrowProblem.polar")
        # the proof (a Gram product and a Cholesky factorization) is skipped while the polar is clearly above λ:
        # the certificate cannot pass there, and the rounds that can pass get it. V as the start block saves most
        # block steps near a stationary point (it never decides the proof); the deflated bound spares the Gram product
        # where the top values stand clear of the rest
        p = mf_polar(self.residual(s), k=k, seed=self.seed, prove_below=None if full else PROVE_BELOW * self.lam,
                     relevant_above=self.lam, start=s.V, deadline=deadline, proof="auto")
        return PolarInfo(value=p.value, upper=p.upper, exact=p.exact, method=p.method,
                         maximisers=[(p.left[:, i], p.right[:, i]) for i in range(len(p.sigmas))],
                         values=[float(v) for v in p.sigmas], wall_time=p.wall_time, solver_time=p.wall_time)

    def append(self, s: MFState, polar: PolarInfo, k: int) -> MFState:
        """Append the top ``k`` singular pairs above λ, each scaled by the exact line search.

        Along ``c · a bᵀ`` (unit singular pair, value σ) the objective is
        ``½‖G‖² − cσ + ½c² + λc``, minimised at ``c = σ − λ``; orthonormal pairs do not interact, so
        adding them together lowers the objective by ``Σ ½(σ_i − λ)²``.
        """
        cols_u, cols_v = [s.U], [s.V]
        for (a, b), sigma in list(zip(polar.maximisers, polar.values))[:k]:
            c = sigma - self.lam
            if c <= 0:
                break
            cols_u.append(math.sqrt(c) * a[:, None])
            cols_v.append(math.sqrt(c) * b[:, None])
        return MFState(np.hstack(cols_u), np.hstack(cols_v))

    def values(self, s: MFState) -> dict[str, np.ndarray]:
        return {"U": s.U.copy(), "V": s.V.copy()}
