"""The ReLU network on a GPU: ``device="auto"`` picks CUDA, CPU and CUDA agree, and what CUDA buys.

Run on a machine with CUDA (see ``benchmarks/gpu_check.sh``, which installs the solvers first):
``python benchmarks/gpu_check.py OUT.json``. Writes the JSON after every section, so a run cut
short still reports what it finished. Timings compare CPU and CUDA within this one run.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import platform
import sys
import time
import traceback
import warnings

import numpy as np
import torch

from multiconvex.models import ReLUNetwork, datasets
from multiconvex.nets import NetForm
from multiconvex.solvers import resolve

warnings.filterwarnings("ignore", message="Solution may be inaccurate")

NATIVE = "clarabel-native"


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(1.0, abs(b))


def parity() -> dict:
    """The same fits on CPU and on ``device="auto"``: objectives, weights and certificates."""
    net = ReLUNetwork([3, 4, 1], device="auto")
    out: dict = {"auto_resolves_to": str(net._device()), "cuda_available": torch.cuda.is_available()}
    X, y = datasets.teacher(200, sizes=(5, 8, 8, 1), seed=0)
    Xc, yc = datasets.load("digits")
    Xc, yc = Xc[:200], yc[:200]
    runs = [("gauss-seidel", [5, 8, 8, 1], "squared", X, y, dict(algorithm="gauss-seidel", solver=NATIVE,
                                                               block_size="unit", max_iters=5)),
            ("jacobi", [5, 8, 8, 1], "squared", X, y, dict(algorithm="jacobi", solver=NATIVE, max_iters=5,
                                                          block_size="layer")),
            ("gd", [5, 8, 8, 1], "squared", X, y, dict(algorithm="gd", lr=0.1, max_iters=300, solver=NATIVE)),
            ("adam", [64, 16, 10], "softmax", Xc, yc, dict(algorithm="adam", lr=1e-3, batch_size=64, max_iters=20,
                                                          certify=False))]
    out["runs"] = []
    for name, sizes, loss, Xr, yr, kw in runs:
        row: dict = {"run": name}
        fits = {}
        for dev in ("cpu", "auto"):
            t0 = time.perf_counter()
            fits[dev] = ReLUNetwork(sizes, loss=loss, weight_decay=1e-3, seed=0, device=dev).fit(Xr, yr, **kw)
            row[f"{dev}_seconds"] = time.perf_counter() - t0
        a, b = fits["auto"].result_, fits["cpu"].result_
        weight_diffs = [float(np.abs(p - q).max()) for p, q in zip(fits["auto"].coefs_, fits["cpu"].coefs_)]
        row.update(objective_cpu=b.objective, objective_auto=a.objective,
                   objective_rel_diff=_rel(a.objective, b.objective), max_weight_diff=max(weight_diffs),
                   certificate_cpu=bool(b.certificate.is_partial_minimum) if b.certificate else None,
                   certificate_auto=bool(a.certificate.is_partial_minimum) if a.certificate else None,
                   max_gap_cpu=float(b.certificate.max_gap) if b.certificate else None,
                   max_gap_auto=float(a.certificate.max_gap) if a.certificate else None)
        out["runs"].append(row)
        print(row, flush=True)
    return out


def sweep_times(ns, devices) -> list[dict]:
    """One Gauss–Seidel sweep of unit blocks, [10, 16, 16, 1], per N and device."""
    rows = []
    for n in ns:
        X, y = datasets.teacher(n, sizes=(10, 16, 16, 1), seed=0)
        for dev in devices:
            net = ReLUNetwork([10, 16, 16, 1], weight_decay=1e-4, seed=0, device=dev)
            t0 = time.perf_counter()
            net.fit(X, y, algorithm="gauss-seidel", solver=NATIVE, block_size="unit", max_iters=1, certify=False)
            r = net.result_
            rows.append({"N": n, "device": dev, "seconds_per_iteration": r.history[-1].time - r.history[0].time,
                         "solver_share": r.solver_share, "block_matrix_time": r.info["block_build_time"],
                         "objective": r.objective, "wall": time.perf_counter() - t0})
            print(rows[-1], flush=True)
    return rows


def baseline_times(devices) -> list[dict]:
    """Adam epochs and GD steps on digits (all 1797 samples) and diabetes, [d, 64, 64, out]."""
    rows = []
    cases = [("digits", [64, 64, 64, 10], "softmax", *datasets.load("digits")),
             ("diabetes", [10, 64, 64, 1], "squared", *datasets.load("diabetes"))]
    for name, sizes, loss, X, y in cases:
        for dev in devices:
            for alg, kw in (("adam", dict(lr=1e-3, batch_size=64, max_iters=30)),
                            ("gd", dict(lr=0.1, max_iters=500, log_every=50))):
                net = ReLUNetwork(sizes, loss=loss, weight_decay=1e-4, seed=0, device=dev)
                net.fit(X, y, algorithm=alg, certify=False, **kw)
                r = net.result_
                rows.append({"data": name, "device": dev, "algorithm": alg, "iterations": r.iterations,
                             "seconds": r.history[-1].time, "seconds_per_iteration": r.history[-1].time / r.iterations,
                             "objective": r.objective})
                print(rows[-1], flush=True)
    return rows


def block_build_times(devices) -> list[dict]:
    """Building block matrices in torch (the part that runs on the device) for large N, no solve."""
    rows = []
    for n in (10_000, 100_000):
        X, y = datasets.teacher(n, sizes=(10, 64, 64, 1), seed=0)
        for dev in devices:
            net = ReLUNetwork([10, 64, 64, 1], weight_decay=1e-4, seed=0, device=dev)
            arch, Xt, Tt = net._tensors(X, y, "gpu_check", fit=True)
            form = NetForm(arch, Xt, Tt, 1e-4, backends_for=None, block_size="unit",
                           resolve_class=lambda cls, name: resolve(NATIVE, cls, matrix_level=True))
            point = form.point_from_params(net.initial_params())
            for index in (0, 64, 128):  # a unit of layer 1 (later piece rows), of layer 2, the output
                form.block_data(index, point)  # warm-up
                if dev != "cpu":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                for _ in range(3):
                    form.block_data(index, point)
                if dev != "cpu":
                    torch.cuda.synchronize()
                rows.append({"N": n, "device": dev, "block": form.blocks[index].name,
                             "seconds": (time.perf_counter() - t0) / 3})
                print(rows[-1], flush=True)
    return rows


def main(path: str) -> None:
    report: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "torch": torch.__version__,
                    "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
                    "torch_cpu_threads": torch.get_num_threads()}
    devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    out = pathlib.Path(path)
    sections = [("parity", parity), ("baselines", lambda: baseline_times(devices)),
                ("block_build", lambda: block_build_times(devices)),
                ("sweep", lambda: sweep_times([1000, 3000, 10_000, 30_000], devices))]
    for name, fn in sections:
        t0 = time.perf_counter()
        try:
            report[name] = fn()
        except Exception:  # noqa: BLE001 - record and go on: a partial report is still a report
            report[name] = {"error": traceback.format_exc()}
            print(report[name]["error"], flush=True)
        report.setdefault("section_seconds", {})[name] = time.perf_counter() - t0
        out.write_text(json.dumps(report, indent=1, default=lambda v: None if isinstance(v, float) and math.isnan(v)
                                  else float(v)))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "relu_gpu.json")
