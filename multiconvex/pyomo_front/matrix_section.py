"""A block's subproblem cut from the compiled model: a :class:`BlockSubproblem` per point, by numpy.

For a block with own variables ``x`` (its free variables plus the auxiliary variables free
in it) every monomial of the compiled model splits into a part in ``x`` and a product of
the other variables' values. Which monomial lands where in ``P``, ``q``, ``c``, ``A``,
``l``, ``u`` is worked out once, here; at each point only the products change:

* a weighted square ``w (r(x))²`` whose residual is affine in ``x`` becomes a row of a
  sparse residual matrix ``R`` and an entry of ``b``: ``P += 2RᵀWR``, ``q += 2RᵀWb``,
  ``c += bᵀWb`` (the Gram matrix, never one auxiliary variable per residual);
* remainder monomials of degree 0, 1, 2 in ``x`` add to ``c``, ``q``, ``P``;
* constraints affine in ``x`` become rows of ``A``; each ReLU relation touching ``x``
  becomes ``out − s·z(x) = 0`` (when its output is in ``x``) and ``(2s − 1) z(x) ≥ 0``
  with ``s`` the piece: the same rows the Pyomo sub-model holds through mutable parameters.

A block that is not a QP in its own variables (a degree above 2, a constraint that is not
affine in it, a term that is not a polynomial) raises :class:`NotQuadraticProgram` at
build time and is solved through Pyomo instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from ..pieces import on_boundary
from ..subproblem import BlockSubproblem, KronTerm, make_slots
from .compiled import CompiledModel
from .polynomial import MonomialTable, Poly, extend, products


class NotQuadraticProgram(Exception):
    """The block's subproblem is not a QP in its own variables (the reason is the message)."""


@dataclass
class _Split:
    """Monomials of a table selected for one block: own slots, the other factors, coefficients."""

    rows: np.ndarray  # polynomial each monomial belongs to
    coef: np.ndarray
    other: np.ndarray  # positions of the other factors (padded), trimmed to the widest
    slots: np.ndarray  # own slots, sorted, (N, degree)

    def __post_init__(self) -> None:
        self._columns = [np.ascontiguousarray(col) for col in self.other.T]

    def values(self, xe: np.ndarray) -> np.ndarray:
        return products(self.coef, self._columns, xe)



def _affine_rows(t, selected: np.ndarray, slot_of: np.ndarray, names, message: str):
    """The rows ``selected`` of table ``t`` split into their part linear in the block and their constant
    part (with each part's row numbers among ``selected``); a row of degree > 1 in the block is refused."""
    local = np.full(t.n_rows, -1, dtype=np.int64)
    local[selected] = np.arange(selected.size)
    sel = local[t.row] >= 0
    deg = (slot_of[t.vars] >= 0).sum(axis=1)
    bad = sel & (deg > 1)
    if bad.any():
        raise NotQuadraticProgram(message.format(names[t.row[bad][0]]))
    lin = _split(t, slot_of, sel & (deg == 1), 1)
    const = _split(t, slot_of, sel & (deg == 0), 0)
    return lin, const, local[lin.rows], local[const.rows]

def _split(table: MonomialTable, slot_of: np.ndarray, select: np.ndarray, degree: int) -> _Split:
    vars_ = table.vars[select]
    S = slot_of[vars_]
    own = S >= 0
    other = np.sort(np.where(own, table.pad, vars_), axis=1)
    keep = (other != table.pad).any(axis=0)
    if S.shape[1] < degree:  # no monomial of that degree
        slots = np.zeros((len(S), degree), dtype=np.int64)
    else:
        slots = np.sort(S, axis=1)[:, S.shape[1] - degree:]
    return _Split(table.row[select], table.coef[select], other[:, keep], slots)


class _Pattern:
    """A fixed sparsity pattern: entries ``(row, col)`` (with repeats) summed into CSR data by one bincount."""

    def __init__(self, rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]):
        self.shape = shape
        key = rows.astype(np.int64) * shape[1] + cols
        uniq, self.pos = np.unique(key, return_inverse=True)
        self.rows, self.cols = uniq // shape[1], uniq % shape[1]
        self.indptr = np.concatenate([[0], np.cumsum(np.bincount(self.rows, minlength=shape[0]))])
        self.nnz = int(uniq.size)

    def data(self, values: np.ndarray) -> np.ndarray:
        return np.bincount(self.pos, values, minlength=self.nnz)

    def csr(self, data: np.ndarray) -> sp.csr_matrix:
        return sp.csr_matrix((data, self.cols, self.indptr), shape=self.shape)

    def csr_transposed(self, data: np.ndarray) -> sp.csr_matrix:
        """The transpose, as CSR (no conversion at each point: its order is worked out once)."""
        if not hasattr(self, "_t_order"):
            self._t_order = np.lexsort((self.rows, self.cols))
            self._t_indices = self.rows[self._t_order]
            self._t_indptr = np.concatenate([[0], np.cumsum(np.bincount(self.cols, minlength=self.shape[1]))])
        return sp.csr_matrix((data[self._t_order], self._t_indices, self._t_indptr),
                             shape=(self.shape[1], self.shape[0]))


class MatrixCrossSection:
    """One block's subproblem as a value, rebuilt from the compiled tables at each point.

    Parameters
    ----------
    name : the block's name.
    model : the compiled model.
    own : flat positions of the subproblem's variables (the block's first, ``n_block`` of them).
    lower, upper : their bounds (±inf where none).

    Raises
    ------
    NotQuadraticProgram
        The subproblem is not a QP in ``own`` (solve the block through Pyomo).
    """

    def __init__(self, name: str, model: CompiledModel, own: np.ndarray, n_block: int, lower: np.ndarray,
                 upper: np.ndarray):
        self.name = name
        self.model = model
        self.opaque_constant = 0.0  # the non-polynomial terms' value at the prepared point (other blocks only)
        own = np.asarray(own, dtype=np.int64)
        own_set = set(own.tolist())
        for op in model.opaque:
            if op.positions & own_set:
                raise NotQuadraticProgram(f"the objective term `{_short(op.expr)}` is not a polynomial in the block")
        self.n = n = int(own.size)
        self._build(own)
        #: ``own[order]`` is the subproblem's variable order: ``own`` as given, or the order in which ``P`` is
        #: ``kron(G, I)`` (each of ``m`` groups of ``k`` variables has the same ``k × k`` curvature, as the rows
        #: of a factor in a least-squares factorization): then one small factorisation solves the block
        self.order = np.arange(n)
        self.kron: tuple[int, int] | None = None
        order = self._kron_order()
        if order is not None:
            self.order = order
            self.kron = (n // int(self._k), int(self._k))
            self._build(own[order])
        self.positions = own[self.order]
        self.block_slots = np.flatnonzero(self.order < n_block)  # the block's own variables (the prox term's)
        self.lb = None if np.all(np.isneginf(lower)) else np.asarray(lower, dtype=float)[self.order]
        self.ub = None if np.all(np.isposinf(upper)) else np.asarray(upper, dtype=float)[self.order]
        self.slots = make_slots([("x", self.kron if self.kron else (n,))])
        self._prox = _Pattern(self.block_slots, self.block_slots, (n, n))
        self.sub: BlockSubproblem | None = None
        self.P_obj = None
        self.x0 = np.zeros(n)
        self.rho = 0.0
        self.anchor = np.zeros(self.block_slots.size)

    def _build(self, own: np.ndarray) -> None:
        model, n = self.model, self.n
        slot_of = self.slot_of = np.full(model.n_vars + 1, -1, dtype=np.int64)
        slot_of[own] = np.arange(n)
        own_set = set(own.tolist())
        self._build_squares(slot_of)
        self._build_remainder(slot_of)
        # the constraints and relations the subproblem holds: those that touch its variables
        t = model.constraints
        constraints = set(t.row[(slot_of[t.vars] >= 0).any(axis=1)].tolist())
        constraints |= {r for r, op in model.constraint_opaque.items() if op.positions & own_set}
        t = model.relations
        relations = set(t.row[(slot_of[t.vars] >= 0).any(axis=1)].tolist())
        relations |= set(np.flatnonzero(slot_of[model.outputs] >= 0).tolist())
        relations |= {k for k, op in model.relation_opaque.items() if op.positions & own_set}
        self._build_rows(slot_of, np.array(sorted(constraints), dtype=np.int64),
                         np.array(sorted(relations), dtype=np.int64))

    def _kron_order(self) -> np.ndarray | None:
        """An order of the variables in which ``P``'s pattern is ``kron(dense k×k, I_m)``, if there is one: the
        pattern splits into ``m ≥ 2`` connected groups of the same size ``k`` (values are checked at each point)."""
        n = self.n
        if n < 2 or not self._R.nnz:
            return None
        Rb = self._R.csr(np.ones(self._R.nnz))
        pattern = (Rb.T @ Rb) + self._Prem.csr(np.ones(self._Prem.nnz))
        n_groups, labels = connected_components(pattern, directed=False)
        sizes = np.bincount(labels)
        if n_groups < 2 or np.any(sizes != sizes[0]):
            return None
        self._k = int(sizes[0])
        # groups numbered by their first variable, each listed in the given order: slot a·m + i is member a of group i
        first = np.full(n_groups, n)
        np.minimum.at(first, labels, np.arange(n))
        rank = np.argsort(np.argsort(first))
        members = np.lexsort((np.arange(n), rank[labels])).reshape(n_groups, self._k)
        return members.T.ravel()

    # -- build ----------------------------------------------------------------------------------
    def _build_squares(self, slot_of: np.ndarray) -> None:
        t, n = self.model.squares, self.n
        deg = (slot_of[t.vars] >= 0).sum(axis=1)
        if np.any(deg > 1):
            raise NotQuadraticProgram("a square in the objective has degree above 2 in the block")
        active = np.unique(t.row[deg == 1])
        local = np.full(t.n_rows, -1, dtype=np.int64)
        local[active] = np.arange(active.size)
        in_active = local[t.row] >= 0
        self._lin = _split(t, slot_of, deg == 1, 1)
        self._R = _Pattern(local[self._lin.rows], self._lin.slots[:, 0], (active.size, n))
        self._Rw = self.model.weights[active][self._R.rows]
        self._w_active = self.model.weights[active]
        self._const = _split(t, slot_of, (deg == 0) & in_active, 0)
        self._const_rows = local[self._const.rows]
        passive = ~in_active
        prow = np.unique(t.row[passive])
        plocal = np.full(t.n_rows, -1, dtype=np.int64)
        plocal[prow] = np.arange(prow.size)
        self._passive = _split(t, slot_of, passive, 0)
        self._passive_rows = plocal[self._passive.rows]
        self._w_passive = self.model.weights[prow]

    def _build_remainder(self, slot_of: np.ndarray) -> None:
        t, n = self.model.remainder, self.n
        deg = (slot_of[t.vars] >= 0).sum(axis=1)
        if np.any(deg > 2):
            raise NotQuadraticProgram("an objective term has degree above 2 in the block")
        self._rem = [_split(t, slot_of, deg == d, d) for d in range(3)]
        s = self._rem[2].slots
        # x_i x_j (i != j) adds to P[i, j] and P[j, i]; x_i² adds 2 to P[i, i]
        self._Prem = _Pattern(np.concatenate([s[:, 0], s[:, 1]]), np.concatenate([s[:, 1], s[:, 0]]), (n, n))
        #: the curvature that depends on the other blocks' values (squares with w > 0 never lose convexity)
        self.curvature_moves = bool(self._rem[2].other.shape[1])

    def _build_rows(self, slot_of: np.ndarray, constraints: np.ndarray, relations: np.ndarray) -> None:
        model, n = self.model, self.n
        for r in constraints:
            if int(r) in model.constraint_opaque:
                raise NotQuadraticProgram(f"constraint {model.constraint_names[r]} is not a polynomial")
        for k in relations:
            if int(k) in model.relation_opaque:
                raise NotQuadraticProgram(f"the input of {model.relation_names[k]} is not a polynomial")
        # constraints: rows in the order given
        self._con_lin, self._con_const, self._con_lin_rows, self._con_const_rows = _affine_rows(
            model.constraints, constraints, slot_of, model.constraint_names, "constraint {} is not affine in the block")
        self._con_lower, self._con_upper = model.con_lower[constraints], model.con_upper[constraints]
        mc = int(constraints.size)
        # relations: an equality row where the output is own, a side row where the input moves with x
        self._z_lin, self._z_const, self._z_lin_rows, self._z_const_rows = _affine_rows(
            model.relations, relations, slot_of, model.relation_names, "the input of {} is not affine in the block")
        self.n_relations = nr = int(relations.size)
        out_slot = slot_of[model.outputs[relations]]
        eq_rel = np.flatnonzero(out_slot >= 0)
        eq_row = np.full(nr, -1, dtype=np.int64)
        eq_row[eq_rel] = mc + np.arange(eq_rel.size)
        side_rel = np.unique(self._z_lin_rows)
        side_row = np.full(nr, -1, dtype=np.int64)
        side_row[side_rel] = mc + eq_rel.size + np.arange(side_rel.size)
        self._eq_rel, self._side_rel = eq_rel, side_rel
        z_eq = eq_row[self._z_lin_rows] >= 0
        self._z_eq = z_eq
        m = mc + eq_rel.size + side_rel.size
        rows = np.concatenate([self._con_lin_rows, eq_row[eq_rel], eq_row[self._z_lin_rows[z_eq]],
                               side_row[self._z_lin_rows]])
        cols = np.concatenate([self._con_lin.slots[:, 0], out_slot[eq_rel], self._z_lin.slots[z_eq, 0],
                               self._z_lin.slots[:, 0]])
        self.m = m
        self._A = _Pattern(rows, cols, (m, n)) if m else None

    # -- per point ------------------------------------------------------------------------------
    def set_point(self, x: np.ndarray, *, prox: float = 0.0, flip_boundary: bool = False,
                  constant: float = 0.0) -> bool:
        """Build the subproblem at the flat point ``x``; return whether the piece has boundary units.

        ``constant`` is the value of the objective's terms that are not polynomials (they hold
        none of the block's variables), so that the subproblem's value is the objective's.
        """
        xe = extend(x)
        n = self.n
        self.x0 = x[self.positions]
        # squares: residuals R x + b
        Rdata = self._R.data(self._lin.values(xe))
        b = np.bincount(self._const_rows, self._const.values(xe), minlength=self._R.shape[0])
        wb = self._w_active * b
        c = float((wb * b).sum())  # not BLAS: a threaded ddot costs ms on a loaded machine
        q = np.zeros(n)
        P = None
        if self._R.nnz:
            Rt = self._R.csr_transposed(Rdata)
            P = Rt @ self._R.csr(2.0 * Rdata * self._Rw)
            q += 2.0 * (Rt @ wb)
        if self._passive.rows.size:
            r = np.bincount(self._passive_rows, self._passive.values(xe), minlength=self._w_passive.size)
            c += float((self._w_passive * r * r).sum())
        # remainder
        c += float(self._rem[0].values(xe).sum())
        if self._rem[1].rows.size:
            q += np.bincount(self._rem[1].slots[:, 0], self._rem[1].values(xe), minlength=n)
        self.P_rem = None
        if self._Prem.nnz:
            v = self._rem[2].values(xe)
            self.P_rem = self._Prem.csr(self._Prem.data(np.concatenate([v, v])))
            P = self.P_rem if P is None else P + self.P_rem
        self.P_obj = P
        # proximal term
        self.rho = float(prox)
        if prox:
            self.anchor = self.x0[self.block_slots].copy()
            Pp = self._prox.csr(np.full(self.block_slots.size, self.rho))
            P = Pp if P is None else P + Pp
            q[self.block_slots] -= self.rho * self.anchor
            c += 0.5 * self.rho * float((self.anchor * self.anchor).sum())
        c += constant
        edge = False
        A = l = u = None
        if self.m:
            z = np.bincount(self._z_const_rows, self._z_const.values(xe), minlength=self.n_relations)
            zlin = self._z_lin.values(xe)
            z_now = z + np.bincount(self._z_lin_rows, zlin * self.x0[self._z_lin.slots[:, 0]],
                                    minlength=self.n_relations)
            on_edge = on_boundary(z_now)
            s = (z_now >= 0).astype(float)
            if flip_boundary:
                s = np.where(on_edge, 1.0 - s, s)
            edge = bool(on_edge.any())
            sign = 2.0 * s - 1.0
            data = np.concatenate([self._con_lin.values(xe), np.ones(self._eq_rel.size),
                                   -s[self._z_lin_rows[self._z_eq]] * zlin[self._z_eq],
                                   sign[self._z_lin_rows] * zlin])
            A = self._A.csr(self._A.data(data))
            d = np.bincount(self._con_const_rows, self._con_const.values(xe), minlength=self._con_lower.size)
            eq = s[self._eq_rel] * z[self._eq_rel]
            side = sign[self._side_rel] * z[self._side_rel]
            l = np.concatenate([self._con_lower - d, eq, -side])
            u = np.concatenate([self._con_upper - d, eq, np.full(side.size, np.inf)])
        quad = []
        if P is not None and self.kron is not None:
            G = self._shared_gram(P)
            if G is not None:
                quad, P = [KronTerm(0, 0, None, G)], None
        self.sub = BlockSubproblem(self.slots, quad, q, c, P_extra=P, A=A, l=l, u=u, lb=self.lb, ub=self.ub)
        return edge

    def _shared_gram(self, P: sp.spmatrix) -> np.ndarray | None:
        """``G`` when ``P == kron(G, I_m)`` in the kron order (to rounding), else ``None``."""
        m, k = self.kron
        P = sp.coo_matrix(P)
        group = P.row % m
        if np.any(P.col % m != group):
            return None
        G = np.zeros((m, k, k))
        np.add.at(G, (group, P.row // m, P.col // m), P.data)
        G0 = G[0]
        if np.abs(G - G0).max() > 1e-12 * max(1.0, float(np.abs(G0).max())):
            return None
        return G0

    # -- convexity ------------------------------------------------------------------------------
    def moving_curvature_is_convex(self) -> bool:
        """Whether the part of ``P`` that is not a sum of squares is PSD at the current point."""
        if self.P_rem is None:
            return True
        return _psd_sparse(self.P_rem)

    def curvature_is_convex(self) -> bool:
        """Whether the whole ``P`` (without prox) is PSD at the current point."""
        return self.P_obj is None or _psd_sparse(self.P_obj)


def term_curvature(poly: Poly, slot_of: np.ndarray, x: np.ndarray) -> np.ndarray | None:
    """Half the Hessian in the block's variables of one polynomial term at the flat point ``x``
    (``None`` when its degree in them exceeds 2); the error path names the term with it."""
    n = int(slot_of.max(initial=-1)) + 1
    Q = np.zeros((n, n))
    for key, coef in poly.items():
        own = [int(slot_of[v]) for v in key if slot_of[v] >= 0]
        if len(own) > 2:
            return None
        if len(own) == 2:
            other = float(np.prod([x[v] for v in key if slot_of[v] < 0]))
            i, j = own
            Q[i, j] += coef * other / 2
            Q[j, i] += coef * other / 2
    return Q


def psd(Q: np.ndarray) -> bool:
    """PSD up to a relative tolerance (the matrix blocks' check and the Pyomo sub-models')."""
    if not np.any(Q):
        return True
    ev = np.linalg.eigvalsh(Q)
    return bool(ev.min() >= -1e-9 * max(1.0, float(np.abs(ev).max())))


def _psd_sparse(P) -> bool:
    """PSD test of a symmetric sparse matrix on the rows and columns it uses (eigenvalues, relative tolerance)."""
    P = sp.coo_matrix(P)
    P.sum_duplicates()
    if np.all(P.row == P.col):  # diagonal: its entries are its eigenvalues
        return psd(np.diag(P.data))
    used = np.unique(np.concatenate([P.row, P.col]))
    return psd(sp.csr_matrix(P)[used][:, used].toarray())


def _short(obj, n: int = 160) -> str:
    s = str(obj)
    return s if len(s) <= n else s[: n - 3] + "..."


__all__ = ["MatrixCrossSection", "NotQuadraticProgram", "term_curvature", "psd"]
