"""A unit block's gap over *every* piece adjacent to a point: one-sided slopes at the kinks and a proven bound.

A unit block ``θ ∈ R^c`` (unit ``u`` of hidden layer ``k``: its weight row with its bias) moves each sample's data
loss only through the scalar ``t_i = ã_iᵀd`` (``ã_i`` the unit's inputs with a 1, ``d = θ − θ⁰``). When ``k ≥ 2``
samples sit on a kink that depends on the block (the unit's own ``z_iu ≈ 0``, or a later hidden unit's ``z_ij ≈ 0``
that the block moves), the point lies in up to ``2^k`` pieces of the block, and the certificate's two exact solves
(the own piece and the neighbouring piece with every boundary unit flipped) check two of them. This module bounds
the gap over all of them.

**The bound.** Forward-mode through the layers after ``k`` on each side of ``t_i = 0`` (on the side ``t > 0`` a
boundary entry's side is the sign of its own ``δz``, nested entries included) gives each sample's output slopes
``v_i⁺``, ``v_i⁻``, hence its one-sided slopes ``c_i^± = ∇ℓ(f_i)ᵀv_i^±/N`` and curvatures ``m_i⁺``, ``m_i⁻ ≥ 0``
(:mod:`multiconvex.nets.adjacent_terms`). On a piece ``σ`` containing the point, every boundary sample keeps one
side (``σ_i t_i ≥ 0``) and its loss is ``ℓ(f_i + v_i^{σ_i} t_i)/N``, convex in ``t_i`` (a convex loss of an affine
map). Squared loss is exactly quadratic there: ``ℓ(f_i) + c_i^{σ_i}t_i + ½m_i^{σ_i}t_i²`` with ``m = ‖v‖²/N``
(``∇ℓ(f) = f − y``). For a logistic or softmax loss the gradient inequality gives ``ℓ(f_i + v t) ≥ ℓ(f_i) +
∇ℓ(f_i)ᵀv t``: the same model with ``m_i = 0``, the only curvature valid for every step of a general convex loss
(its second derivative along a ray falls to 0 far out), so ``P = λI`` (this first-order bound is ``½‖r‖²/λ``:
the smaller the weight decay, the looser; where it is above the tolerance, :mod:`~multiconvex.nets.adjacent_smooth`
takes each one-piece sample's tangent at a trial step instead of at the point, which makes the bound exact at the
minimum of a block without kinks whatever ``λ``, and tighter with them). Either way, for any ``α`` with
``α_i ≤ c_i⁺`` where ``σ_i = +`` and ``α_i ≥ c_i⁻`` where ``σ_i = −``::

    F_σ(θ⁰ + d) ≥ F(θ⁰) + rᵀd + ½ dᵀP d ≥ F(θ⁰) − ½ rᵀP⁻¹r,    r = g + Σ_{i∈B} α_i ã_i,

with ``g = λθ⁰ + Σ_{i∉B} c_i ã_i`` and ``P = λI + Σ_{i∉B} m_i ã_iã_iᵀ + Σ_{i∈B} min(m_i⁺, m_i⁻) ã_iã_iᵀ``. A convex
kink (``c_i⁻ ≤ c_i⁺``) takes ``α_i ∈ [c_i⁻, c_i⁺]``, which serves both sides; the ``K`` concave kinks
(``c_i⁻ > c_i⁺``) are enumerated side by side (``2^K`` bounded least-squares problems on ``L⁻¹[ã_i]``, ``L`` the
Cholesky factor of ``P``) up to :data:`MAX_CONCAVE`; above it one ``α`` with each concave ``α_i`` at its interval's
midpoint, plus the triangle-inequality term ``Σ_i ½(c_i⁻ − c_i⁺) ‖L⁻¹ã_i‖``. Any ``α`` in the box gives a valid
bound (the bounded least squares only make it tight), so the value is evaluated at the ``α`` found, clipped to its
box. Then ``max_σ (F(θ⁰) − min F_σ) ≤ bound``. A first, cheap bound takes one ``α`` (least squares clipped to the
box, concave kinks at their midpoints, plus the triangle term); a caller that only asks whether the gap is ``≤ tol``
gets it when it is (:meth:`UnitKinks.bound`). The bounded least squares run BVLS, and L-BFGS-B from its point as
well when BVLS ends above ``tol`` (BVLS can stop far from the optimum when there are more kinks than weights).

**What a positive bound means.** With the sides enumerated and each bounded least squares at its optimum, the bound
is ``−min`` of the lower model ``gᵀd + Σ_i ψ_i(t_i) + ½dᵀPd`` over the worst side's cone (its dual; ``ψ_i(t)`` is
``max(c_i⁺t, c_i⁻t)`` at a convex kink, ``c_i^{σ_i} t`` at a concave one), whose piecewise-linear part is the
one-sided derivative ``F'(θ⁰; d)``. So the bound is 0 exactly when no step along the block has a negative one-sided
derivative (a first-order local minimum along the block over every adjacent piece), and a positive bound comes with
the direction ``d* = −P⁻¹r*`` (:attr:`AdjacentBound.direction`) along which ``F'(θ⁰; d*) = −2·bound``: ``F`` falls
along the block (``tests/test_nets_adjacent.py`` and ``tests/test_nets_adjacent_smooth.py`` check both; with a
smooth loss the piecewise-linear part is the same one-sided derivative, ``∇ℓ`` being continuous, and the statement is
about the first-order bound, :attr:`AdjacentBound.first_order`, which the refinement may lower).

**Singular P.** With weight decay 0 (a dead unit, say) ``P`` can be singular; then a side's lower model is bounded
below only where ``Nᵀr = 0`` (``N`` the null space of ``P``), its minimum ``−½ rᵀP⁺r``. The bounded least squares
then weigh the null rows heavily; a side where ``Nᵀr`` stays above rounding has the bound ``inf`` (the model falls
without bound; the form reports ``F`` instead, as no block lowers ``F ≥ 0`` by more), never ``nan``.

**Entries off their kink.** Boundary entries are those within the boundary tolerance (``|z| ≤ BOUNDARY_TOL ·
max(1, max|z|)`` per layer, as :meth:`multiconvex.nets.piece_context.PieceContext.tol`). The model is built as if
they were exactly on their kink; a piece that flips an entry at ``0 < |z| ≤ tol`` is that piece's affine map
extended to the point, whose output differs from ``f`` by at most ``D_i``
(:func:`~multiconvex.nets.adjacent_terms.off_kink_terms`). So each such sample of a squared loss adds
``E_i = ‖f_i − y_i‖D_i/N`` to the bound (:attr:`UnitKinks.slack`) and narrows its slopes by ``κ_i = G D_i/N`` (``G``
bounds ``‖∂f/∂t‖``): the bound alone is a proof over the pieces defined by the true ``z``.
(The certificate's neighbouring-piece solve flips the entries within the tolerance as if on their kink and does
not pay this term; where this module answers ``None`` the two-piece claim, with that approximation, stands.)
For a logistic or softmax loss the gradient inequality at ``f_i`` pays the offset alone: ``E_i = ‖∇ℓ(f_i)‖D_i/N``
and ``κ_i = 0`` (:func:`multiconvex.nets.adjacent_terms.off_kink_terms`).

**Walls.** The model's minimum is over every step of the block; the pieces end at walls, and those of the samples
whose boundary entries the block does not move are the same on every adjacent piece. Where the bound is still above
the tolerance and such a wall is near the model's minimiser, :mod:`multiconvex.nets.adjacent_walls` takes them in by
their Lagrange multipliers (``gap ≤ eᵀν + bound(g + Wᵀν)`` for every ``ν ≥ 0``), which lowers ``bound`` only.

Leaky ReLU: the dead side has the negative slope. Unit blocks of every loss (squared, logistic, softmax); layer
blocks keep the two-piece claim (no bound).

Examples
--------
>>> import torch
>>> from multiconvex.nets import Architecture, forward, init_params
>>> arch = Architecture((2, 3, 1))
>>> params = init_params(arch, 0, torch.device("cpu"))
>>> X = torch.randn(20, 2, dtype=torch.float64); T = torch.randn(20, 1, dtype=torch.float64)
>>> _, pre, inputs = forward(arch, params, X)
>>> [b.bound for b in adjacent_bounds(arch, params, T, 0, pre, inputs, 1e-3)]  # no sample on a kink
[None, None, None]
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg
import torch

from ..errors import InvalidInputError
from ..solvers.dispatch import on_one_blas_thread
from .adjacent_lsq import box_residual, finite_or_nan, least_squares_solver, model_direction, side_boxes
from .adjacent_smooth import MAX_WORK, SmoothSamples, refine, refined_bound
from .adjacent_terms import keeps_curvature, loss_gradient, off_kink_terms
from .adjacent_walls import MAX_KINKS, Walls, own_piece_walls, walled_bound
from .network import LOSSES, Architecture, Params
from .piece_context import abs_stats, piece_sign, with_ones
from .torch_threads import one_torch_thread

#: Up to this many concave kinks in one block the bound enumerates their ``2^K`` sides (each a small bounded least
#: squares); above it, the midpoint-plus-triangle bound.
MAX_CONCAVE = 6

#: Up to this many concave kinks a smooth block's refinement is also run per side (``2^K`` refinements), where one
#: trial step for every side stays above the tolerance.
PER_SIDE_CONCAVE = 3

#: Largest number of entries of one chunk's Jacobians (samples × later units × units).
CHUNK_ENTRIES = 262_144


def _above(value: float, tol: float | None) -> bool:
    """Whether a bound ``value`` leaves the gap undecided: above ``tol``, or above 0 without one."""
    return value > (tol if tol is not None else 0.0)


@dataclass
class AdjacentBound:
    """What :func:`adjacent_bounds` found for one unit block.

    Attributes
    ----------
    bound : float or None
        An upper bound of the block's gap ``F(θ⁰) − min F_σ`` over every piece ``σ`` containing the point; ``inf``
        when a piece's lower model is unbounded below (``P`` singular and ``Nᵀr ≠ 0``); ``nan`` when it could not be
        computed (no finite bounded least squares); ``None`` when the adjacent pieces are exactly the
        two the certificate solves (no sample on a kink that depends on the block, or one such sample whose two
        sides are the own piece and the neighbouring piece).
    n_kinks : int
        Samples where the block's loss has a kink (``c⁺ ≠ c⁻`` or ``m⁺ ≠ m⁻``).
    n_concave : int
        Of those, the samples with ``c⁻ > c⁺`` (each doubles the pieces the bound enumerates).
    exact : bool
        Whether the concave sides were enumerated (``n_concave ≤ MAX_CONCAVE``) rather than bounded by the triangle
        inequality.
    direction : numpy array (c,) or None
        ``−P⁻¹r`` of the worst enumerated piece: the step that attains the first-order bound on that piece's lower
        model (along it ``F'(θ⁰; d) = −2·first_order`` when ``exact``).
    first_order : float or None
        The bound of the lower model with every smooth sample taken by its tangent at the point (the module
        docstring's model). ``bound`` is that value, or below it where the conjugate refinement of a logistic or
        softmax block (:mod:`multiconvex.nets.adjacent_smooth`) or the walls that every adjacent piece shares
        (:mod:`multiconvex.nets.adjacent_walls`) found a smaller valid bound.
    """

    bound: float | None
    n_kinks: int = 0
    n_concave: int = 0
    exact: bool = True
    direction: np.ndarray | None = None
    first_order: float | None = None


def _jacobians(arch: Architecture, params: Params, pre: list[torch.Tensor], k: int, units: torch.Tensor,
               rows: torch.Tensor | slice, side: int, tols: list[float], checks: bool = False):
    """Forward-mode ``δf`` (n, n_out, g) of the units ``units`` of layer ``k`` at the samples ``rows``, per unit step
    ``δτ = 1`` on the side ``side`` (``+1``: ``t > 0``, ``−1``: ``t < 0``, ``0``: the point's own piece, ``δz = 1``).

    On a side, a boundary entry (``|z| ≤ tol``) takes the side of its own ``δz`` (the unit's own entry the side
    itself); an entry with ``δz = 0`` keeps the point's side (it does not move, so its slope multiplies 0). With
    ``checks``, also returns per (sample, unit): whether a later boundary entry moves (``δz ≠ 0``), whether every
    moving boundary entry's side agrees with the point's own piece, and whether it agrees with the flipped piece.
    """
    z0 = pre[k][rows][:, units]  # (n, g)
    own = piece_sign(z0)
    on_kink = z0.abs() <= tols[k]
    s = own if side == 0 else torch.where(on_kink, torch.full_like(own, float(side)), own)
    step = 1.0 if side == 0 else float(side)
    V = params[k + 1][0][:, units][None, :, :] * (arch.slope(0.5 * (s + 1)) * step)[:, None, :]
    moves = torch.zeros_like(on_kink)
    agree_own = ~on_kink | (own == step)  # the own entry moves by `step`
    agree_flip = ~on_kink | (-own == step)
    for j in range(k + 1, arch.n_layers - 1):
        zj = pre[j][rows]  # (n, n_j)
        sj = piece_sign(zj)[:, :, None]
        bj = (zj.abs() <= tols[j])[:, :, None]
        if side == 0:
            slope = arch.slope(0.5 * (sj + 1))
        else:
            sv = torch.where(bj & (V != 0), torch.sign(V), sj)
            slope = arch.slope(0.5 * (sv + 1))
            if checks:
                moving = bj & (V != 0)
                moves |= moving.any(dim=1)
                agree_own &= ~(moving & (torch.sign(V) != sj)).any(dim=1)
                agree_flip &= ~(moving & (torch.sign(V) != -sj)).any(dim=1)
        V = torch.matmul(params[j + 1][0], slope * V)
    if checks:
        return V, moves, agree_own, agree_flip
    return V


@dataclass
class UnitKinks:
    """One unit block's lower model at a point: ``F(θ⁰ + d) ≥ F(θ⁰) + (g + Σ_i α_i a_i)ᵀd + ½ dᵀP d`` on every
    piece containing the point, for the ``α`` its sides allow (module docstring).

    Attributes
    ----------
    P : (c, c)
        ``λI`` plus the curvature of every sample (the smaller side's at a kink).
    g : (c,)
        ``λθ⁰`` plus the slopes of the samples that have one slope on both sides.
    a : (K, c)
        The inputs ``ã_i`` of the samples whose slopes differ (``cplus ≠ cminus``).
    cplus, cminus : (K,)
        Their one-sided slopes ``dφ_i/dt`` at ``0+`` and ``0−``.
    n_kinks : int
        Samples where the slopes or the curvatures differ.
    slack : float
        ``Σ_i E_i``: what boundary entries off their kink (``0 < |z| ≤ tol``) can lower the loss below the
        exact-kink model (``cplus``/``cminus`` already narrowed by their ``κ_i``;
        :func:`~multiconvex.nets.adjacent_terms.off_kink_terms`).
    smooth : callable or None
        A logistic or softmax block with ``λ > 0``: builds its one-piece samples as
        :class:`~multiconvex.nets.adjacent_smooth.SmoothSamples` for the conjugate refinement (once, the first time
        a bound is above its ``tol``), or ``None`` where their Hessian would cost more than
        :data:`~multiconvex.nets.adjacent_smooth.MAX_WORK`.
    walls : callable or None
        Builds the walls that every piece containing the point shares
        (:func:`~multiconvex.nets.adjacent_walls.own_piece_walls`: the piece rows of the samples on no kink of the
        block), once, the first time a bound is still above its ``tol`` after the refinement.
    """

    P: np.ndarray
    g: np.ndarray
    a: np.ndarray
    cplus: np.ndarray
    cminus: np.ndarray
    n_kinks: int
    slack: float = 0.0
    smooth: Callable[[], SmoothSamples | None] | None = None
    walls: Callable[[], Walls | None] | None = None
    _built: tuple[SmoothSamples | None] | None = field(default=None, init=False, repr=False, compare=False)
    _kept: tuple | None = field(default=None, init=False, repr=False, compare=False)
    _walls_built: tuple[Walls | None] | None = field(default=None, init=False, repr=False, compare=False)
    _sides: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @on_one_blas_thread  # small dense algebra: BLAS threads only spin on it
    def bound(self, tol: float | None = None, max_concave: int = MAX_CONCAVE) -> AdjacentBound:
        """The bound of the lower model (:meth:`_model_bound`) plus :attr:`slack` (boundary entries off their
        kink by ``|z| ≤ tol``), then, for a smooth loss whose bound is above ``tol`` (above 0 without ``tol``), the
        conjugate refinement (:func:`~multiconvex.nets.adjacent_smooth.refined_bound`), then, still above, the walls
        that every adjacent piece shares (:func:`~multiconvex.nets.adjacent_walls.walled_bound`); the arguments as
        :meth:`_model_bound`."""
        found = self._slack_bound(self.g, tol, max_concave)
        found.first_order = found.bound
        first = found.bound
        if first is None or not math.isfinite(first) or found.direction is None or not _above(first, tol):
            return found
        found.bound, step = self._refined(self.g, first, found.direction, tol, max_concave)
        if self.walls is not None and step is not None and self.a.shape[0] <= MAX_KINKS and _above(found.bound, tol):
            if self._walls_built is None:
                self._walls_built = (self.walls(),)
            walls = self._walls_built[0]
            curvature = self._curvature()
            if walls is not None and curvature is not None:
                value_at = functools.partial(self._tight_value, tol=tol, max_concave=max_concave)
                found.bound = walled_bound(value_at, walls, curvature, self.g, found.bound, step, tol)
        return found

    def _curvature(self) -> tuple | None:
        """The Cholesky factor (as ``scipy.linalg.cho_factor`` gives it) of the model's Hessian at the point: the
        refinement's (``P`` plus the one-piece samples' curvature) where it was built, else ``P``'s (:meth:`_factors`);
        ``None`` when ``P`` is singular (weight decay 0: no walls)."""
        samples = self._built[0] if self._built is not None else None
        if samples is not None:
            return samples.H
        factors = self._factors()
        return None if factors is None else (factors[0], True)

    def _refined(self, g: np.ndarray, first: float, direction: np.ndarray, tol: float | None,
                 max_concave: int) -> tuple[float, np.ndarray | None]:
        """The conjugate refinement of a smooth loss's bound ``first`` (its direction ``direction``) at the linear
        part ``g``, per side of up to :data:`PER_SIDE_CONCAVE` concave kinks too, and the step where the refined
        model puts the block (:func:`~multiconvex.nets.adjacent_smooth.refine`); ``first`` and ``direction``
        themselves for a squared loss (its model is exact) or where the one-piece samples are not built."""
        if self.smooth is None:
            return first, direction
        if self._built is None:
            self._built = (self.smooth(),)
        samples = self._built[0]
        if samples is None:
            return first, direction
        best, step = refine(self.P, g, first, direction, samples,
                            functools.partial(self._value, max_concave=max_concave), tol)
        n_concave = int(np.count_nonzero(self.cminus > self.cplus))
        if 0 < n_concave <= PER_SIDE_CONCAVE and _above(best, tol):
            per_side = self._per_side_bound(samples, tol, max_concave, best, g)
            if per_side is not None and per_side < best:
                best = per_side
        return best, step

    def _tight_value(self, g: np.ndarray, tol: float | None, max_concave: int
                     ) -> tuple[float | None, np.ndarray | None]:
        """The bound at the linear part ``g`` (every side enumerated, then refined) and where its model puts the
        block's step: what the walls' search (:func:`~multiconvex.nets.adjacent_walls.walled_bound`) evaluates."""
        found = self._slack_bound(g, None, max_concave)
        if (found.bound is None or not math.isfinite(found.bound) or found.direction is None
                or not _above(found.bound, tol)):
            return found.bound, found.direction
        return self._refined(g, found.bound, found.direction, tol, max_concave)

    def _per_side_bound(self, samples: SmoothSamples, tol: float | None, max_concave: int,
                        best: float, g: np.ndarray) -> float | None:
        """The refinement per side of the concave kinks at the linear part ``g``: each side's model (every concave
        kink's box made one-sided, ``α_i ≤ c⁺`` on ``t ≥ 0``, ``α_i ≥ c⁻`` on ``t ≤ 0``: a convex kink with an
        infinite end) refined with its own trial steps, the largest of them the bound (every piece containing the
        point is on one side). One trial step for every side (:meth:`bound`) can sit far above (a review: 7.45–98
        against 0.013–0.45 per side, two concave kinks). ``None`` once that cannot end below ``best`` or, with
        ``tol``, is decided above it."""
        concave = np.flatnonzero(self.cminus > self.cplus)
        worst = -math.inf
        for sides in itertools.product((True, False), repeat=concave.size):
            side = self._side(concave, sides)
            model_bound = functools.partial(side._value, max_concave=max_concave)
            val, direction = model_bound(g, tol)
            if val is None or not math.isfinite(val):
                return None
            if direction is not None and _above(val, tol):
                val = refined_bound(side.P, g, val, direction, samples, model_bound, tol)
            worst = max(worst, val)
            if worst >= best or tol is not None and worst > tol:
                return None
        return worst

    def _side(self, concave: np.ndarray, sides: tuple[bool, ...]) -> UnitKinks:
        """The model on one side of the concave kinks ``concave`` (``True``: ``t ≥ 0``), kept: its factors are
        computed once however many linear parts it is asked about."""
        if sides not in self._sides:
            up = np.asarray(sides)
            cp, cm = self.cplus.copy(), self.cminus.copy()
            cm[concave[up]] = -np.inf  # t ≥ 0: α ≤ c⁺ only
            cp[concave[~up]] = np.inf  # t ≤ 0: α ≥ c⁻ only
            self._sides[sides] = dataclasses.replace(self, cplus=cp, cminus=cm, smooth=None, walls=None)
        return self._sides[sides]

    def _value(self, g: np.ndarray, tol: float | None, max_concave: int) -> tuple[float | None, np.ndarray | None]:
        """``(bound, direction)`` of :meth:`_slack_bound`: what the refinement's ``model_bound`` gives."""
        found = self._slack_bound(g, tol, max_concave)
        return found.bound, found.direction

    def _slack_bound(self, g: np.ndarray, tol: float | None, max_concave: int) -> AdjacentBound:
        """:meth:`_model_bound` with the linear part ``g`` plus :attr:`slack`."""
        if not self.slack:
            return self._model_bound(tol, max_concave, g)
        found = self._model_bound(None if tol is None else tol - self.slack, max_concave, g)
        if found.bound is not None:
            found.bound += self.slack
        return found

    def _model_bound(self, tol: float | None = None, max_concave: int = MAX_CONCAVE,
                     g: np.ndarray | None = None) -> AdjacentBound:
        """The bound: first one ``α`` (least squares clipped to the sides' boxes, each concave ``α_i`` at its
        midpoint, plus the triangle term), then, unless that is already ``≤ tol``, the bounded least squares over
        the ``2^K`` concave sides (``K ≤ max_concave``; the midpoint bound with a bounded least squares above). Both
        are valid; the smaller is returned.

        With ``tol`` the work stops as soon as the answer to ``gap ≤ tol`` is known: a side above ``tol`` ends the
        enumeration with the first bound and that side's direction (where ``F`` falls), and a triangle term above
        ``tol`` skips the bounded least squares. ``tol=None``: the tightest bound (every side). ``g``: another linear
        part (default :attr:`g`, the refinement's trial steps move it); what does not depend on it is computed once
        (:meth:`_factors`)."""
        g = self.g if g is None else g
        factors = self._factors()
        if factors is None:  # P singular (weight decay 0 and a dead unit, say): its range and null space
            return (self if g is self.g else dataclasses.replace(self, g=g))._singular_bound(tol, max_concave)
        Lc, M, solve_ls, spread = factors
        b = -scipy.linalg.solve_triangular(Lc, g, lower=True)
        cp, cm = self.cplus, self.cminus
        concave = cm > cp
        K = int(concave.sum())
        if M.shape[1] == 0:
            return AdjacentBound(0.5 * float(b @ b), self.n_kinks, 0, True, model_direction(Lc, -b))
        lo = np.where(concave, 0.5 * (cp + cm), cm)
        hi = np.where(concave, 0.5 * (cp + cm), cp)
        alpha = np.clip(solve_ls(b), lo, hi)
        r = M @ alpha - b
        cheap = finite_or_nan(0.5 * (float(np.linalg.norm(r)) + spread) ** 2)
        best = AdjacentBound(cheap, self.n_kinks, K, K == 0, model_direction(Lc, r))
        if tol is not None and cheap <= tol:
            return best
        if K > max_concave:  # the midpoint bound, its convex part by bounded least squares
            if tol is not None and 0.5 * spread ** 2 > tol:
                return best  # its triangle term alone is above tol: no α makes it ≤ tol
            r = box_residual(M, b, lo, hi, tol or 0.0)
            val = finite_or_nan(0.5 * (float(np.linalg.norm(r)) + spread) ** 2)
            return best if not val < cheap else AdjacentBound(val, self.n_kinks, K, False, model_direction(Lc, r))
        worst, worst_r = -math.inf, b
        for lo_s, hi_s in side_boxes(cp, cm, concave):
            r = box_residual(M, b, lo_s, hi_s, tol or 0.0)
            val = finite_or_nan(0.5 * float(r @ r))
            if math.isnan(val) or val > worst:
                worst, worst_r = val, r
            if math.isnan(val) or val >= cheap:
                return best  # the enumeration cannot end below the first bound
            if tol is not None and val > tol:  # above tol whatever the other sides give: the first bound, and this
                # side's direction (the one-sided derivative there is −2·val < 0: a way on for the driver)
                return AdjacentBound(cheap, self.n_kinks, K, False, model_direction(Lc, r))
        return AdjacentBound(worst, self.n_kinks, K, True, model_direction(Lc, worst_r))

    def _factors(self) -> tuple[np.ndarray, np.ndarray, Callable[[np.ndarray], np.ndarray], float] | None:
        """``(L, M, least squares, triangle term)`` of :meth:`_model_bound`, computed once: the Cholesky factor of
        ``P``, ``M = L⁻¹[ã_i]``, a solver of ``Mα ≈ b``
        (:func:`~multiconvex.nets.adjacent_lsq.least_squares_solver`) and the concave kinks' triangle term
        ``Σ ½(c⁻ − c⁺)‖M_i‖``; ``None`` when ``P`` is singular."""
        if self._kept is None:
            try:
                Lc = scipy.linalg.cholesky(self.P, lower=True)
            except np.linalg.LinAlgError:
                self._kept = (None,)
                return None
            M = (scipy.linalg.solve_triangular(Lc, self.a.T, lower=True) if self.a.shape[0]
                 else np.zeros((self.g.shape[0], 0)))
            concave = self.cminus > self.cplus
            spread = float(np.sum(0.5 * (self.cminus - self.cplus)[concave] * np.linalg.norm(M[:, concave], axis=0)))
            self._kept = ((Lc, M, least_squares_solver(M), spread),)
        return self._kept[0]

    def _singular_bound(self, tol: float | None, max_concave: int) -> AdjacentBound:
        """The bound when ``P`` is singular (positive semidefinite): ``P = U_R diag(μ) U_Rᵀ`` on its range (the
        eigenvalues below ``1e-12·max μ`` dropped: less curvature, a lower model, still valid) and ``N`` its null
        space. A side's lower model is bounded below only where ``Nᵀr = 0`` (``r = g + Aᵀα``), and then its minimum
        is ``−½ rᵀP⁺r``. So each side's ``α`` is a bounded least squares on ``[μ^{-1/2}U_Rᵀ; w·Nᵀ]`` with a large
        weight ``w`` on the null rows; where ``‖Nᵀr‖`` stays above rounding (``1e-9`` of the problem's scale) that
        side's model falls without bound and the bound is ``inf`` (its direction ``−NNᵀr``, where the lower model
        falls linearly). Above ``max_concave`` concave kinks: each concave ``α_i`` at its midpoint, the triangle
        term on the range, ``inf`` when a concave ``ã_i`` has a component in the null space."""
        mu, U = np.linalg.eigh(0.5 * (self.P + self.P.T))
        keep = mu > 1e-12 * max(float(mu.max()), 0.0) if mu.max() > 0 else np.zeros(mu.shape, dtype=bool)
        UR, UN, scale_r = U[:, keep], U[:, ~keep], 1.0 / np.sqrt(mu[keep])
        Q = scale_r[:, None] * UR.T  # P⁺ = QᵀQ on the range
        M, b = Q @ self.a.T, -(Q @ self.g)
        Mn, bn = UN.T @ self.a.T, -(UN.T @ self.g)
        # the problem's scale, floored at a normal number (with g = 0 and every kink row 0 — a unit without inputs,
        # weight decay 0 — a subnormal floor made w infinite and w·0 nan: a review's crash)
        size = max(float(np.linalg.norm(self.g)),
                   float(np.linalg.norm(self.a, axis=1) @ np.maximum(np.abs(self.cplus), np.abs(self.cminus))), 1e-150)
        null_tol = 1e-9 * size
        w = 1e6 * max(1.0, float(np.linalg.norm(M))) / max(float(np.linalg.norm(Mn)), null_tol)
        stacked, rhs = np.vstack([M, w * Mn]), np.concatenate([b, w * bn])
        cp, cm = self.cplus, self.cminus
        concave = cm > cp
        K, nr = int(concave.sum()), M.shape[0]

        def side_value(lo_s: np.ndarray, hi_s: np.ndarray, spread: float = 0.0) -> tuple[float, np.ndarray]:
            res = box_residual(stacked, rhs, lo_s, hi_s)
            r_R, r_N = res[:nr], res[nr:] / w
            if not np.all(np.isfinite(res)):
                return math.nan, np.zeros(self.g.shape)
            if float(np.linalg.norm(r_N)) > null_tol or not math.isfinite(spread):
                return math.inf, -(UN @ r_N)
            return 0.5 * (float(np.linalg.norm(r_R)) + spread) ** 2, -(Q.T @ r_R)

        if K > max_concave:
            mid = 0.5 * (cp + cm)
            lo, hi = np.where(concave, mid, cm), np.where(concave, mid, cp)
            null_part = np.linalg.norm(Mn[:, concave], axis=0) if Mn.shape[0] else np.zeros(K)
            spread = (math.inf if np.any(null_part > null_tol)
                      else float(np.sum(0.5 * (cm - cp)[concave] * np.linalg.norm(M[:, concave], axis=0))))
            val, d = side_value(lo, hi, spread)
            return AdjacentBound(val, self.n_kinks, K, False, d)
        worst, worst_d = -math.inf, np.zeros(self.g.shape)
        for lo_s, hi_s in side_boxes(cp, cm, concave):
            val, d = side_value(lo_s, hi_s)
            if math.isnan(val) or val > worst:
                worst, worst_d = val, d
            if math.isnan(val) or tol is not None and val > tol:
                break  # decided: not ≤ tol (or not computed)
        return AdjacentBound(worst, self.n_kinks, K, True, worst_d)


def adjacent_bounds(arch: Architecture, params: Params, T: torch.Tensor, layer: int, pre: list[torch.Tensor],
                    inputs: list[torch.Tensor], weight_decay: float, units: list[int] | None = None, *,
                    tol: float | None = None, max_concave: int = MAX_CONCAVE) -> list[AdjacentBound]:
    """The adjacent-piece gap bound of the unit blocks ``units`` (default: all) of ``layer`` at a point.

    Parameters
    ----------
    arch : Architecture
        Any loss: squared (the model keeps the curvature ``‖δf‖²/N``), logistic or softmax (a linear model per
        sample, ``P = λI``).
    params : Params
        The point's weights (torch).
    T : torch.Tensor
        Targets ``(N, n_out)``, encoded as :func:`multiconvex.nets.network.encode_targets` does.
    layer : int
        The layer ``k`` (0-based) of the units; the output layer has no kinks (every bound ``None``).
    pre, inputs : list of torch.Tensor
        The point's forward pass (:func:`multiconvex.nets.network.forward`).
    weight_decay : float
        ``λ``.
    units : list of int, optional
    tol : float, optional
        A bound ``≤ tol`` is returned without the bounded least squares (it decides a certificate already).
    max_concave : int
        Up to this many concave kinks the sides are enumerated exactly (``2^K`` bounded least squares).

    Returns
    -------
    list of AdjacentBound
        One per unit, in the order of ``units``.

    Examples
    --------
    >>> import torch
    >>> from multiconvex.nets import Architecture, forward, init_params
    >>> arch = Architecture((2, 3, 1))
    >>> params = init_params(arch, 0, torch.device("cpu"))
    >>> X = torch.randn(20, 2, dtype=torch.float64); T = torch.randn(20, 1, dtype=torch.float64)
    >>> a = torch.cat([X[:2], torch.ones(2, 1, dtype=X.dtype)], dim=1)
    >>> th = torch.linalg.cross(a[0], a[1])  # samples 0 and 1 exactly on unit 0's kink
    >>> params[0][0][0], params[0][1][0] = th[:2], th[2]
    >>> _, pre, inputs = forward(arch, params, X)
    >>> b = adjacent_bounds(arch, params, T, 0, pre, inputs, 1e-3)[0]
    >>> b.n_kinks, b.bound >= 0
    (2, True)
    """
    kinks = layer_kinks(arch, params, T, layer, pre, inputs, weight_decay, units)
    return [AdjacentBound(None) if kk is None else kk.bound(tol, max_concave) for kk in kinks]


def layer_kinks(arch: Architecture, params: Params, T: torch.Tensor, layer: int, pre: list[torch.Tensor],
                inputs: list[torch.Tensor], weight_decay: float, units: list[int] | None = None
                ) -> list[UnitKinks | None]:
    """Each unit block's :class:`UnitKinks` (``None`` where the own and the neighbouring piece are every piece
    containing the point); the arguments as :func:`adjacent_bounds`."""
    if arch.loss not in LOSSES:
        raise InvalidInputError(f"adjacent_bounds: arch.loss={arch.loss!r}; use one of {LOSSES}")
    n_k = arch.sizes[layer + 1]
    sel = list(range(n_k)) if units is None else [int(u) for u in units]
    if layer >= arch.n_layers - 1 or not sel or pre[layer].shape[0] == 0:
        return [None for _ in sel]
    with torch.no_grad(), one_torch_thread(T.device, T.shape[0] * max(arch.sizes)):  # small tensors: torch_threads
        return _layer_kinks(arch, params, T, layer, pre, inputs, float(weight_decay), sel)


def _layer_kinks(arch: Architecture, params: Params, T: torch.Tensor, k: int, pre: list[torch.Tensor],
                 inputs: list[torch.Tensor], lam: float, sel: list[int]) -> list[UnitKinks | None]:
    """:func:`layer_kinks` for a hidden layer with samples."""
    N = pre[k].shape[0]
    dev = pre[k].device
    tols = [abs_stats(pre[j]).tol() for j in range(arch.n_layers - 1)]  # as PieceContext.tol
    idx = torch.as_tensor(sel, device=dev, dtype=torch.long)
    own_kink = pre[k][:, idx].abs() <= tols[k]  # (N, g)
    later = torch.zeros(N, dtype=torch.bool, device=dev)
    for j in range(k + 1, arch.n_layers - 1):
        later |= abs_stats(pre[j]).row_min <= tols[j]
    cand = own_kink | later[:, None]  # (N, g): samples where a boundary entry may depend on the unit
    rows = torch.nonzero(cand.any(dim=1)).squeeze(1)
    out: list[UnitKinks | None] = [None for _ in sel]
    if rows.numel() == 0:
        return out
    resid = loss_gradient(arch, pre[-1], T)  # ∇ℓ(f) per sample (squared: f − t)
    curved = keeps_curvature(arch)  # squared loss: each sample's exact curvature ‖δf‖²/N; else 0 (a linear model)
    width = max(arch.sizes[k + 2:])  # the Jacobians' middle axis: the layers after k (their output included)
    step = max(1, CHUNK_ENTRIES // max(1, width * len(sel)))
    sides = {}
    for side in (1, -1):
        parts = []
        for s in range(0, int(rows.numel()), step):  # chunks of samples: memory stays at CHUNK_ENTRIES per pass
            sl = rows[s:s + step]
            V, moves, agree_own, agree_flip = _jacobians(arch, params, pre, k, idx, sl, side, tols, checks=True)
            c = side * (V * resid[sl][:, :, None]).sum(dim=1) / N  # dφ/dt on that side, (n, g)
            parts.append((c, (V * V).sum(dim=1) / N if curved else torch.zeros_like(c), moves, agree_own,
                          agree_flip))
        sides[side] = tuple(torch.cat(t) for t in zip(*parts))
    (cp, mp, mv_p, own_p, flip_p), (cm, mm, mv_m, own_m, flip_m) = sides[1], sides[-1]
    cand_s = cand[rows]
    depends = cand_s & (own_kink[rows] | mv_p | mv_m)  # a boundary entry that the unit moves
    kink = cand_s & ((cp != cm) | (mp != mm))
    two_sides = (own_p & flip_m) | (own_m & flip_p)  # the own and the neighbouring piece are its two sides
    n_dep = depends.sum(dim=0)
    need = [n for n in range(len(sel)) if int(n_dep[n]) > 1
            or int(n_dep[n]) == 1 and not bool(two_sides[depends[:, n], n].all())]
    if not need:
        return out
    at = with_ones(inputs[k]) if arch.bias else inputs[k]
    need_t = torch.as_tensor(need, device=dev, dtype=torch.long)
    g_idx = idx[need_t]
    cols = at.shape[1]
    P = torch.zeros(len(need), cols, cols, dtype=at.dtype, device=dev)
    g = torch.zeros(len(need), cols, dtype=at.dtype, device=dev)
    # the samples with a candidate: a candidate's curvature is the smaller side's and its slope goes to g only where
    # both sides agree; elsewhere the side t > 0 is the own piece (no boundary entry: the same numbers)
    here = cand_s[:, need_t]
    cp_n, cm_n, mp_n, mm_n = (t[:, need_t] for t in (cp, cm, mp, mm))
    slack, kappa = off_kink_terms(arch, params, pre, resid, k, g_idx, rows, tols, N)
    slack, kappa = (torch.where(depends[:, need_t], t, torch.zeros_like(t)) for t in (slack, kappa))
    boxed = here & ((cp_n != cm_n) | (kappa > 0))  # α in a box (its slopes differ, or an entry is off its kink)
    m = torch.where(here, torch.minimum(mp_n, mm_n), mp_n)
    c = torch.where(boxed, torch.zeros_like(cp_n), cp_n)
    A = at[rows]
    P += (A.T[None, :, :] * m.T[:, None, :]) @ A
    g += c.T @ A
    # every other sample on the point's own piece: its slopes and curvatures per chunk of Jacobians (samples ×
    # `need` are small), then P and g at once (one GEMM per unit, not one per chunk into every unit's P)
    others = torch.nonzero(~cand.any(dim=1)).squeeze(1)
    step = max(1, CHUNK_ENTRIES // max(1, width * len(need)))
    c_parts, m_parts = [], []
    for s in range(0, int(others.numel()), step):
        sl = others[s:s + step]
        V = _jacobians(arch, params, pre, k, g_idx, sl, 0, tols)
        c_parts.append((V * resid[sl][:, :, None]).sum(dim=1) / N)  # (n, g')
        m_parts.append((V * V).sum(dim=1) / N if curved else torch.zeros_like(c_parts[-1]))
    if c_parts:
        c, m = torch.cat(c_parts), torch.cat(m_parts)
        A = at[others]
        g += c.T @ A
        for n_pos in range(len(need)):
            P[n_pos] += (A.T * m[:, n_pos]) @ A
    W, bias = params[k]
    theta0 = torch.cat([W[g_idx]] + ([bias[g_idx, None]] if bias is not None else []), dim=1)
    g += lam * theta0
    P_np = P.cpu().numpy()
    P_np = 0.5 * (P_np + P_np.transpose(0, 2, 1))
    P_np[:, np.arange(cols), np.arange(cols)] += lam
    g_np = g.cpu().numpy()
    at_np = at.cpu().numpy()
    rows_np = rows.cpu().numpy()
    kink_np = kink.cpu().numpy()
    cp_np, cm_np = cp_n.cpu().numpy(), cm_n.cpu().numpy()
    boxed_np, kappa_np, slack_np = boxed.cpu().numpy(), kappa.cpu().numpy(), slack.cpu().numpy()
    refine = not curved and lam > 0  # a smooth loss: the conjugate refinement (P = λI must be positive definite)
    for n_pos, n in enumerate(need):
        ks = np.nonzero(boxed_np[:, n_pos])[0]  # α in a box, shrunk by κ where an entry is off its kink
        kp = kappa_np[ks, n_pos]
        # the samples with one piece along the block: not a candidate (no boundary entry the unit may move), or a
        # candidate among `rows` whose boundary entries the unit does not move (its slopes on both sides are its own
        # piece's) and whose slope is not boxed; every adjacent piece shares their piece rows
        one = ~cand[:, n]
        one[rows] |= ~depends[:, n] & ~boxed[:, n_pos]
        smooth = (functools.partial(_smooth_samples, arch, params, pre, T, at, k, g_idx[n_pos:n_pos + 1], one, tols, N,
                                    P_np[n_pos]) if refine else None)
        walls = functools.partial(own_piece_walls, arch, params, T, pre, inputs, k, int(g_idx[n_pos]), one)
        out[n] = UnitKinks(P_np[n_pos], g_np[n_pos], at_np[rows_np[ks]], cp_np[ks, n_pos] - kp,
                           cm_np[ks, n_pos] + kp, int(kink_np[:, n].sum()), float(slack_np[:, n_pos].sum()), smooth,
                           walls)
    return out


def _smooth_samples(arch: Architecture, params: Params, pre: list[torch.Tensor], T: torch.Tensor, at: torch.Tensor,
                    k: int, unit: torch.Tensor, one: torch.Tensor, tols: list[float], N: int,
                    P: np.ndarray) -> SmoothSamples | None:
    """The :class:`~multiconvex.nets.adjacent_smooth.SmoothSamples` of one unit block of a smooth loss: the samples
    ``one`` (``(N,)`` bool) with one piece along the block, with their output slopes on the point's own piece.
    Built when the refinement is first asked for (most bounds decide without it); ``None`` above
    :data:`~multiconvex.nets.adjacent_smooth.MAX_WORK` or where the Hessian at the point has no Cholesky factor."""
    idx = torch.nonzero(one).squeeze(1)
    if idx.numel() * at.shape[1] ** 2 > MAX_WORK:
        return None
    with torch.no_grad(), one_torch_thread(T.device, idx.numel() * max(arch.sizes)):
        V = _jacobians(arch, params, pre, k, unit, idx, 0, tols)[:, :, 0]  # (n, n_out)
        try:
            return SmoothSamples.build(arch.loss, pre[-1][idx], T[idx], V, at[idx].cpu().numpy(), N, P)
        except (np.linalg.LinAlgError, ValueError):  # no Cholesky factor (λ at rounding, data not finite)
            return None


__all__ = ["AdjacentBound", "MAX_CONCAVE", "PER_SIDE_CONCAVE", "UnitKinks", "adjacent_bounds", "layer_kinks"]
