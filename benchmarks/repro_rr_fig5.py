"""R&R Fig. 5: the six pieces of the single-neuron counterexample in the (a, b) plane, with both
strict local minima found by our drivers from different starts.

Run: ``python benchmarks/repro_rr_fig5.py`` -> ``benchmarks/results/rr_fig5.png`` and ``.json``.
"""

from __future__ import annotations

import json
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from multiconvex.models import SingleReLUNeuron  # noqa: E402

OUT = pathlib.Path(__file__).parent / "results"


def main(alpha: float = 3.0) -> dict:
    neuron = SingleReLUNeuron(alpha)
    x, _ = neuron.dataset()
    starts = [(-2.0, 1.0), (-3.0, 0.2), (4.0, 1.0), (6.0, 0.3)]
    runs = []
    for a0, b0 in starts:
        for algorithm in ("gauss-seidel", "jacobi"):
            n = SingleReLUNeuron(alpha).fit(init=(a0, b0), algorithm=algorithm, solver="clarabel")
            runs.append({"start": [a0, b0], "algorithm": algorithm, "end": [n.a_, n.b_], "objective": n.objective_,
                         "partial_minimum": n.result_.certificate.is_partial_minimum})
    A, B = np.meshgrid(np.linspace(-6, 8, 400), np.linspace(-3, 4, 300))
    F = neuron.objective_at(A, B)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    cs = ax.contourf(A, B, np.log10(F + 1e-9), levels=30, cmap="viridis")
    fig.colorbar(cs, label="log10 f(a, b)")
    for xi in x:  # piece boundaries a x + b = 0
        if xi == 0:
            ax.axhline(0.0, color="w", lw=1)
        else:
            ax.plot(A[0], -xi * A[0], "w", lw=1)
    for (ab, val), name in zip(neuron.local_minima(), ("4α²", "α²")):
        ax.plot(*ab, "r*", ms=14)
        ax.annotate(f"local min {name} = {val:g}", ab, color="w", xytext=(5, 8), textcoords="offset points")
    for r in runs:
        if r["algorithm"] == "gauss-seidel":
            ax.annotate("", xy=r["end"], xytext=r["start"], arrowprops=dict(arrowstyle="->", color="orange"))
            ax.plot(*r["start"], "o", color="orange")
    ax.set_xlim(-6, 8), ax.set_ylim(-3, 4), ax.set_xlabel("a"), ax.set_ylabel("b")
    ax.set_title(f"R&R Fig. 5: f(a,b) = Σ(y − [ax+b]₊)², α = {alpha:g}; six pieces, our runs (orange)")
    OUT.mkdir(exist_ok=True)
    fig.savefig(OUT / "rr_fig5.png", dpi=120, bbox_inches="tight")
    report = {"alpha": alpha, "local_minima": neuron.local_minima(), "runs": runs}
    (OUT / "rr_fig5.json").write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    for r in main()["runs"]:
        print(r)
