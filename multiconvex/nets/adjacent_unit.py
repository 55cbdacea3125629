"""One unit block's lower models at a point and the bound they give on its gap over every adjacent piece.

The bound's derivation (the lower model, the sides of the concave kinks, the bounded least squares, singular ``P``,
entries off their kink, the refinement of a smooth loss and the walls) is in :mod:`multiconvex.nets.adjacent`'s
docstring, next to :func:`~multiconvex.nets.adjacent.layer_kinks`, which builds a layer's :class:`UnitKinks` from the
network; this module holds the model itself (:class:`UnitKinks`) and what its bound returns (:class:`AdjacentBound`).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import scipy.linalg

from ..rounding import (
    UNDERFLOW,
    MidpointRadius,
    gamma,
    inverse_quadratic_upper,
    inverse_quadratic_upper_rows,
    min_eigenvalue_floor,
    norm_upper,
)
from ..solvers.dispatch import on_one_blas_thread
from .adjacent_lsq import box_solution, finite_or_nan, least_squares_solver, model_direction, side_boxes
from .adjacent_smooth import SmoothSamples, refine, refined_bound
from .adjacent_walls import MAX_KINKS, Walls, walled_bound

#: Up to this many concave kinks in one block the bound enumerates their ``2^K`` sides (each a small bounded least
#: squares); above it, the midpoint-plus-triangle bound.
MAX_CONCAVE = 6

#: Up to this many concave kinks a smooth block's refinement is also run per side (``2^K`` refinements), where one
#: trial step for every side stays above the tolerance.
PER_SIDE_CONCAVE = 3


class _Factors(NamedTuple):
    """What :meth:`UnitKinks._model_bound` computes once per model (:meth:`UnitKinks._factors`)."""

    L: np.ndarray  # the Cholesky factor of P (lower)
    M: np.ndarray  # L⁻¹[ã_i]
    solve: Callable[[np.ndarray], np.ndarray]  # a least-squares α of Mα ≈ b
    triangle: float  # Σ ½(c⁻ − c⁺)·‖ã_i‖_{P⁻¹} over the concave kinks, an upper bound
    floor: float  # a proven lower bound (> 0) of λ_min(P)


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
        when a piece's lower model is not proven bounded below (``P`` not proven positive definite and ``r`` not
        exactly 0: :meth:`UnitKinks._singular_bound`); ``nan`` when it could not be
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


@dataclass
class UnitKinks:
    """One unit block's lower model at a point: ``F(θ⁰ + d) ≥ F(θ⁰) + (g + Σ_i α_i a_i)ᵀd + ½ dᵀP d`` on every
    piece containing the point, for the ``α`` its sides allow (:mod:`multiconvex.nets.adjacent`'s docstring).

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
    g_radius : (c,) or None
        How far the exact ``g`` may lie from :attr:`g`, entry by entry (the rounding of its sums; ``None``: exact).
    floor : float
        A proven lower bound of ``λ_min(P)`` from how ``P`` was built (``λ`` less twice its sums' rounding,
        :func:`~multiconvex.nets.adjacent.layer_kinks`); ``0``: proven here, by
        :func:`~multiconvex.rounding.min_eigenvalue_floor`, or not at all (then the bound is ``inf`` unless the
        linear part is exactly 0: :meth:`_singular_bound`).

    Every bound is evaluated with its rounding (:meth:`_proven`): the computed factors and least squares only choose
    ``α``, and the value at that ``α`` is an upper bound in exact arithmetic of the model whose data are ``P``,
    ``g ± g_radius``, ``a`` and the slopes as given.
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
    g_radius: np.ndarray | None = None
    floor: float = 0.0
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
        found = self._slack_bound(self.linear, tol, max_concave)
        found.first_order = found.bound
        first = found.bound
        if first is None or not math.isfinite(first) or found.direction is None or not _above(first, tol):
            return found
        found.bound, step = self._refined(self.linear, first, found.direction, tol, max_concave)
        if self.walls is not None and step is not None and self.a.shape[0] <= MAX_KINKS and _above(found.bound, tol):
            if self._walls_built is None:
                self._walls_built = (self.walls(),)
            walls = self._walls_built[0]
            curvature = self._curvature()
            if walls is not None and curvature is not None:
                value_at = functools.partial(self._tight_value, tol=tol, max_concave=max_concave)
                found.bound = walled_bound(value_at, walls, curvature, self.linear, found.bound, step, tol)
        return found

    @property
    def linear(self) -> MidpointRadius:
        """The linear part :attr:`g` with its radius."""
        return MidpointRadius(self.g, np.zeros_like(self.g) if self.g_radius is None else self.g_radius)

    def _curvature(self) -> tuple | None:
        """The Cholesky factor (as ``scipy.linalg.cho_factor`` gives it) of the model's Hessian at the point: the
        refinement's (``P`` plus the one-piece samples' curvature) where it was built, else ``P``'s (:meth:`_factors`);
        ``None`` when ``P`` is singular (weight decay 0: no walls)."""
        samples = self._built[0] if self._built is not None else None
        if samples is not None:
            return samples.H
        factors = self._factors()
        return None if factors is None else (factors.L, True)

    def _refined(self, g: MidpointRadius, first: float, direction: np.ndarray, tol: float | None,
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

    def _tight_value(self, g: MidpointRadius, tol: float | None, max_concave: int
                     ) -> tuple[float | None, np.ndarray | None]:
        """The bound at the linear part ``g`` (every side enumerated, then refined) and where its model puts the
        block's step: what the walls' search (:func:`~multiconvex.nets.adjacent_walls.walled_bound`) evaluates."""
        found = self._slack_bound(g, None, max_concave)
        if (found.bound is None or not math.isfinite(found.bound) or found.direction is None
                or not _above(found.bound, tol)):
            return found.bound, found.direction
        return self._refined(g, found.bound, found.direction, tol, max_concave)

    def _per_side_bound(self, samples: SmoothSamples, tol: float | None, max_concave: int,
                        best: float, g: MidpointRadius) -> float | None:
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

    def _value(self, g: MidpointRadius, tol: float | None, max_concave: int) -> tuple[float | None, np.ndarray | None]:
        """``(bound, direction)`` of :meth:`_slack_bound`: what the refinement's ``model_bound`` gives."""
        found = self._slack_bound(g, tol, max_concave)
        return found.bound, found.direction

    def _slack_bound(self, g: MidpointRadius, tol: float | None, max_concave: int) -> AdjacentBound:
        """:meth:`_model_bound` with the linear part ``g`` plus :attr:`slack` (the sum rounded up)."""
        if not self.slack:
            return self._model_bound(tol, max_concave, g)
        found = self._model_bound(None if tol is None else tol - self.slack, max_concave, g)
        if found.bound is not None:
            found.bound = (found.bound + self.slack) * (1.0 + gamma(2))
        return found

    def _model_bound(self, tol: float | None = None, max_concave: int = MAX_CONCAVE,
                     g: MidpointRadius | None = None) -> AdjacentBound:
        """The bound: first one ``α`` (least squares clipped to the sides' boxes, each concave ``α_i`` at its
        midpoint, plus the triangle term), then, unless that is already ``≤ tol``, the bounded least squares over
        the ``2^K`` concave sides (``K ≤ max_concave``; the midpoint bound with a bounded least squares above). Both
        are valid; the smaller is returned. Each value is :meth:`_proven` at the ``α`` found.

        With ``tol`` the work stops as soon as the answer to ``gap ≤ tol`` is known: a side above ``tol`` ends the
        enumeration with the first bound and that side's direction (where ``F`` falls), and a triangle term above
        ``tol`` skips the bounded least squares. ``tol=None``: the tightest bound (every side). ``g``: another linear
        part (default :attr:`linear`, the refinement's trial steps and the walls move it); what does not depend on
        it is computed once (:meth:`_factors`)."""
        g = self.linear if g is None else g
        factors = self._factors()
        if factors is None:  # P not proven positive definite (weight decay 0 and a dead unit, say)
            return self._singular_bound(g, max_concave)
        Lc, M, solve_ls = factors.L, factors.M, factors.solve
        b = -scipy.linalg.solve_triangular(Lc, g.value, lower=True)
        cp, cm = self.cplus, self.cminus
        concave = cm > cp
        K = int(concave.sum())
        if M.shape[1] == 0:
            return AdjacentBound(self._proven(g, np.zeros(0)), self.n_kinks, 0, True, model_direction(Lc, -b))
        lo = np.where(concave, 0.5 * (cp + cm), cm)
        hi = np.where(concave, 0.5 * (cp + cm), cp)
        alpha = np.clip(solve_ls(b), lo, hi)
        cheap = self._proven(g, alpha, factors.triangle)
        best = AdjacentBound(cheap, self.n_kinks, K, K == 0, model_direction(Lc, M @ alpha - b))
        if tol is not None and cheap <= tol:
            return best
        if K > max_concave:  # the midpoint bound, its convex part by bounded least squares
            if tol is not None and 0.5 * factors.triangle ** 2 > tol:
                return best  # its triangle term alone is above tol: no α makes it ≤ tol
            alpha, r = box_solution(M, b, lo, hi, tol or 0.0)
            val = self._proven(g, alpha, factors.triangle)
            return best if not val < cheap else AdjacentBound(val, self.n_kinks, K, False, model_direction(Lc, r))
        worst, worst_r = -math.inf, b
        for lo_s, hi_s in side_boxes(cp, cm, concave):
            alpha, r = box_solution(M, b, lo_s, hi_s, tol or 0.0)
            val = self._proven(g, alpha)
            if math.isnan(val) or val > worst:
                worst, worst_r = val, r
            if math.isnan(val) or val >= cheap:
                return best  # the enumeration cannot end below the first bound
            if tol is not None and val > tol:  # above tol whatever the other sides give: the first bound, and this
                # side's direction (the one-sided derivative there is −2·val < 0: a way on for the driver)
                return AdjacentBound(cheap, self.n_kinks, K, False, model_direction(Lc, r))
        return AdjacentBound(worst, self.n_kinks, K, True, model_direction(Lc, worst_r))

    def _proven(self, g: MidpointRadius, alpha: np.ndarray, triangle: float = 0.0) -> float:
        """``½(‖r‖_{P⁻¹} + triangle)²`` at the multipliers ``alpha``, ``r = g + Aᵀα``, as an upper bound in exact
        arithmetic: ``r`` is computed with its radius ``ρ`` (``g``'s and the sum's,
        :meth:`~multiconvex.rounding.MidpointRadius.plus`), and ``‖r‖_{P⁻¹} ≤ √(upper bound of r̂ᵀP⁻¹r̂) +
        ‖ρ‖/√floor`` (:func:`~multiconvex.rounding.inverse_quadratic_upper`, which does not take the Cholesky factor
        for exact); ``nan`` where ``alpha`` is not finite. An audit's instance (``P = λI``, ``λ = 1.86e-8``,
        ``g`` two entries an ulp apart near 4e7) had the computed residual 0 and the bound 0 against an exact
        7.5e-10."""
        if not np.all(np.isfinite(alpha)):
            return math.nan
        factors = self._factors()
        assert factors is not None
        r = g.plus(self.a, alpha)
        quad = inverse_quadratic_upper(self.P, (factors.L, True), r.value, factors.floor)
        rho = norm_upper(r.radius) / math.sqrt(factors.floor) * (1.0 + gamma(2))
        total = math.sqrt(quad) + rho + triangle
        if total == 0.0:  # r is exactly 0 and so is its radius (quad carries an underflow term otherwise)
            return 0.0
        return finite_or_nan(0.5 * total * total * (1.0 + gamma(8)) + 2 * UNDERFLOW)

    def _factors(self) -> _Factors | None:
        """The :class:`_Factors` of :meth:`_model_bound`, computed once: the Cholesky factor ``L`` of ``P``,
        ``M = L⁻¹[ã_i]``, a solver of ``Mα ≈ b`` (:func:`~multiconvex.nets.adjacent_lsq.least_squares_solver`), the
        concave kinks' triangle term ``Σ ½(c⁻ − c⁺)‖ã_i‖_{P⁻¹}`` (each norm by
        :func:`~multiconvex.rounding.inverse_quadratic_upper`) and the proven floor of ``λ_min(P)`` (:attr:`floor`,
        else :func:`~multiconvex.rounding.min_eigenvalue_floor`); ``None`` when ``P`` has no Cholesky factor or no
        floor above 0 is proven."""
        if self._kept is None:
            self._kept = (self._factorise(),)
        return self._kept[0]

    def _factorise(self) -> _Factors | None:
        try:
            Lc = scipy.linalg.cholesky(self.P, lower=True)
        except np.linalg.LinAlgError:
            return None
        floor = self.floor if self.floor > 0 else min_eigenvalue_floor(self.P)
        if not floor > 0:
            return None
        M = (scipy.linalg.solve_triangular(Lc, self.a.T, lower=True) if self.a.shape[0]
             else np.zeros((self.g.shape[0], 0)))
        half = 0.5 * (self.cminus - self.cplus)
        concave = np.flatnonzero(half > 0)
        norms = np.sqrt(inverse_quadratic_upper_rows(self.P, (Lc, True), self.a[concave], floor))
        triangle = float(np.sum(half[concave] * (1.0 + gamma(3)) * norms))
        return _Factors(Lc, M, least_squares_solver(M), triangle * (1.0 + gamma(concave.size + 2)), floor)

    def _singular_bound(self, g: MidpointRadius, max_concave: int) -> AdjacentBound:
        """The bound when ``P`` is not proven positive definite (no Cholesky factor, or no floor of ``λ_min`` above
        0: weight decay 0 and a dead unit, say). Then a side's lower model is bounded below only where ``r = g +
        Aᵀα`` lies in ``P``'s range exactly, which floating point cannot show unless ``r`` is 0 itself: the bound is 0
        where ``g`` is exactly 0 (radius 0) and ``α = 0`` is in every side's box of each kink whose row is not 0
        (``c⁻ ≤ 0 ≤ c⁺``, so none of them concave), else ``inf`` (not proven; the
        form then reports ``F``, as no block lowers ``F ≥ 0`` by more), never ``nan``. (An audit: a null-space
        residual below ``1e-9`` of the problem's scale had been taken for 0, which is a claim, not a proof; with
        weight decay lost in ``P``'s rounding it certified a block that falls by 5.6e-4.) The direction is
        :meth:`_falling_direction`'s.

        The 0 rests on the exact curvature the model stands for being positive semidefinite, not on ``P`` itself
        (which may be indefinite by its rounding margin): with ``r = 0`` the lower model ``F(θ⁰) + ½dᵀP_exact d``
        stays above ``F(θ⁰)``. Every model :func:`~multiconvex.nets.adjacent.layer_kinks` builds has one (``λI``
        plus the samples' ``m_i ã_iã_iᵀ``, ``m_i ≥ 0``); a model given by hand must too."""
        cp, cm = self.cplus, self.cminus
        K = int(np.count_nonzero(cm > cp))
        moves = self.a.any(axis=1)  # a kink row of 0 adds 0 to r whatever its α
        if (not g.value.any() and not g.radius.any() and np.all(cm[moves] <= 0) and np.all(cp[moves] >= 0)):
            return AdjacentBound(0.0, self.n_kinks, K, True, np.zeros(g.value.shape))
        return AdjacentBound(math.inf, self.n_kinks, K, K <= max_concave, self._falling_direction(g.value, max_concave))

    def _falling_direction(self, g: np.ndarray, max_concave: int) -> np.ndarray:
        """Where the lower model falls when ``P`` is not proven positive definite: ``P = U_R diag(μ) U_Rᵀ`` on its
        range (eigenvalues below ``1e-12·max μ`` dropped) and ``N`` its null space; each side's ``α`` is a bounded
        least squares on ``[μ^{-1/2}U_Rᵀ; w·Nᵀ]`` with a large weight ``w`` on the null rows. Of the worst side:
        ``−NNᵀr`` where ``‖Nᵀr‖`` stays above ``1e-9`` of the problem's scale (the model falls linearly there), else
        the model's minimiser on the range, ``−P⁺r``. Above ``max_concave`` concave kinks each concave ``α_i`` is at
        its midpoint."""
        mu, U = np.linalg.eigh(0.5 * (self.P + self.P.T))
        keep = mu > 1e-12 * max(float(mu.max()), 0.0) if mu.max() > 0 else np.zeros(mu.shape, dtype=bool)
        UR, UN, scale_r = U[:, keep], U[:, ~keep], 1.0 / np.sqrt(mu[keep])
        Q = scale_r[:, None] * UR.T  # P⁺ = QᵀQ on the range
        M, b = Q @ self.a.T, -(Q @ g)
        Mn, bn = UN.T @ self.a.T, -(UN.T @ g)
        # the problem's scale, floored at a normal number (with g = 0 and every kink row 0 — a unit without inputs,
        # weight decay 0 — a subnormal floor made w infinite and w·0 nan: a review's crash)
        size = max(float(np.linalg.norm(g)),
                   float(np.linalg.norm(self.a, axis=1) @ np.maximum(np.abs(self.cplus), np.abs(self.cminus))), 1e-150)
        null_tol = 1e-9 * size
        w = 1e6 * max(1.0, float(np.linalg.norm(M))) / max(float(np.linalg.norm(Mn)), null_tol)
        stacked, rhs = np.vstack([M, w * Mn]), np.concatenate([b, w * bn])
        cp, cm = self.cplus, self.cminus
        concave = cm > cp
        nr = M.shape[0]

        def side_value(lo_s: np.ndarray, hi_s: np.ndarray) -> tuple[float, np.ndarray]:
            res = box_solution(stacked, rhs, lo_s, hi_s)[1]
            r_R, r_N = res[:nr], res[nr:] / w
            if not np.all(np.isfinite(res)):
                return math.nan, np.zeros(g.shape)
            if float(np.linalg.norm(r_N)) > null_tol:
                return math.inf, -(UN @ r_N)
            return 0.5 * float(r_R @ r_R), -(Q.T @ r_R)

        if int(concave.sum()) > max_concave:
            mid = 0.5 * (cp + cm)
            return side_value(np.where(concave, mid, cm), np.where(concave, mid, cp))[1]
        worst, worst_d = -math.inf, np.zeros(g.shape)
        for lo_s, hi_s in side_boxes(cp, cm, concave):
            val, d = side_value(lo_s, hi_s)
            if math.isnan(val) or val > worst:
                worst, worst_d = val, d
            if not val < math.inf:
                break  # no side is worse
        return worst_d


__all__ = ["AdjacentBound", "MAX_CONCAVE", "PER_SIDE_CONCAVE", "UnitKinks"]
