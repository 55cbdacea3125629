"""Nonnegative matrix factorization as a :class:`~multiconvex.standard_form.StandardForm` built from arrays.

The problem (scikit-learn's Frobenius objective, its regularisation already scaled) is

.. math::

    \\min_{W \\ge 0,\\, H \\ge 0} \\; \\tfrac12 \\|Y - W H\\|_F^2
    + l_1^W \\textstyle\\sum W + \\tfrac{l_2^W}{2} \\|W\\|_F^2 + l_1^H \\sum H + \\tfrac{l_2^H}{2} \\|H\\|_F^2

with blocks ``W`` and ``H``. Each block's subproblem is built directly as a
:class:`~multiconvex.subproblem.BlockSubproblem` — one slot, one shared ``k × k`` Gram matrix
(``G = H Hᵀ + l_2^W I`` for every row of ``W``; ``G = Wᵀ W + l_2^H I`` for every column of ``H``), linear
term ``−Y Hᵀ + l_1^W`` (resp. ``−Wᵀ Y + l_1^H``), lower bounds 0 — with no modeling layer in the loop;
the dispatcher (passed in as ``solve``, so that the core does not import the backends) solves it.

Values are computed without cancellation: the objective at a point from the residual ``Y − W H``, and a
block candidate's objective as the point's objective minus the exact decrease of the quadratic,
``f(x) − f(x*) = ∇f(x*)ᵀ(x − x*) + ½ (x − x*)ᵀ P (x − x*)``, whose terms vanish with the step. So a
block gap at a partial minimum is measured at rounding level of the *gap*, not of ``½‖Y‖²`` (the
expanded quadratic ``½‖Y‖² − ⟨Y Hᵀ, W⟩ + …`` cancels near a perfect fit).

Examples
--------
>>> import numpy as np
>>> from multiconvex.solvers import make_plan, solve_subproblem
>>> Y = np.abs(np.random.default_rng(0).standard_normal((6, 5)))
>>> plan = make_plan("auto")
>>> form = NMFForm(Y, 2, solve=lambda sub, warm, key: solve_subproblem(sub, plan, warm=warm, key=key))
>>> x0 = form.initial_point(0, None)
>>> form.prepare(0, x0)
False
>>> sol = form.solve_prepared(0)
>>> sol.status, sol.backend, bool(sol.value <= form.objective(x0))
('optimal', 'nnls', True)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp

from .errors import InvalidInputError
from .standard_form import Block, BlockSolution, Point, StandardForm
from .subproblem import BlockSubproblem, KronTerm, make_slots

__all__ = ["NMFForm", "canonical_csr", "nmf_objective"]

EPS = float(np.finfo(float).eps)

#: A point's running value (its predecessor's minus an exact decrease) is recomputed from the residual when its
#: rounding-error bound exceeds this fraction of it (and twice the residual's): near a perfect fit, where ``f``
#: is far below where it started.
VALUE_RTOL = 1e-10

#: Entries of a sparse ``Y``'s dense residual formed at once (:func:`nmf_objective`): 8 MiB.
RESIDUAL_CHUNK = 1 << 20

#: ``solve(sub, warm, key)`` -> an object with ``status``, ``x``, ``backend``, ``solve_time``, ``wall_time``,
#: ``attempts`` and ``message`` (:class:`multiconvex.solvers.SubSolution`).
SolveFn = Callable[[BlockSubproblem, "np.ndarray | None", Hashable], Any]


def canonical_csr(Y: sp.spmatrix | sp.sparray) -> sp.csr_array:
    """``Y`` as a float CSR array with sorted indices and one stored value per entry (duplicates summed, scipy's
    meaning), never by changing the caller's arrays (``sum_duplicates`` sorts and compacts them in place: a CSR input
    shares them).

    >>> A = sp.csr_matrix((np.array([1.0, 2.0]), np.array([1, 1]), np.array([0, 2])), shape=(1, 2))
    >>> canonical_csr(A).toarray().tolist(), A.data.tolist()
    ([[0.0, 3.0]], [1.0, 2.0])
    """
    out = sp.csr_array(Y, dtype=float)
    if not out.has_canonical_format:
        out = out.copy()
        out.sum_duplicates()
    return out


def nmf_objective(Y: np.ndarray | sp.spmatrix | sp.sparray, W: np.ndarray, H: np.ndarray, l1_W: float = 0.0,
                  l2_W: float = 0.0, l1_H: float = 0.0, l2_H: float = 0.0) -> float:
    """``½‖Y − W H‖² + l1_W ΣW + ½ l2_W ‖W‖² + l1_H ΣH + ½ l2_H ‖H‖²``, the fit from the residual.

    A sparse ``Y`` gives the same residual, formed in blocks of rows (:data:`RESIDUAL_CHUNK` entries at most): ``W H``
    is dense, and the expanded ``½‖Y‖² − ⟨Y, W H⟩ + ½‖W H‖²`` that reads only ``Y``'s nonzeros cancels near a good fit.

    Examples
    --------
    >>> nmf_objective(np.ones((2, 2)), np.ones((2, 1)), np.ones((1, 2)), l2_W=2.0)
    2.0
    >>> nmf_objective(sp.csr_array(np.eye(2)), np.ones((2, 1)), np.ones((1, 2)))
    1.0
    """
    if sp.issparse(Y):
        Y = canonical_csr(Y)
        rows = max(1, RESIDUAL_CHUNK // max(1, Y.shape[1]))
        value = 0.0
        for i in range(0, Y.shape[0], rows):
            block = Y[i:i + rows]
            R = W[i:i + rows] @ H  # then minus the block's nonzeros: −(Y − W H) entry for entry, the same squares
            R[np.repeat(np.arange(block.shape[0]), np.diff(block.indptr)), block.indices] -= block.data
            value += 0.5 * float(np.vdot(R, R))
    else:
        R = Y - W @ H
        value = 0.5 * float(np.vdot(R, R))
    if l1_W:
        value += l1_W * float(W.sum())
    if l2_W:
        value += 0.5 * l2_W * float(np.vdot(W, W))
    if l1_H:
        value += l1_H * float(H.sum())
    if l2_H:
        value += 0.5 * l2_H * float(np.vdot(H, H))
    return value


class NMFForm(StandardForm):
    """NMF with blocks ``[W]`` and ``[H]``, subproblems as shared-Gram NNLS values.

    Parameters
    ----------
    Y : ndarray or scipy.sparse matrix of shape (m, n)
        Nonnegative, finite data (checked by the caller). Sparse data is kept sparse (CSR) in the block products;
        the objective's residual is formed in blocks of rows (:func:`nmf_objective`).
    k : int
        Number of components.
    solve : callable
        ``solve(sub, warm, key)``: the dispatcher with the user's plan bound
        (:func:`multiconvex.solvers.solve_subproblem`).
    l1_W, l2_W, l1_H, l2_H : float
        Penalties, already scaled (scikit-learn's ``_compute_regularization``).
    on_deadline : callable, optional
        ``on_deadline(deadline)`` with the run's deadline (``time.time()`` seconds, or ``None``) when the
        driver sets it: the caller puts it on the plan bound into ``solve``, which then starts no solve
        after it and hands each backend the time left as its own time limit.
    """

    def __init__(self, Y: np.ndarray | sp.spmatrix | sp.sparray, k: int, *, solve: SolveFn, l1_W: float = 0.0,
                 l2_W: float = 0.0, l1_H: float = 0.0, l2_H: float = 0.0, coordinate_rtol: float = 0.0,
                 on_deadline: Callable[[float | None], None] | None = None):
        self.Y: np.ndarray | sp.csr_array = canonical_csr(Y) if sp.issparse(Y) else np.asarray(Y, dtype=float)
        self.coordinate_rtol = float(coordinate_rtol)
        self.coordinate_steps = self.coordinate_rtol > 0  # still taking coordinate (HALS) block steps
        self.k = int(k)
        self._solve = solve
        self._on_deadline = on_deadline
        self.pen = {"W": (float(l1_W), float(l2_W)), "H": (float(l1_H), float(l2_H))}
        self.blocks = [Block("W", ("W",)), Block("H", ("H",))]
        self.point: Point | None = None
        self._prepared: dict[int, tuple] = {}
        # (W, H, objective, bound on its rounding error) of recent points, compared by identity
        self._known: list[tuple[np.ndarray, np.ndarray, float, float]] = []
        m, n = self.Y.shape
        self._zeros = {"W": np.zeros(m * self.k), "H": np.zeros(self.k * n)}
        values: np.ndarray = self.Y.data if isinstance(self.Y, sp.csr_array) else self.Y  # one value per entry
        self._half_norm_Y = 0.5 * float(np.vdot(values, values))

    # -- the protocol ------------------------------------------------------------------------------
    def keys(self) -> list[Hashable]:
        return ["W", "H"]

    def initial_point(self, seed: int | None, init: Mapping[Any, Any] | None) -> Point:
        """``init``'s ``W`` and ``H`` where given; elsewhere scikit-learn's ``init="random"`` draw with ``seed``."""
        m, n = self.Y.shape
        rng = np.random.RandomState(seed)  # scikit-learn's stream: H is drawn first
        avg = math.sqrt(float(self.Y.mean()) / self.k)
        H = np.abs(avg * rng.standard_normal(size=(self.k, n)))
        W = np.abs(avg * rng.standard_normal(size=(m, self.k)))
        point: Point = {"W": W, "H": H}
        for key, shape in (("W", (m, self.k)), ("H", (self.k, n))):
            if init is not None and init.get(key) is not None:
                value = np.asarray(init[key], dtype=float)
                if value.shape != shape:
                    raise InvalidInputError(f"init[{key!r}] has shape {value.shape}; expected {shape}")
                point[key] = value
        return point

    def evaluate(self, point: Point) -> tuple[float, float]:
        W, H = point["W"], point["H"]
        violation = max(0.0, -float(W.min(initial=0.0)), -float(H.min(initial=0.0)))
        if violation > 0:
            return math.inf, violation
        return self._objective(W, H)[0], 0.0

    def extrapolated(self, point: Point) -> Point:
        """``point`` clipped at 0: the nonnegative factors nearest to it."""
        return {name: np.maximum(value, 0.0) for name, value in point.items()}

    def piece(self, point: Point) -> tuple[np.ndarray, ...]:
        return ()  # no piecewise-affine atoms

    def subproblem(self, index: int, point: Point, prox: float = 0.0) -> BlockSubproblem:
        """Block ``index``'s NNLS subproblem on the cross-section through ``point`` (optionally with a
        proximal term ``prox/2 ‖x − x_point‖²``)."""
        W, H = point["W"], point["H"]
        Y, k = self.Y, self.k
        name = self.blocks[index].name
        l1, l2 = self.pen[name]
        if name == "W":  # rows of W: G = H Hᵀ, q_i = −(Y Hᵀ)_i; slot (m, k), P = kron(G, I)
            G = H @ H.T
            Q = -(Y @ H.T)  # (m, k)
            x0 = W
            shape = W.shape
            q = Q.ravel(order="F")
            const_other = self._penalty("H", H)
        else:  # columns of H: G = Wᵀ W, q_j = −(Wᵀ Y)_j; slot (k, n), P = kron(I, G)
            G = W.T @ W
            Q = -(Y.T @ W)  # (n, k): row j is column j of −Wᵀ Y
            x0 = H
            shape = H.shape
            q = Q.ravel(order="C")  # column-major of the (k, n) matrix −Wᵀ Y
            const_other = self._penalty("W", W)
        G = G + (l2 + prox) * np.eye(k) if (l2 or prox) else G
        q = q + l1 if l1 else q
        if prox:
            q = q - prox * x0.ravel(order="F")
        c = self._half_norm_Y + const_other + (0.5 * prox * float(np.vdot(x0, x0)) if prox else 0.0)
        term = KronTerm(0, 0, None, G) if name == "W" else KronTerm(0, 0, G, None)
        return BlockSubproblem(make_slots([(name, shape)]), [term], q, c, lb=self._zeros[name])

    def _penalty(self, name: str, X: np.ndarray) -> float:
        l1, l2 = self.pen[name]
        return (l1 * float(X.sum()) if l1 else 0.0) + (0.5 * l2 * float(np.vdot(X, X)) if l2 else 0.0)

    @staticmethod
    def _gram(sub: BlockSubproblem) -> np.ndarray:
        """The block's shared Gram matrix, as :meth:`subproblem` put it in (no summing of terms)."""
        term = sub.quad[0]
        G = term.right if term.left is None else term.left
        assert G is not None
        return G

    def prepare(self, index: int, point: Point, *, prox: float = 0.0, flip_boundary: bool = False) -> bool:
        sub = self.subproblem(index, point, prox)
        # blocks prepared together are a Jacobi pass (the driver's convergence check and its certificate among
        # them): those are solved exactly; a coordinate step is only ever a Gauss-Seidel step
        together = bool(self._prepared)
        for i, (s, p, x, _) in list(self._prepared.items()):
            self._prepared[i] = (s, p, x, True)
        self._prepared[index] = (sub, point, prox, together)
        return False

    def solve_prepared(self, index: int) -> BlockSolution:
        sub, point, prox, together = self._prepared.pop(index)
        name = self.blocks[index].name
        x0 = point[name]
        if self.coordinate_steps and not prox and not together:
            sol = self._coordinate_step(index, sub, point)
            if sol is not None:
                return sol
        out = self._solve(sub, x0.ravel(order="F"), name)
        if out.x is None:
            return BlockSolution(index, out.status, None, math.nan, out.backend, out.solve_time, out.wall_time,
                                 out.message, list(out.attempts))
        X = np.maximum(np.asarray(out.x, dtype=float).reshape(x0.shape, order="F"), 0.0)
        cand = dict(point)
        cand[name] = X
        value, err = self._candidate_value(index, sub, point, X, prox)
        self._remember(cand["W"], cand["H"], value, err)
        return BlockSolution(index, out.status, {name: X}, value, out.backend, out.solve_time, out.wall_time,
                             out.message, list(out.attempts))

    def _coordinate_step(self, index: int, sub: BlockSubproblem, point: Point) -> BlockSolution | None:
        """One pass of exact coordinate minimisation over the block's columns (HALS; what scikit-learn's
        ``cd`` does), as long as it lowers the objective by more than ``coordinate_rtol`` of it; after the
        first step that does not, every block step is an exact solve (and so is every certificate).

        The step is not the block's optimum: its status is ``optimal_inaccurate``, so it never enters a
        block gap."""
        t0 = time.perf_counter()
        name = self.blocks[index].name
        x0 = point[name]
        G = self._gram(sub)
        Q = sub.q.reshape(sub.slots[0].shape, order="F")
        X = np.array(x0 if name == "W" else x0.T, dtype=float)  # rows form, a copy updated in place
        if name != "W":
            Q = Q.T
        for j in range(self.k):
            if G[j, j] > 0:
                step = (X @ G[:, j] + Q[:, j]) / G[j, j]
                np.maximum(X[:, j] - step, 0.0, out=X[:, j])
        Xb = X if name == "W" else np.ascontiguousarray(X.T)
        value, err = self._candidate_value(index, sub, point, Xb, 0.0)
        f_point = self._objective(point["W"], point["H"])[0]
        if f_point - value <= self.coordinate_rtol * abs(f_point):
            self.coordinate_steps = False  # too little progress: exact solves from now on, this one included
            return None
        cand = dict(point)
        cand[name] = Xb
        self._remember(cand["W"], cand["H"], value, err)
        wall = time.perf_counter() - t0
        return BlockSolution(index, "optimal_inaccurate", {name: Xb}, value, "hals", wall, wall,
                             "one coordinate-descent pass (not the block optimum)")

    def set_deadline(self, deadline: float | None) -> None:
        """The run's deadline, handed to the dispatcher's plan through ``on_deadline``
        (see :meth:`StandardForm.set_deadline`)."""
        if self._on_deadline is not None:
            self._on_deadline(deadline)

    def merit(self, index: int, sol: BlockSolution) -> tuple[float, float] | None:
        return (sol.value, 0.0) if sol.ok else None

    def load(self, point: Point) -> None:
        self.point = point

    def named_values(self, point: Point) -> dict[str, np.ndarray]:
        return {"W": point["W"], "H": point["H"]}

    # -- values without cancellation ---------------------------------------------------------------
    def _objective(self, W: np.ndarray, H: np.ndarray) -> tuple[float, float]:
        for w, h, value, err in self._known:
            if w is W and h is H:
                return value, err
        value, err = self._residual_value(W, H)
        self._remember(W, H, value, err)
        return value, err

    def _residual_value(self, W: np.ndarray, H: np.ndarray) -> tuple[float, float]:
        """The objective from the residual, and a bound on its rounding error."""
        value = nmf_objective(self.Y, W, H, *self.pen["W"], *self.pen["H"])
        return value, self._residual_error(value, W, H)

    def _residual_error(self, value: float, W: np.ndarray, H: np.ndarray) -> float:
        """``R = Y − W H`` is exact to ``≈ ε (|Y| + |W||H|)`` per entry, so ``½‖R‖²`` to ``≈ ε ‖R‖ (‖Y‖ + ‖W‖‖H‖)``."""
        scale = math.sqrt(2.0 * self._half_norm_Y) + float(np.linalg.norm(W)) * float(np.linalg.norm(H))
        return 8 * EPS * (abs(value) + math.sqrt(2.0 * abs(value)) * scale)

    def _remember(self, W: np.ndarray, H: np.ndarray, value: float, err: float) -> None:
        self._known.append((W, H, value, err))
        del self._known[:-4]

    def _candidate_value(self, index: int, sub: BlockSubproblem, point: Point, X: np.ndarray,
                         prox: float) -> tuple[float, float]:
        """The true objective at the candidate: the point's objective minus the exact decrease
        ``∇f(x*)ᵀ d + ½ dᵀ P d`` with ``d = x − x*`` (``P`` without the proximal term); and a bound on the
        rounding error of that value (the point's, plus the decrease's, which shrinks with the step)."""
        name = self.blocks[index].name
        W, H = point["W"], point["H"]
        f_point, err_point = self._objective(W, H)
        if err_point > max(VALUE_RTOL * abs(f_point), 2 * self._residual_error(f_point, W, H)):
            # the running value has drifted far below where it started (a near-perfect fit): re-anchor the
            # point on its residual; the decrease below stays exact, so block gaps keep their accuracy
            f_point, err_point = self._residual_value(W, H)
            self._known = [e for e in self._known if not (e[0] is W and e[1] is H)]
            self._remember(W, H, f_point, err_point)
        x0 = point[name]
        G = self._gram(sub)
        if prox:
            G = G - prox * np.eye(self.k)
        # rows form (W's rows, or H's columns transposed); the linear term without the proximal part
        Q = sub.q.reshape(sub.slots[0].shape, order="F")
        if name == "W":
            D, Xr = x0 - X, X
        else:
            D, Xr, Q = (x0 - X).T, X.T, Q.T
        if prox:
            Q = Q + prox * (x0 if name == "W" else x0.T)
        grad = Xr @ G + Q
        DG = D @ G
        decrease = float(np.vdot(D, grad)) + 0.5 * float(np.vdot(D, DG))
        norm_d = float(np.linalg.norm(D))
        err = err_point + 8 * EPS * (abs(f_point) + math.sqrt(D.size) * norm_d * (
            float(np.linalg.norm(grad)) + float(np.linalg.norm(DG))))
        value = f_point - decrease
        if value <= err:  # a (near-)perfect fit: the difference is all rounding, even below 0; the residual's
            # value is accurate there (its error shrinks with ‖R‖)
            return self._residual_value(X, H) if name == "W" else self._residual_value(W, X)
        return value, err
