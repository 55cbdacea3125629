"""A block subproblem as a value: the convex program in the block's own variables.

Front ends *produce* a :class:`BlockSubproblem` for a block at a point (the
cross-section through the point, on its piece); the dispatcher in
:mod:`multiconvex.solvers.dispatch` *solves* it. The program is

.. math::

    \\min_x \\; \\tfrac12 x^\\top P x + q^\\top x + c
    \\quad\\text{s.t.}\\quad l \\le A x \\le u, \\; lb \\le x \\le ub,
    \\; S x + s \\in Q_{d_1} \\times \\dots \\times Q_{d_k},

where ``x`` stacks the block's variables (each one a *slot*, vectorised in
column-major order as cvxpy does). ``P`` is kept in the structure it has:

* a list of Kronecker terms ``P[i, j] += scale * kron(right, left)`` between
  slots ``i`` and ``j`` — the Gram matrix of a least-squares residual
  ``L X R`` is ``kron(R Rᵀ, Lᵀ L)``, so the ``m·k``-variable U block of a
  factorization ``‖Y − U V‖²`` is one ``k × k`` matrix shared by every row of
  ``U``, never a ``m·k`` square matrix nor one auxiliary variable per residual;
* an optional explicit part ``P_extra`` (dense or scipy sparse) for anything else.

Second-order cones appear only where the program has them (class ``SOCP``): ``soc_A x + soc_b``
stacks the cones' rows, cone ``k`` taking the next ``soc_dims[k]`` rows ``(t, v)`` with
``‖v‖₂ ≤ t`` — so ``‖G x + h‖₂ ≤ gᵀx + e`` is the rows ``[gᵀ; G]``, ``[e; h]`` (:func:`soc_rows`).
A front end keeps the sparsity of ``soc_A`` fixed between points (only its numbers change), so a
kept Clarabel solver is updated in place.

The backend that fits reads the structure (:meth:`BlockSubproblem.shared_gram`
for closed-form batched solves) or asks for ``P`` as a dense or sparse matrix.

Examples
--------
>>> import numpy as np
>>> sub = BlockSubproblem.from_dense(np.diag([2.0, 4.0]), np.array([-2.0, -4.0]), c=3.0)
>>> sub.problem_class, sub.n
('EQP', 2)
>>> float(sub.value(np.array([1.0, 1.0])))
0.0
>>> G, h = soc_rows([(np.array([0.0, 0.0]), 1.0, np.eye(2), np.zeros(2))])   # ‖x‖ ≤ 1
>>> ball = BlockSubproblem.from_dense(np.diag([2.0, 4.0]), np.array([-2.0, -4.0]), soc_A=G, soc_b=h, soc_dims=(3,))
>>> ball.problem_class, round(ball.violation(np.array([1.0, 1.0])), 6)
('SOCP', 0.414214)
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from multiconvex.errors import InvalidInputError


def half_quadratic(x: np.ndarray, px: np.ndarray) -> float:
    """``½ xᵀ(Px)`` given ``Px``: halving the dot product is exact, so it is the number ``(½x)ᵀ(Px)`` gives without a
    pass over ``x`` to halve it — but for gradual underflow, and for a dot product in (max float, 2·max float),
    which overflows before the halving: then ``(½x)ᵀ(Px)`` is computed."""
    d = float(x @ px)
    return 0.5 * d if math.isfinite(d) else float((0.5 * x) @ px)

@dataclass(frozen=True)
class Slot:
    """One variable of a block: its key, its shape as a matrix, its place in ``x``."""

    key: Hashable
    shape: tuple[int, int]  # (rows, columns); a vector of length n is (n, 1), a scalar (1, 1)
    offset: int
    value_shape: tuple[int, ...] = ()  # the shape the user sees (cvxpy's ``Variable.shape``)

    @property
    def size(self) -> int:
        return self.shape[0] * self.shape[1]

    @property
    def span(self) -> slice:
        return slice(self.offset, self.offset + self.size)


def make_slots(items: list[tuple[Hashable, tuple[int, ...]]]) -> tuple[Slot, ...]:
    """Slots for ``(key, shape)`` pairs in order; 0-d is ``(1, 1)``, 1-d ``(n, 1)``."""
    slots, offset = [], 0
    for key, shape in items:
        shape = tuple(int(s) for s in shape)
        if len(shape) > 2:
            raise ValueError(f"variable {key!r} has {len(shape)} dimensions; block subproblems take at most 2")
        mat = (shape + (1, 1))[:2] if len(shape) < 2 else shape
        slots.append(Slot(key, (mat[0], mat[1]), offset, shape))
        offset += mat[0] * mat[1]
    return tuple(slots)


@dataclass
class KronTerm:
    """``P[i, j] += scale * kron(right, left)`` (and the transpose at ``P[j, i]`` when ``i != j``).

    With slot ``i`` of shape ``(m_i, k_i)`` and slot ``j`` of shape ``(m_j, k_j)``, ``left``
    is ``m_i × m_j`` and ``right`` is ``k_i × k_j``; ``None`` stands for the identity (square
    slots pairs only). In matrix terms the term adds ``scale * left @ X_j @ right.T`` to the
    gradient of slot ``i``.
    """

    i: int
    j: int
    left: np.ndarray | None
    right: np.ndarray | None
    scale: float = 1.0


@dataclass
class BlockSubproblem:
    """``min ½xᵀPx + qᵀx + c  s.t.  l ≤ Ax ≤ u, lb ≤ x ≤ ub, soc_A x + soc_b ∈ Q`` in the block's own variables.

    Attributes
    ----------
    slots : tuple of Slot
        The block's variables and where each sits in ``x``.
    quad : list of KronTerm
        Structured part of ``P``.
    q : ndarray
        Linear term (length ``n``).
    c : float
        Constant, so that :meth:`value` is the true objective on the cross-section.
    P_extra : ndarray or scipy sparse matrix, optional
        Unstructured part of ``P`` (symmetric, ``n × n``).
    A, l, u : linear constraints (``A`` sparse CSR, ``m × n``; ``l``/``u`` may hold ±inf).
    lb, ub : variable bounds (``None``: unbounded).
    soc_A, soc_b, soc_dims : second-order cones ``soc_A x + soc_b ∈ Q(d_1) × … × Q(d_k)``
        (``soc_A`` sparse CSR, ``Σ d_k × n``; cone ``k`` is its next ``d_k`` rows ``(t, v)``,
        ``‖v‖₂ ≤ t``). ``None`` / ``()``: no cones.
    """

    slots: tuple[Slot, ...]
    quad: list[KronTerm]
    q: np.ndarray
    c: float = 0.0
    P_extra: np.ndarray | sp.spmatrix | None = None
    A: sp.csr_matrix | None = None
    l: np.ndarray | None = None
    u: np.ndarray | None = None
    lb: np.ndarray | None = None
    ub: np.ndarray | None = None
    soc_A: sp.csr_matrix | None = None
    soc_b: np.ndarray | None = None
    soc_dims: tuple[int, ...] = ()
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if (self.l is None or self.u is None) and (self.lb is None or self.ub is None):
            return  # no pair of sides to compare (an unconstrained block: every step of a factorization)
        for low, high, what in ((self.l, self.u, ("l", "u")), (self.lb, self.ub, ("lb", "ub"))):
            if low is None or high is None:
                continue
            bad = np.flatnonzero((np.asarray(low) == np.asarray(high)) & ~np.isfinite(np.asarray(high)))
            if bad.size:
                i = int(bad[0])
                raise InvalidInputError(
                    f"{what[0]}[{i}] == {what[1]}[{i}] == {float(np.asarray(high)[i])!r}: an equality needs a finite "
                    f"value; drop that row (or bound) or give it finite sides")

    # -- constructors ----------------------------------------------------------------------------
    @classmethod
    def from_dense(cls, P: np.ndarray | sp.spmatrix | None, q: np.ndarray, c: float = 0.0, *, A=None, l=None,
                   u=None, lb=None, ub=None, soc_A=None, soc_b=None, soc_dims: Sequence[int] = (),
                   check: bool = True) -> BlockSubproblem:
        """A single vector slot with an explicit ``P`` (``None``: linear objective) — tests, canned problems,
        matrix-level models. The cones, when given, are checked (:func:`check_soc`); so are, unless
        ``check=False`` (a caller whose data are convex and finite by construction), the shapes, that every entry
        is finite (sides and bounds may be ``±inf``, not ``nan``; the cones' data too), that ``P`` is symmetric (the
        backends read one triangle) and positive semidefinite (up to rounding, for ``n ≤`` :data:`PSD_CHECK_MAX`):
        an :class:`~multiconvex.errors.InvalidInputError` before any solve, where the backends had answered
        "optimal" at a saddle point of an indefinite ``P``, at ``nan``, or at a wrong point of a non-symmetric one."""
        q = np.asarray(q, dtype=float).ravel()
        A = None if A is None else sp.csr_matrix(A, dtype=float)
        if P is not None and not sp.issparse(P):
            if check and np.iscomplexobj(P):
                raise InvalidInputError("BlockSubproblem.from_dense: P is complex; the subproblem is real")
            P = np.asarray(P, dtype=float)  # a nested list, say
        if check:
            _check_dense(P, q, c, A, l, u, lb, ub)
            for name, data in (("soc_A", soc_A), ("soc_b", soc_b)):
                values = data.data if sp.issparse(data) else np.asarray(data if data is not None else [], dtype=float)
                if not np.all(np.isfinite(values)):
                    raise InvalidInputError(f"BlockSubproblem.from_dense: {name} has a non-finite entry")
        cones = check_soc(q.size, soc_A, soc_b, soc_dims) if soc_dims else (None, None, ())
        return cls(make_slots([("x", (q.size,))]), [], q, float(c), P_extra=P, A=A,
                   l=None if l is None else np.asarray(l, dtype=float),
                   u=None if u is None else np.asarray(u, dtype=float),
                   lb=None if lb is None else np.asarray(lb, dtype=float),
                   ub=None if ub is None else np.asarray(ub, dtype=float),
                   soc_A=cones[0], soc_b=cones[1], soc_dims=cones[2])

    # -- sizes and class -------------------------------------------------------------------------
    @property
    def n(self) -> int:
        return int(self.q.size)

    @property
    def m(self) -> int:
        """Number of linear constraint rows (bounds not counted)."""
        return 0 if self.A is None else int(self.A.shape[0])

    @property
    def n_soc(self) -> int:
        """Number of second-order cone rows."""
        return 0 if self.soc_A is None else int(self.soc_A.shape[0])

    @property
    def has_bounds(self) -> bool:
        return (self.lb is not None and bool(np.any(np.isfinite(self.lb)))) or (
            self.ub is not None and bool(np.any(np.isfinite(self.ub))))

    @property
    def only_equalities(self) -> bool:
        return not self.has_bounds and (self.m == 0 or (self.l is not None and self.u is not None
                                                        and bool(np.array_equal(self.l, self.u))))

    @property
    def is_quadratic(self) -> bool:
        return bool(self.quad) or self.P_extra is not None

    @property
    def problem_class(self) -> str:
        """``SOCP`` (second-order cones), ``EQP`` (no inequalities), ``QP``, or ``LP`` (no quadratic term),
        as the registry names them (found once: a subproblem's fields are not changed after it is made, as
        the cached forms of ``P`` assume too)."""
        cls = self._cache.get("class")
        if cls is None:
            if self.soc_dims:
                cls = "SOCP"
            else:
                cls = ("EQP" if self.only_equalities else "QP") if self.is_quadratic else "LP"
            self._cache["class"] = cls
        return cls

    # -- P in the forms backends want ----------------------------------------------------------
    def P_sparse(self) -> sp.csc_matrix:
        """The full symmetric ``P`` as a CSC matrix (built once per subproblem value)."""
        if "Psp" not in self._cache:
            n = self.n
            P = sp.csc_matrix((n, n))
            parts = []
            for t in self.quad:
                si, sj = self.slots[t.i], self.slots[t.j]
                left = sp.identity(si.shape[0]) if t.left is None else sp.csr_matrix(t.left)
                right = sp.identity(si.shape[1]) if t.right is None else sp.csr_matrix(t.right)
                block = t.scale * sp.kron(right, left, format="coo")
                parts.append((si.offset, sj.offset, block))
                if t.i != t.j:
                    parts.append((sj.offset, si.offset, block.T.tocoo()))
            if parts:
                rows = np.concatenate([b.row + r0 for r0, _, b in parts])
                cols = np.concatenate([b.col + c0 for _, c0, b in parts])
                vals = np.concatenate([b.data for _, _, b in parts])
                P = sp.csc_matrix((vals, (rows, cols)), shape=(n, n))
            if self.P_extra is not None:
                P = P + sp.csc_matrix(self.P_extra)
            self._cache["Psp"] = sp.csc_matrix(P)
        return self._cache["Psp"]

    def P_dense(self) -> np.ndarray:
        if "Pd" not in self._cache:
            if not self.quad and isinstance(self.P_extra, np.ndarray):  # already dense: no round trip
                self._cache["Pd"] = np.asarray(self.P_extra, dtype=float)
            else:
                self._cache["Pd"] = self.P_sparse().toarray()
        return self._cache["Pd"]

    def shared_gram(self) -> tuple[str, np.ndarray] | None:
        """``("rows", G)`` when ``P = kron(G, I)`` (every row of the one slot shares ``G``),
        ``("cols", H)`` when ``P = kron(I, H)``, else ``None``.

        Only for a single-slot block without an explicit part: the structure of a factor
        in a least-squares factorization.
        """
        if "shared" not in self._cache:
            self._cache["shared"] = self._shared_gram()
        return self._cache["shared"]

    def _shared_gram(self) -> tuple[str, np.ndarray] | None:
        if len(self.slots) != 1 or self.P_extra is not None or not self.quad:
            return None
        (m, k) = self.slots[0].shape
        if all(t.left is None for t in self.quad):
            return "rows", _summed_gram(k, [(t.scale, t.right) for t in self.quad])
        if all(t.right is None for t in self.quad):
            return "cols", _summed_gram(m, [(t.scale, t.left) for t in self.quad])
        return None

    # -- evaluation ------------------------------------------------------------------------------
    def Px(self, x: np.ndarray) -> np.ndarray:
        """``P @ x`` through the structure (no ``P`` formed)."""
        x = np.asarray(x, dtype=float)
        shared = self.shared_gram()
        if shared is not None:  # one product with the summed Gram matrix
            side, G = shared
            X = x.reshape(self.slots[0].shape, order="F")
            # rows: (X G)ᵀ = G Xᵀ (G symmetric) is C-ordered, so its rows are X G's columns: no copy
            return (G @ X.T).ravel() if side == "rows" else (G @ X).ravel(order="F")
        out = np.zeros_like(x)
        mats = [x[s.span].reshape(s.shape, order="F") for s in self.slots]
        for t in self.quad:
            si, sj = self.slots[t.i], self.slots[t.j]
            out[si.span] += t.scale * _lxr(t.left, mats[t.j], t.right, transpose=False).ravel(order="F")
            if t.i != t.j:
                out[sj.span] += t.scale * _lxr(t.left, mats[t.i], t.right, transpose=True).ravel(order="F")
        if self.P_extra is not None:
            out += self.P_extra @ x
        return out

    def value(self, x: np.ndarray) -> float:
        """The subproblem's objective at ``x`` (the true objective on the cross-section).

        ``½ (xᵀ(Px))`` (:func:`half_quadratic`)."""
        x = np.asarray(x, dtype=float)
        return float(half_quadratic(x, self.Px(x)) + self.q @ x + self.c)

    def violation(self, x: np.ndarray) -> float:
        """Largest violation of the constraints and bounds at ``x`` (0 when feasible)."""
        x = np.asarray(x, dtype=float)
        worst = 0.0
        if self.m:
            ax = self.A @ x
            worst = max(worst, float(np.max(self.l - ax, initial=0.0)), float(np.max(ax - self.u, initial=0.0)))
        if self.lb is not None:
            worst = max(worst, float(np.max(self.lb - x, initial=0.0)))
        if self.ub is not None:
            worst = max(worst, float(np.max(x - self.ub, initial=0.0)))
        if self.soc_dims:
            worst = max(worst, float(np.max(soc_gaps(self.soc_A @ x + self.soc_b, self.soc_dims), initial=0.0)))
        return worst

    def split(self, x: np.ndarray) -> dict[Hashable, np.ndarray]:
        """``x`` as the block's variables, keyed and shaped as the front end gave them."""
        return {s.key: np.asarray(x[s.span]).reshape(s.shape, order="F").reshape(s.value_shape, order="F")
                for s in self.slots}

    def stack(self, values: dict[Hashable, np.ndarray]) -> np.ndarray:
        """The inverse of :meth:`split`."""
        x = np.empty(self.n)
        for s in self.slots:
            x[s.span] = np.asarray(values[s.key], dtype=float).reshape(s.shape, order="F").ravel(order="F")
        return x

    def box(self) -> tuple[np.ndarray, np.ndarray]:
        """Bounds as two full arrays (±inf where absent)."""
        lb = np.full(self.n, -np.inf) if self.lb is None else self.lb
        ub = np.full(self.n, np.inf) if self.ub is None else self.ub
        return lb, ub


def soc_rows(cones: Sequence[tuple[np.ndarray, float, np.ndarray | sp.spmatrix, np.ndarray]]
             ) -> tuple[sp.csr_matrix, np.ndarray]:
    """``(soc_A, soc_b)`` for cones ``‖G_k x + h_k‖₂ ≤ g_kᵀx + e_k`` given as ``(g_k, e_k, G_k, h_k)``.

    Cone ``k`` has ``1 + G_k.shape[0]`` rows (its ``soc_dims`` entry). Explicit zeros in ``G_k`` are
    kept, so a front end that passes the same pattern at every point gets the same sparsity.
    """
    mats, rhs = [], []
    for g, e, G, h in cones:
        mats += [sp.csr_matrix(np.asarray(g, dtype=float).reshape(1, -1)), sp.csr_matrix(G, dtype=float)]
        rhs += [np.array([float(e)]), np.asarray(h, dtype=float).ravel()]
    return sp.vstack(mats, format="csr"), np.concatenate(rhs)


def soc_gaps(v: np.ndarray, dims: Sequence[int]) -> np.ndarray:
    """``‖v_k[1:]‖₂ − v_k[0]`` for each cone's rows ``v_k`` of ``v`` (≤ 0 inside the cone)."""
    out = np.empty(len(dims))
    start = 0
    for k, d in enumerate(dims):
        out[k] = float(np.linalg.norm(v[start + 1:start + d])) - float(v[start])
        start += d
    return out


#: :meth:`BlockSubproblem.from_dense` checks ``P`` for positive semidefiniteness up to this size (a dense
#: eigenvalue computation, O(n³)); above it only its diagonal (≥ 0), the rest is the caller's to vouch for.
PSD_CHECK_MAX = 2000


def _check_dense(P, q: np.ndarray, c: float, A: sp.csr_matrix | None, l, u, lb, ub) -> None:
    """The checks of :meth:`BlockSubproblem.from_dense`: shapes, finite data, ``P ⪰ 0`` (see there)."""
    n = q.size

    def fail(what: str) -> None:
        raise InvalidInputError(f"BlockSubproblem.from_dense: {what}")

    if not np.all(np.isfinite(q)):
        fail(f"q has a non-finite entry at index {int(np.flatnonzero(~np.isfinite(q))[0])}")
    if not math.isfinite(float(c)):
        fail(f"c = {c!r} is not finite")
    if P is not None:
        if P.shape != (n, n):
            fail(f"P has shape {P.shape}, q has {n} entries: P must be {n} × {n}")
        data = P.data if sp.issparse(P) else np.asarray(P, dtype=float)
        if not np.all(np.isfinite(data)):
            fail("P has a non-finite entry")
        # the backends read one triangle of P (OSQP, Clarabel, DAQP's lower one): a P that is not symmetric is a
        # different objective to each (a review's P = [[1, 0], [2, 1]]: five backends "optimal" at a wrong point)
        asym = abs(P - P.T)
        top = float(abs(P).max()) if P.size else 0.0
        if float(asym.max() if asym.size else 0.0) > 1e-12 * top:
            fail("P is not symmetric: give the full symmetric matrix (the backends read one triangle of it; for "
                 "½xᵀMx with any M, pass P = (M + Mᵀ)/2).")
        diagonal = P.diagonal()
        if np.any(diagonal < 0):  # necessary for P ⪰ 0 at any size
            i = int(np.flatnonzero(diagonal < 0)[0])
            fail(f"P[{i}, {i}] = {float(diagonal[i]):.6g} < 0: the objective ½xᵀPx + qᵀx is not convex. Give a "
                 "positive semidefinite P (a block subproblem must be convex).")
        if 0 < n <= PSD_CHECK_MAX:
            dense = P.toarray() if sp.issparse(P) else np.asarray(P, dtype=float)
            sym = 0.5 * dense + 0.5 * dense.T  # halved first: no overflow near the largest float
            low = float(np.linalg.eigvalsh(sym)[0])
            scale = float(np.abs(sym).max())
            if not math.isfinite(low) or low < -1e-10 * scale * n:
                fail(f"P (its symmetric part) has the eigenvalue {low:.6g} < 0: the objective ½xᵀPx + qᵀx is not "
                     "convex. Give a positive semidefinite P (a block subproblem must be convex).")
    if A is not None:
        if A.shape[1] != n:
            fail(f"A has {A.shape[1]} columns, q has {n} entries")
        if not np.all(np.isfinite(A.data)):
            fail("A has a non-finite entry")
    for name, side, size in (("l", l, None if A is None else A.shape[0]), ("u", u, None if A is None else A.shape[0]),
                             ("lb", lb, n), ("ub", ub, n)):
        if side is None:
            continue
        side = np.asarray(side, dtype=float)
        if size is None:
            fail(f"{name} is given without A")
        if side.shape != (size,):
            fail(f"{name} has shape {side.shape}, expected ({size},)")
        if np.isnan(side).any():
            fail(f"{name}[{int(np.flatnonzero(np.isnan(side))[0])}] is nan (use ±inf for a free side)")


def check_soc(n: int, soc_A, soc_b, soc_dims: Sequence[int]) -> tuple[sp.csr_matrix, np.ndarray, tuple[int, ...]]:
    """``soc_A`` as CSR, ``soc_b`` as a vector and ``soc_dims`` as a tuple, checked against each other and ``n``.

    Raises
    ------
    InvalidInputError
        When a dimension is below 1, or the rows of ``soc_A``/``soc_b`` do not add up to ``Σ soc_dims``,
        or ``soc_A`` does not have ``n`` columns.
    """
    dims = tuple(int(d) for d in soc_dims)
    if any(d < 1 for d in dims):
        raise InvalidInputError(f"soc_dims={dims!r}: every second-order cone needs at least 1 row (t); "
                                "pass one positive size per cone")
    if soc_A is None or soc_b is None:
        raise InvalidInputError(f"soc_dims={dims!r} given without soc_A/soc_b; pass the cones' stacked rows "
                                "(see multiconvex.subproblem.soc_rows)")
    A = sp.csr_matrix(soc_A, dtype=float)
    b = np.asarray(soc_b, dtype=float).ravel()
    rows = sum(dims)
    if A.shape != (rows, n) or b.size != rows:
        raise InvalidInputError(f"soc_A has shape {A.shape} and soc_b {b.size} entries, but soc_dims={dims!r} "
                                f"needs ({rows}, {n}) and {rows}: one row per cone entry, one column per variable")
    return A, b, dims


def _summed_gram(k: int, parts: list[tuple[float, np.ndarray | None]]) -> np.ndarray:
    """``Σ scale · M`` over ``parts`` (``None``: the ``k × k`` identity, added on the diagonal), summed in order
    from zero.

    The common sum of a factor block, ``M + s·I`` (a Gram matrix and a ridge term), is one addition of the cached
    ``s·I``: the same numbers bit for bit (``0 + M`` is ``M`` but for the sign of a zero, which ``M + 0`` drops the
    same way, and a sum that starts from ``+0`` never holds ``−0``, so adding the zeros off the diagonal changes
    nothing)."""
    first = parts[0][1] if len(parts) == 2 and parts[0][0] == 1.0 and parts[1][1] is None else None
    if first is not None and first.shape == (k, k):
        return np.add(first, _scaled_identity(k, float(parts[1][0])))
    G = np.zeros((k, k))
    diagonal = G.ravel()[:: k + 1]  # a view: G is C-contiguous
    for scale, M in parts:
        if M is None:
            diagonal += scale
        else:
            G += scale * M
    return G


_SCALED_IDENTITY: dict[tuple[int, float], np.ndarray] = {}


def _scaled_identity(k: int, scale: float) -> np.ndarray:
    """``scale · I`` (``k × k``, read-only), made once per ``(k, scale)`` (a block's ridge weight is the same at every
    step); at most 64 kept."""
    key = (k, scale)
    hit = _SCALED_IDENTITY.get(key)
    if hit is None:
        if len(_SCALED_IDENTITY) >= 64:
            _SCALED_IDENTITY.clear()
        hit = np.zeros((k, k))
        hit.ravel()[:: k + 1] = scale
        hit.flags.writeable = False
        _SCALED_IDENTITY[key] = hit
    return hit


def _lxr(left: np.ndarray | None, X: np.ndarray, right: np.ndarray | None, *, transpose: bool) -> np.ndarray:
    """``left @ X @ right.T`` (or ``left.T @ X @ right`` with ``transpose``); ``None`` is identity."""
    if left is not None:
        X = (left.T if transpose else left) @ X
    if right is not None:
        X = X @ (right if transpose else right.T)
    return X
