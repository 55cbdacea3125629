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

__all__ = ["GlobalCertificate", "dual_lower_bound", "make_certificate", "relative_gap"]


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
        ``f(W)`` at the point.
    lower_bound : float
        Proven lower bound on the global optimum (``-inf`` when no polar upper bound exists).
    gap_bound : float
        ``objective − lower_bound ≥ objective − f*`` (``inf`` when unknown).
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
    lower_bound: float
    gap_bound: float
    n_subnetworks: int
    reason: str
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def relative_gap(self) -> float:
        """``gap_bound / |objective|``: the proven relative distance to the global optimum (0 when the
        gap is closed; see :func:`relative_gap`)."""
        return relative_gap(self.gap_bound, self.objective)

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
               else f"within {self.gap_bound:.3g} of the global optimum (lower bound {self.lower_bound:.10g})")
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
    return gap / abs(objective) if objective != 0 else math.inf


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


_U = 2.0**-53   # the unit roundoff of float64


def _dot_intervals(G: np.ndarray, Y: np.ndarray) -> tuple[float, float, float, float]:
    """``(fl⟨G, Y⟩, e_GY, fl‖G‖², e_GG)``: the products with proven error bounds, for any summation order.

    The sums are taken in two stages (row sums of a 2-D array — a vector is folded to ``≈ √n × √n`` —
    then their sum), so every product passes through at most ``h = rows + cols`` roundings, and
    Higham's bound (Thm 3.1, any order) gives ``|fl(Σ p_i) − Σ p_i| ≤ γ_h Σ|p_i|``,
    ``γ_h = h u / (1 − h u)``. ``Σ|G_i Y_i| ≤ ‖G‖‖Y‖`` (Cauchy–Schwarz), and the nonnegative sums
    ``‖G‖², ‖Y‖²`` are at most their computed values ``/ (1 − γ_h)``. Two stages keep ``h ≈ 2√n``
    instead of ``n`` (``e ≈ 1e-12 ‖G‖‖Y‖`` at 5000 × 2000), at the cost of three passes over the data.
    """
    g = np.asarray(G, dtype=float)
    y = np.asarray(Y, dtype=float)
    if g.ndim != 2:
        g, y = np.ravel(g), np.ravel(y)
        n = g.size
        cols = max(1, math.isqrt(n))
        rows = -(-n // cols) if n else 1
        pad = rows * cols - n
        if pad:
            g, y = np.concatenate([g, np.zeros(pad)]), np.concatenate([y, np.zeros(pad)])
        g, y = g.reshape(rows, cols), y.reshape(rows, cols)
    rows, cols = g.shape
    gy = float(np.einsum("ij,ij->i", g, y).sum())
    gg = float(np.einsum("ij,ij->i", g, g).sum())
    yy = float(np.einsum("ij,ij->i", y, y).sum())
    h = rows + cols + 1            # one rounding per product, at most rows + cols − 2 per addition path
    gamma = h * _U / (1.0 - h * _U)
    tiny = 4.0 * 2.0**-1074 * rows * cols  # products that underflow
    grow = (1.0 + 8.0 * _U) / (1.0 - gamma)
    e_gg = gamma * gg * grow + tiny
    e_gy = gamma * math.sqrt(gg * grow) * math.sqrt(yy * grow) * (1.0 + 8.0 * _U) + tiny
    return gy, e_gy, gg, e_gg


def make_certificate(*, G: np.ndarray, Y: np.ndarray, lam: float, objective: float, polar: float,
                     polar_upper: float, polar_exact: bool, method: str, block_gaps: dict[str, float] | None,
                     block_tol: float, n_subnetworks: int, patterns_checked: int | None = None,
                     patterns_total: int | None = None, polar_tol: float = 1e-6, gap_tol: float = 1e-6,
                     extra: dict | None = None) -> GlobalCertificate:
    """Assemble a :class:`GlobalCertificate` from what was computed (never more).

    ``block_gaps=None`` means stationarity was not checked: the verdict is then not proven.
    """
    lower = dual_lower_bound(G, Y, lam, polar_upper)
    gap = objective - lower if math.isfinite(lower) else math.inf
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
    rel_gap = relative_gap(gap, objective)
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
    elif rel_gap > gap_tol:
        ok, reason = False, f"polar <= lam but the proven relative gap {rel_gap:.3g} exceeds {gap_tol:.3g}"
    else:
        ok, reason = True, ("stationary" + (" (implied by the proven gap <= block tol)" if implied else "")
                            + ", polar <= lam (H&V Cor. 1), and the convex dual closes the gap")
    return GlobalCertificate(
        global_optimal=ok, polar=float(polar), polar_upper=float(polar_upper), polar_exact=bool(polar_exact),
        lam=float(lam), method=method, patterns_checked=patterns_checked, patterns_total=patterns_total,
        stationary=stationary, max_block_gap=float(max_gap), block_tol=float(block_tol),
        objective=float(objective), lower_bound=float(lower), gap_bound=float(gap),
        n_subnetworks=int(n_subnetworks), reason=reason, extra=dict(extra or {}))
