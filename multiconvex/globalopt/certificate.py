"""The global certificate of a parallel-subnetwork model (THEORY.md §4, H&V Thm 1, Cor. 1).

Setting: output ``X̂ = Σ_i φ(W_i)``, objective ``f(W) = ℓ(Y, X̂) + λ Σ_i θ(W_i)`` with φ and θ
positively homogeneous of the same degree, and the induced convex problem
``min_X ℓ(Y, X) + λ Ω(X)`` whose optimum is a lower bound on ``f`` for **every** number of
subnetworks (``Σ θ(W_i) ≥ Ω(Σ φ(W_i))`` by definition of Ω).

**The dual lower bound** (squared loss ``ℓ = ½‖Y − X‖²``). Let ``G = Y − X̂ = −∇_X ℓ`` and let
``ρ ≥ Ω°(G) = sup_{θ(w) ≤ 1} ⟨G, φ(w)⟩`` be a *proven upper bound* on the polar. For any Γ with
``Ω°(Γ) ≤ λ`` the polar inequality gives ``λ Ω(X) ≥ ⟨Γ, X⟩`` for every X, hence

    min_X ½‖Y − X‖² + λΩ(X)  ≥  min_X ½‖Y − X‖² + ⟨Γ, X⟩  =  ⟨Γ, Y⟩ − ½‖Γ‖²

(the inner minimum is attained at ``X = Y − Γ``). ``Γ = tG`` with ``0 ≤ t ≤ λ/ρ`` has
``Ω°(Γ) = t Ω°(G) ≤ t ρ ≤ λ``, so

    lower_bound = max_{0 ≤ t ≤ λ/ρ}  t ⟨G, Y⟩ − t² ‖G‖² / 2

(a concave quadratic in t: its clipped stationary point ``t = clip(⟨G,Y⟩/‖G‖², 0, λ/ρ)``)

is a valid lower bound on the global optimum of the nonconvex problem (any r), at **any** point
— weak duality needs no stationarity. ``gap_bound = f(W) − lower_bound ≥ f(W) − f*``.
When ``ρ ≤ λ``, t = 1 is feasible and the gap is at most ``λΘ − ⟨G, X̂⟩``, which vanishes at a point that is
stationary along the scaling of each subnetwork (there ``⟨G, φ(W_i)⟩ = λ θ(W_i)``, Euler's identity), so a converged
run with ``Ω°(G) ≤ λ`` closes the gap.

**The objective side of the gap** is proven too: ``f(W)`` is computed in floating point, so the gap uses
``f̂ + e`` with ``e`` a proven bound on ``|f̂ − f(W)|`` (:func:`objective_with_error` for a regularised squared
loss from its residual; the model's own bound where it has a cheaper one), and the relative gap divides by
``f̂ − e ≤ f(W)``. A model that gives no bound (``e = inf``) gets no gap bound. The lower bound needs no such
care: it holds for *any* ``G``, so the rounded residual is as good as the exact one.

**Global optimality** (Cor. 1) is claimed only when all of these were *computed*:
the existing subnetworks are stationary (every block gap ≤ tolerance — a polar value at a
non-stationary point proves nothing), the polar was computed exactly or bounded above
(``polar_upper ≤ λ(1 + polar_tol)``), and the proven relative gap bound is ≤ ``gap_tol``.
A polar that is only a lower bound (sampled patterns, multi-start) never yields
``global_optimal=True``; it gives an interval ``[polar, polar_upper]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import InvalidInputError
from .spectral_bound import BOUND_SAFETY, SUBNORMAL_SPACING, UNIT_ROUNDOFF, gamma, round_up

__all__ = ["GlobalCertificate", "dual_lower_bound", "make_certificate", "norm_upper", "objective_with_error",
           "relative_gap", "sum_of_squares"]


@dataclass(frozen=True)
class GlobalCertificate:
    """Global-optimality evidence for a parallel-subnetwork model at its returned point.

    Attributes
    ----------
    global_optimal : bool
        True only when the point is stationary (``stationary``), the polar is proven
        ``≤ λ(1 + polar_tol)`` and the proven relative gap bound is ``≤ gap_tol``.
    polar : float
        ``Ω°(G)`` at ``G = −∇_X ℓ`` when ``polar_exact``, else a lower bound on it.
    polar_upper : float
        A proven upper bound on ``Ω°(G)`` (``== polar`` when exact; ``inf`` when none was computed).
    polar_exact : bool
        Whether ``polar`` is the exact polar (e.g. top singular value; all activation patterns).
    lam : float
        The regularisation weight λ the polar is compared with.
    method : str
        How the polar was computed and proven (e.g. ``"svd+cholesky"``, ``"svds+cholesky"``, ``"patterns:exact"``).
    patterns_checked, patterns_total : int | None
        Activation patterns whose programs were solved, and how many exist (None: unknown).
    stationary : bool | None
        Whether every block gap of the existing subnetworks was computed and is ≤ ``block_tol``
        (None: not checked).
    max_block_gap, block_tol : float
        The largest block gap and the tolerance it was compared with.
    objective : float
        ``f(W)`` at the point, as computed (``f̂``).
    objective_error : float
        A proven bound on ``|f̂ − f(W)|``, the rounding of the objective's evaluation (``inf``: not bounded).
    lower_bound : float
        Proven lower bound on the global optimum (``-inf`` when no polar upper bound exists).
    gap_bound : float
        ``objective + objective_error − lower_bound ≥ f(W) − f*``, rounded upward (``inf`` when unknown).
    n_subnetworks : int
        Nonzero subnetworks at the point.
    reason : str
        One line: why the verdict is what it is.
    """

    global_optimal: bool
    polar: float
    polar_upper: float
    polar_exact: bool
    lam: float
    method: str
    patterns_checked: int | None
    patterns_total: int | None
    stationary: bool | None
    max_block_gap: float
    block_tol: float
    objective: float
    objective_error: float
    lower_bound: float
    gap_bound: float
    n_subnetworks: int
    reason: str
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def objective_upper(self) -> float:
        """``objective + objective_error`` rounded upward: a proven upper bound on ``f(W)``."""
        return _add_up(self.objective, self.objective_error)

    @property
    def relative_gap(self) -> float:
        """``gap_bound / (objective − objective_error)``: the proven relative distance to the global optimum
        (0 when the gap is closed; see :func:`relative_gap`)."""
        return relative_gap(self.gap_bound, _objective_lower(self.objective, self.objective_error))

    @property
    def polar_interval(self) -> tuple[float, float]:
        """``(lower, upper)`` bounds on the polar (equal when exact)."""
        return (self.polar, self.polar_upper)

    def __str__(self) -> str:
        verdict = "globally optimal (proven)" if self.global_optimal else "global optimality NOT proven"
        if self.polar_exact:
            pol = f"polar {self.polar:.6g} (exact, {self.method})"
        else:
            up = "not bounded" if not math.isfinite(self.polar_upper) else f"{self.polar_upper:.6g}"
            pol = f"polar in [{self.polar:.6g}, {up}] ({self.method})"
        if self.patterns_checked is not None:
            tot = "?" if self.patterns_total is None else str(self.patterns_total)
            pol += f", {self.patterns_checked}/{tot} patterns"
        gap = ("no proven gap bound" if not math.isfinite(self.gap_bound)
               else f"within {self.gap_bound:.3g} of the global optimum (objective {self.objective:.10g} "
                    f"± {self.objective_error:.2g}, lower bound {self.lower_bound:.10g})")
        stat = {True: "stationary", False: "NOT stationary", None: "stationarity not checked"}[self.stationary]
        return (f"{verdict}: {pol} vs lam {self.lam:.6g}; {self.n_subnetworks} subnetworks, {stat}; "
                f"{gap}; {self.reason}")


def relative_gap(gap: float, objective: float) -> float:
    """``gap / |objective|``, purely relative (``0`` when ``gap <= 0``; ``inf`` when unknown).

    No absolute floor such as ``max(1, |f|)``: the problem is scale-equivariant (``Y → εY``,
    ``λ → ελ`` scales every objective by ``ε²``), and a floor of 1 turned the test into an absolute
    one on small-scale data, certifying points far from the optimum (with ``gap_tol = 1e-6``:
    ``f/f* − 1 ≈ 3e-4`` for entries of Y ~ 1e-4, over 3× the optimum for entries ~ 1e-7). The dual lower bound is
    ``≥ 0`` for the squared loss, so ``gap > 0`` implies ``objective > 0`` and the ratio is well defined.
    """
    if not math.isfinite(gap):
        return math.inf
    if gap <= 0:
        return 0.0
    return math.nextafter(gap / abs(objective), math.inf) if objective != 0 else math.inf  # rounded upward


def dual_lower_bound(G: np.ndarray, Y: np.ndarray, lam: float, polar_upper: float) -> float:
    """``t⟨G, Y⟩ − t²‖G‖²/2`` at the best ``t ∈ [0, λ/ρ]``: a lower bound on ``min ½‖Y−X‖² + λΩ(X)``.

    Parameters
    ----------
    G : ndarray
        ``Y − X̂``, the negative gradient of the squared loss at the point.
    Y : ndarray
        The targets (same shape as G).
    lam : float
        λ ≥ 0.
    polar_upper : float
        A proven upper bound ``ρ ≥ Ω°(G)``; ``inf`` gives ``-inf`` (no bound).

    Examples
    --------
    >>> import numpy as np
    >>> Y = np.diag([3.0, 1.0]); G = Y - np.diag([1.0, 0.0])   # the SVT optimum at λ = 2
    >>> round(float(dual_lower_bound(G, Y, 2.0, np.linalg.norm(G, 2))), 9)  # = the optimum 4.5, less rounding
    4.5
    """
    G = np.asarray(G, dtype=float)
    Y = np.asarray(Y, dtype=float)
    if not math.isfinite(polar_upper):
        return -math.inf
    # the bound's own arithmetic is rounded: ⟨G, Y⟩ is taken at its proven lower end and ‖G‖² at its upper end
    # (Higham's bound on a dot product, _dot_intervals), t is kept inside [0, λ/ρ] despite the rounded
    # division, and the last few operations give up a few units of rounding of their operands
    gy, gy_err, gg, gg_err = _dot_intervals(G, Y)
    gy_low, gg_up = gy - gy_err, gg + gg_err
    if not (math.isfinite(gy_low) and math.isfinite(gg_up)):
        return -math.inf
    # Γ = tG is dual feasible for every t in [0, λ/ρ]; the bound t⟨G,Y⟩ − t²‖G‖²/2 is concave in t, so its
    # best feasible t is the clipped stationary point (never worse than t = min(1, λ/ρ))
    t_max = lam / polar_upper * (1.0 - 4.0 * _U) if polar_upper > 0 else math.inf
    t = min(max(gy_low / gg_up, 0.0), t_max) if gg_up > 0 else 0.0
    a, b = t * gy_low, 0.5 * t * t * gg_up
    return float((a - b) - 8.0 * _U * (abs(a) + b)) + 0.0   # + 0.0: no −0.0


_U = UNIT_ROUNDOFF   # the unit roundoff of float64


def _as_rows(*arrays: np.ndarray) -> list[np.ndarray]:
    """The arrays as 2-D float arrays of one shape (a vector folded to ``≈ √n × √n``, zero-padded)."""
    out = [np.asarray(a, dtype=float) for a in arrays]
    if out[0].ndim == 2:
        return out
    flat = [np.ravel(a) for a in out]
    n = flat[0].size
    cols = max(1, math.isqrt(n))
    rows = -(-n // cols) if n else 1
    pad = rows * cols - n
    return [np.concatenate([a, np.zeros(pad)]).reshape(rows, cols) if pad else a.reshape(rows, cols) for a in flat]


def _dot_intervals(G: np.ndarray, Y: np.ndarray) -> tuple[float, float, float, float]:
    """``(fl⟨G, Y⟩, e_GY, fl‖G‖², e_GG)``: the products with proven error bounds, for any summation order.

    The sums are taken in two stages (row sums of a 2-D array — a vector is folded to ``≈ √n × √n`` —
    then their sum), so every product passes through at most ``h = rows + cols`` roundings, and
    Higham's bound (Thm 3.1, any order) gives ``|fl(Σ p_i) − Σ p_i| ≤ γ_h Σ|p_i|``,
    ``γ_h = h u / (1 − h u)``. ``Σ|G_i Y_i| ≤ ‖G‖‖Y‖`` (Cauchy–Schwarz), and the nonnegative sums
    ``‖G‖², ‖Y‖²`` are at most their computed values ``/ (1 − γ_h)``. Two stages keep ``h ≈ 2√n``
    instead of ``n`` (``e ≈ 1e-12 ‖G‖‖Y‖`` at 5000 × 2000), at the cost of three passes over the data.
    """
    g, y = _as_rows(G, Y)
    rows, cols = g.shape
    gy = float(np.einsum("ij,ij->i", g, y).sum())
    gg = float(np.einsum("ij,ij->i", g, g).sum())
    yy = float(np.einsum("ij,ij->i", y, y).sum())
    g_h = gamma(rows + cols + 1)   # one rounding per product, at most rows + cols − 2 per addition path
    tiny = 4.0 * SUBNORMAL_SPACING * rows * cols  # products that underflow
    grow = (1.0 + 8.0 * _U) / (1.0 - g_h)
    e_gg = g_h * gg * grow + tiny
    e_gy = g_h * math.sqrt(gg * grow) * math.sqrt(yy * grow) * (1.0 + 8.0 * _U) + tiny
    return gy, e_gy, gg, e_gg


def sum_of_squares(A: np.ndarray) -> tuple[float, float]:
    """``(fl‖A‖², e)`` with ``|fl‖A‖² − ‖A‖²| ≤ e`` proven, in one pass over ``A``.

    Row sums of squares, then their sum (a vector is folded to ``≈ √n × √n``): every square passes through
    at most ``h = rows + cols + 1`` roundings in any summation order, so ``e = γ_h ‖A‖²`` (Higham Thm 3.1;
    ``‖A‖² ≤ fl‖A‖² / (1 − γ_h)``) plus ``2⁻¹⁰⁷⁴`` per square for underflow. ``e = inf`` on overflow or NaN.

    Examples
    --------
    >>> s, e = sum_of_squares(np.full((300, 200), 0.1))
    >>> abs(s - 600.0) <= e < 1e-12 * 600
    True
    """
    a, = _as_rows(A)
    if a.size == 0:
        return 0.0, 0.0
    s = float(np.einsum("ij,ij->i", a, a).sum())
    if not math.isfinite(s):
        return s, math.inf
    g_h = gamma(a.shape[0] + a.shape[1] + 1)
    return s, round_up(g_h * s / (1.0 - g_h) * BOUND_SAFETY + a.size * SUBNORMAL_SPACING)


def norm_upper(square: tuple[float, float]) -> float:
    """A proven upper bound on ``‖A‖`` from :func:`sum_of_squares`'s ``(fl‖A‖², e)``."""
    s, e = square
    return round_up(math.sqrt(max(s + e, 0.0)))


def objective_with_error(residual_sq: tuple[float, float], residual_err: float,
                         penalty_sqs: tuple[tuple[float, float], ...], lam: float) -> tuple[float, float]:
    """``(f̂, e)``: ``f = ½‖R‖² + (λ/2) Σ_b ‖W_b‖²`` from a computed residual, with ``|f̂ − f| ≤ e`` proven.

    Parameters
    ----------
    residual_sq : (float, float)
        :func:`sum_of_squares` of the *computed* residual ``R̂``.
    residual_err : float
        A proven bound on ``‖R̂ − R‖`` (Frobenius), ``R`` the exact residual of the stored numbers — the
        model's own: for ``R̂ = fl(Y − fl(UVᵀ))`` it is ``γ_k‖U‖‖V‖ + γ_1‖R̂‖`` (Higham: ``|fl(UVᵀ) − UVᵀ| ≤
        γ_k|U||Vᵀ|`` entrywise, one more rounding for the subtraction).
    penalty_sqs : tuple of (float, float)
        :func:`sum_of_squares` of each regularised block.
    lam : float
        λ.

    Notes
    -----
    ``f̂ = fl(½ fl‖R̂‖² + (½λ)(Σ_b fl‖W_b‖²))``. With ``ρ ≥ ‖R̂‖``, ``|‖R̂‖² − ‖R‖²| ≤ e_R(2ρ + e_R)``; the sums
    carry their own bounds; the last ``n_b + 2`` operations add ``u`` times the magnitudes each. The total is
    multiplied by 1.01 (the bound's own arithmetic) and rounded upward; ``e = inf`` on overflow or NaN.

    Examples
    --------
    >>> R, W = np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([0.5, -0.5])
    >>> f, e = objective_with_error(sum_of_squares(R), 0.0, (sum_of_squares(W),), 2.0)
    >>> f, e < 1e-13
    (15.5, True)
    """
    rr, rr_err = residual_sq
    pen = 0.0
    pen_err = 0.0
    for s, e in penalty_sqs:
        pen += s
        pen_err += e
    a = 0.5 * rr
    b = 0.5 * lam * pen
    f = a + b
    rho = norm_upper(residual_sq)
    err = (0.5 * rr_err + 0.5 * residual_err * (2.0 * rho + residual_err) + 0.5 * abs(lam) * pen_err
           + (len(penalty_sqs) + 2) * _U * (abs(a) + abs(b)) + 4.0 * SUBNORMAL_SPACING)
    err = round_up(err * BOUND_SAFETY)
    if not (math.isfinite(f) and math.isfinite(err)):
        return f, math.inf
    return f, err


def _add_up(a: float, b: float) -> float:
    """``a + b`` rounded upward (one ulp covers round-to-nearest)."""
    return math.nextafter(a + b, math.inf)


def _objective_lower(objective: float, error: float) -> float:
    """``max(objective − error, 0)`` rounded downward: a proven lower bound on a nonnegative objective."""
    if not math.isfinite(error):
        return 0.0
    return max(math.nextafter(objective - error, -math.inf), 0.0)


def make_certificate(*, G: np.ndarray, Y: np.ndarray, lam: float, objective: float, polar: float,
                     polar_upper: float, polar_exact: bool, method: str, block_gaps: dict[str, float] | None,
                     block_tol: float, n_subnetworks: int, patterns_checked: int | None = None,
                     patterns_total: int | None = None, polar_tol: float = 1e-6, gap_tol: float = 1e-6,
                     extra: dict | None = None, objective_error: float = 0.0) -> GlobalCertificate:
    """Assemble a :class:`GlobalCertificate` from what was computed (never more).

    ``block_gaps=None`` means stationarity was not checked: the verdict is then not proven.
    ``objective_error`` is a proven bound on the rounding of ``objective`` (``|f̂ − f(W)|``; 0 claims that
    ``objective`` is exact, ``inf`` that it is not bounded): the gap and the verdict use ``objective +
    objective_error`` and the relative gap divides by ``objective − objective_error``.

    Raises
    ------
    InvalidInputError
        ``objective_error`` negative or NaN.
    """
    if not objective_error >= 0.0:
        raise InvalidInputError(
            f"make_certificate: objective_error={objective_error!r} must be a bound on the objective's rounding "
            "error, >= 0 (0 when the objective is exact, inf when it is not bounded).")
    lower = dual_lower_bound(G, Y, lam, polar_upper)
    bounded = math.isfinite(lower) and math.isfinite(objective_error)
    gap = math.nextafter(_add_up(objective, objective_error) - lower, math.inf) if bounded else math.inf
    implied = False
    if block_gaps is None:
        stationary, max_gap = None, math.nan
    else:
        vals = list(block_gaps.values())
        max_gap = max(vals) if vals else math.nan
        stationary = bool(vals) and all(math.isfinite(g) and -block_tol <= g <= block_tol for g in vals)
        if not stationary and math.isfinite(gap) and gap <= block_tol:
            # every block gap f − min_block f is ≤ f − f* ≤ gap: the proven bound implies stationarity even
            # where a block solve failed or was inaccurate (near-interpolating fits push the backends)
            stationary = implied = True
    rel_gap = relative_gap(gap, _objective_lower(objective, objective_error))
    polar_ok = math.isfinite(polar_upper) and polar_upper <= lam * (1.0 + polar_tol)  # relative: no absolute slack
    if stationary is None:
        ok, reason = False, "stationarity of the subnetworks was not checked, so the polar proves nothing"
    elif not stationary:
        ok, reason = False, (f"the subnetworks are not stationary (largest block gap {max_gap:.3g} > tol "
                             f"{block_tol:.3g}): a polar value at a non-stationary point proves nothing")
    elif not polar_exact and not math.isfinite(polar_upper):
        ok, reason = False, ("the polar was only bounded below (no proven upper bound: not every activation pattern "
                             "was checked, or the bound's proof was skipped or failed): not proven")
    elif not polar_ok:
        if polar_exact or polar > lam * (1.0 + polar_tol):
            reason = (f"the polar {polar:.6g} exceeds lam {lam:.6g}: a new subnetwork along the polar "
                      "maximiser still lowers the objective")
        else:
            reason = (f"the polar upper bound {polar_upper:.6g} exceeds lam {lam:.6g}: the interval "
                      f"[{polar:.6g}, {polar_upper:.6g}] does not decide; the gap bound is what is proven")
        ok = False
    elif not math.isfinite(objective_error):
        ok, reason = False, ("polar <= lam but the objective's rounding error is not bounded (the model gives no "
                             "objective_bound), so no gap is proven")
    elif rel_gap > gap_tol:
        ok, reason = False, f"polar <= lam but the proven relative gap {rel_gap:.3g} exceeds {gap_tol:.3g}"
    else:
        ok, reason = True, ("stationary" + (" (implied by the proven gap <= block tol)" if implied else "")
                            + ", polar <= lam (H&V Cor. 1), and the convex dual closes the gap")
    return GlobalCertificate(
        global_optimal=ok, polar=float(polar), polar_upper=float(polar_upper), polar_exact=bool(polar_exact),
        lam=float(lam), method=method, patterns_checked=patterns_checked, patterns_total=patterns_total,
        stationary=stationary, max_block_gap=float(max_gap), block_tol=float(block_tol),
        objective=float(objective), objective_error=float(objective_error), lower_bound=float(lower),
        gap_bound=float(gap),
        n_subnetworks=int(n_subnetworks), reason=reason, extra=dict(extra or {}))
