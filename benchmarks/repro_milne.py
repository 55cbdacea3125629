"""Milne's experiments: the toy region experiment (§4, Fig. 1) and the curvature trace on digits.

1. Toy: f(x) = x/4, 100 points uniform in [−1, 1], H = 1, n1 = 2, no biases, no output ReLU,
   λ = 0.4, full-batch GD with step 0.1, 1000 seeded initialisations (torch ``nn.Linear`` scale),
   vectorised over runs. For each run: the share of the decrease of ℓ_λ made after GD first
   enters U(λ) (``loss_change_fraction(..., mode="first")`` with ``theta_max > 0``). Paper: 87.2% ± 22.3%.
2. Digits: ReLUNetwork [64, 32, 10], softmax, λ = 1e-4, SGD batch 128, lr 0.1; the normalised
   second derivative by double backprop each epoch, and the loss change fraction (eq. 20) over seeds.

Run: ``python benchmarks/repro_milne.py`` -> ``benchmarks/results/milne_toy.png``, ``milne_digits.png``, ``milne.json``.
"""

from __future__ import annotations

import json
import math
import pathlib
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from multiconvex.models import ReLUNetwork, datasets  # noqa: E402
from multiconvex.nets import loss_change_fraction, region_theta  # noqa: E402

OUT = pathlib.Path(__file__).parent / "results"


def toy(runs: int = 1000, steps: int = 4000, lam: float = 0.4, lr: float = 0.1, seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    x = (2 * torch.rand(100, generator=gen, dtype=torch.float64) - 1)
    y = x / 4
    r = float(x.abs().max())
    W0 = (2 * torch.rand(runs, 2, generator=gen, dtype=torch.float64) - 1).requires_grad_(True)  # fan_in 1
    W1 = ((2 * torch.rand(runs, 2, generator=gen, dtype=torch.float64) - 1) / math.sqrt(2)).requires_grad_(True)
    obj = np.empty((steps + 1, runs))
    theta = np.empty((steps + 1, runs))
    for t in range(steps + 1):
        f = (torch.relu(W0[:, :, None] * x[None, None, :]) * W1[:, :, None]).sum(1)  # (runs, 100)
        loss = 0.5 * ((f - y) ** 2).mean(1)
        reg = 0.5 * lam * ((W0 ** 2).sum(1) + (W1 ** 2).sum(1))
        obj[t] = (loss + reg).detach().numpy()
        theta[t] = region_theta(loss.detach().numpy(), 1.0, 1, r, lam)  # H = 1: ‖W‖_*^{H−1} = 1
        if t == steps:
            break
        g0, g1 = torch.autograd.grad((loss + reg).sum(), (W0, W1))
        with torch.no_grad():
            W0 -= lr * g0
            W1 -= lr * g1
    fr = np.array([loss_change_fraction(obj[:, i], theta[:, i] > 0, mode="first") for i in range(runs)])
    fr = fr[np.isfinite(fr)]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    a1.hist(fr, bins=30)
    a1.set_xlabel("loss change fraction in U(λ)"), a1.set_ylabel("runs")
    a1.set_title(f"toy, {runs} runs: {100 * fr.mean():.1f}% ± {100 * fr.std():.1f}% (paper 87.2% ± 22.3%)")
    i = int(np.argmin(np.abs(fr - np.median(fr))))
    a2.semilogy(obj[:, i], label="ℓ_λ")
    inside = np.flatnonzero(theta[:, i] > 0)
    if inside.size:
        a2.axvline(inside[0], color="r", ls="--", label="enters U(λ)")
    a2.set_xlabel("GD step"), a2.legend(), a2.set_title("one run")
    OUT.mkdir(exist_ok=True)
    fig.savefig(OUT / "milne_toy.png", dpi=120, bbox_inches="tight")
    return {"runs": int(fr.size), "mean": float(fr.mean()), "std": float(fr.std()),
            "never_entered": int((fr == 0).sum()), "paper": "87.2% ± 22.3%", "steps": steps}


def digits(seeds: int = 5, epochs: int = 30) -> dict:
    X, y = datasets.load("digits")
    fracs, traces, accs = [], [], []
    for s in range(seeds):
        net = ReLUNetwork(hidden_layer_sizes=[32], loss="softmax", weight_decay=1e-4, device="cpu", algorithm="sgd",
                          max_iter=epochs, random_state=s)
        net.fit(X, y, lr=0.1, batch_size=128, record_diagnostics=True, certify=False)
        m = net.result_.info["milne"]
        objs = np.r_[net.result_.history[0].objective, m["objective"]]
        curv = np.r_[np.nan, m["curvature"]]
        fracs.append(loss_change_fraction(objs, np.r_[False, m["curvature"] > 0]))
        traces.append((objs, curv))
        accs.append(net.score(X, y))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    objs, curv = traces[0]
    a1.plot(objs, label="ℓ_λ")
    a1b = a1.twinx()
    a1b.plot(curv, "r.", label="2gᵀHg/‖g‖²")
    a1.set_xlabel("epoch"), a1.set_ylabel("ℓ_λ"), a1b.set_ylabel("normalised 2nd derivative", color="r")
    a2.hist(fracs, bins=10)
    a2.set_xlabel("loss change fraction (eq. 20)"), a2.set_title(f"digits [64,32,10], SGD, {seeds} seeds")
    fig.savefig(OUT / "milne_digits.png", dpi=120, bbox_inches="tight")
    allc = np.concatenate([c[1:] for _, c in traces])
    return {"seeds": seeds, "epochs": epochs, "train_accuracy": float(np.mean(accs)),
            "curvature_p10": float(np.nanpercentile(allc, 10)), "loss_change_fraction_mean": float(np.mean(fracs)),
            "loss_change_fraction_std": float(np.std(fracs))}


if __name__ == "__main__":
    t0 = time.perf_counter()
    report = {"toy": toy()}
    report["toy"]["seconds"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    report["digits"] = digits()
    report["digits"]["seconds"] = time.perf_counter() - t1
    (OUT / "milne.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
