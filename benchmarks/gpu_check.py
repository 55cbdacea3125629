"""The ReLU network on a GPU: ``device="auto"`` picks CUDA, CPU and CUDA agree, and what CUDA buys.

Run on a machine with CUDA (see ``benchmarks/gpu_check.sh``, which installs the solvers first):
``python benchmarks/gpu_check.py OUT.json [SECTION ...]`` (sections: parity, baselines, block_build,
sweep, torch_qp; default all; OUT.json defaults to ``$OUT/relu_gpu.json`` when ``$OUT`` is set).
Writes the JSON after every section, so a run cut short still reports what it finished. Timings
compare CPU and CUDA within this one run.

``torch_qp``: one layer's unit blocks (diabetes-shaped ``[10, 64, 64, 1]``, second hidden layer:
64 QPs in 65 variables, one interval per sample) solved by the DAQP loop
(:func:`multiconvex.solvers.batched_qp.solve_interval_qps`) and by the batched torch solver
(:func:`multiconvex.solvers.torch_qp.solve_interval_qps_torch`) on each device; times, statuses,
``max |Δobjective|`` against DAQP and the largest certified gap.
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
from multiconvex.nets import Architecture, NetForm, forward, init_params
from multiconvex.nets.batched import unit_batch, unit_qps
from multiconvex.solvers import resolve
from multiconvex.solvers.batched_qp import solve_interval_qps
from multiconvex.solvers.torch_qp import solve_interval_qps_torch

warnings.filterwarnings("ignore", message="Solution may be inaccurate")

NATIVE = "clarabel-native"


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(1.0, abs(b))


def parity() -> dict:
    """The same fits on CPU and on ``device="auto"``: objectives, weights and certificates."""
    net = ReLUNetwork(hidden_layer_sizes=[4], device="auto")
    out: dict = {"auto_resolves_to": str(net._device()), "cuda_available": torch.cuda.is_available()}
    X, y = datasets.teacher(200, sizes=(5, 8, 8, 1), seed=0)
    Xc, yc = datasets.load("digits")
    Xc, yc = Xc[:200], yc[:200]
    # (name, hidden sizes, loss, data, constructor options, fit options)
    runs = [("gauss-seidel", [8, 8], "squared", X, y, dict(algorithm="gauss-seidel", solver=NATIVE, max_iter=5),
             dict(block_size="unit")),
            ("jacobi", [8, 8], "squared", X, y, dict(algorithm="jacobi", solver=NATIVE, max_iter=5),
             dict(block_size="layer")),
            ("gd", [8, 8], "squared", X, y, dict(algorithm="gd", max_iter=300, solver=NATIVE), dict(lr=0.1)),
            ("adam", [16], "softmax", Xc, yc, dict(algorithm="adam", max_iter=20),
             dict(lr=1e-3, batch_size=64, certify=False))]
    out["runs"] = []
    for name, hidden, loss, Xr, yr, opts, kw in runs:
        row: dict = {"run": name}
        fits = {}
        for dev in ("cpu", "auto"):
            t0 = time.perf_counter()
            fits[dev] = ReLUNetwork(hidden_layer_sizes=hidden, loss=loss, weight_decay=1e-3, device=dev,
                                    random_state=0, **opts).fit(Xr, yr, **kw)
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
            net = ReLUNetwork(hidden_layer_sizes=[16, 16], weight_decay=1e-4, device=dev, algorithm="gauss-seidel",
                              solver=NATIVE, max_iter=1, random_state=0)
            t0 = time.perf_counter()
            net.fit(X, y, block_size="unit", certify=False)
            r = net.result_
            rows.append({"N": n, "device": dev, "seconds_per_iteration": r.history[-1].time - r.history[0].time,
                         "solver_share": r.solver_share, "block_matrix_time": r.info["block_build_time"],
                         "objective": r.objective, "wall": time.perf_counter() - t0})
            print(rows[-1], flush=True)
    return rows


def baseline_times(devices) -> list[dict]:
    """Adam epochs and GD steps on digits (all 1797 samples) and diabetes, [d, 64, 64, out]."""
    rows = []
    cases = [("digits", "softmax", *datasets.load("digits")), ("diabetes", "squared", *datasets.load("diabetes"))]
    for name, loss, X, y in cases:  # [d, 64, 64, out]
        for dev in devices:
            for alg, iters, kw in (("adam", 30, dict(lr=1e-3, batch_size=64)), ("gd", 500, dict(lr=0.1, log_every=50))):
                net = ReLUNetwork(hidden_layer_sizes=[64, 64], loss=loss, weight_decay=1e-4, device=dev, algorithm=alg,
                                  max_iter=iters, random_state=0)
                net.fit(X, y, certify=False, **kw)
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
            net = ReLUNetwork(hidden_layer_sizes=[64, 64], weight_decay=1e-4, device=dev, random_state=0)
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


def _unit_layer(X: np.ndarray, y: np.ndarray, layer: int = 1, seed: int = 0):
    """The unit blocks of ``layer`` of ``[d, 64, 64, 1]`` at its seeded initial point, weight decay 1e-4:
    ``(qps, C, zlo, zhi, active)`` in numpy (``active``: the rows tight at the point, as ``auto`` guesses)."""
    arch = Architecture((X.shape[1], 64, 64, 1))
    params = init_params(arch, seed, torch.device("cpu"))
    Xt = torch.as_tensor(X, dtype=torch.float64)
    T = torch.as_tensor(y, dtype=torch.float64).reshape(len(y), -1)
    _, pre, inputs = forward(arch, params, Xt)
    batch = unit_batch(arch, params, T, layer, pre, inputs)
    qps = unit_qps(batch, X.shape[0], 1e-4, 0.0)
    zlo, zhi = (t.numpy() for t in batch.z_bounds())
    z0 = batch.z0.T.numpy()
    eps = 1e-9 * (1.0 + np.abs(z0))
    active = (zhi - z0 <= eps).astype(np.int8) - (z0 - zlo <= eps).astype(np.int8)
    return qps, batch.inputs.numpy(), zlo, zhi, active


def _objectives(P: np.ndarray, q: np.ndarray, x: np.ndarray) -> np.ndarray:
    return 0.5 * np.einsum("bi,bij,bj->b", x, P, x) + np.einsum("bi,bi->b", q, x)


def torch_qp_times(devices, ns=(442, 10_000, 50_000), budget: float = 120.0, cpu_up_to: int = 10_000,
                   partial: pathlib.Path | None = None) -> list[dict]:
    """The DAQP loop vs the batched torch solver on one layer's 64 unit blocks (c = 65), per N and device,
    from the point (``warm``/``active`` as ``auto`` passes them; also cold at the smallest N). The torch
    solver runs on CPU up to ``cpu_up_to`` samples only; no new N starts past ``budget`` seconds; the rows so far
    are written to ``partial`` after each one (a run cut short still reports)."""
    rows: list[dict] = []
    t_start = time.perf_counter()
    for n in ns:
        if time.perf_counter() - t_start > budget:
            rows.append({"N": n, "skipped": f"section budget of {budget} s spent"})
            break
        X, y = datasets.load("diabetes") if n == 442 else datasets.teacher(n, sizes=(10, 16, 16, 1), seed=0)
        qps, C, zlo, zhi, active = _unit_layer(X, y)
        for start in ("warm", "cold") if n == ns[0] else ("warm",):
            kw = dict(warm=qps.theta0, active=active) if start == "warm" else {}
            t0 = time.perf_counter()
            ref = solve_interval_qps(qps.P, qps.q, C, zlo, zhi, **kw)
            t_daqp = time.perf_counter() - t0
            f_ref = _objectives(qps.P, qps.q, ref.x)
            for dev in [d for d in devices if d != "cpu" or n <= cpu_up_to]:
                args = [torch.as_tensor(a, device=dev) for a in (qps.P, qps.q, C, zlo, zhi)]
                tkw = {k: torch.as_tensor(v, device=dev) for k, v in kw.items()}
                P_, q_, C_, lo_, up_ = args
                solve_interval_qps_torch(P_[:2], q_[:2], C_, lo_[:2], up_[:2])  # warm-up (kernels, allocator)
                if dev != "cpu":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                out = solve_interval_qps_torch(*args, **tkw)
                t_torch = time.perf_counter() - t0
                ok = np.array([s == "optimal" for s in out.status]) & np.isfinite(f_ref)  # certified answers
                gaps = (out.objective - out.lower_bound) / np.maximum(np.abs(out.objective), 1e-300)
                rows.append({"N": n, "c": C.shape[1], "units": len(qps.P), "start": start, "device": dev,
                             "daqp_seconds": t_daqp, "torch_seconds": t_torch, "speedup": t_daqp / t_torch,
                             "daqp_statuses": {s: ref.status.count(s) for s in set(ref.status)},
                             "torch_statuses": {s: out.status.count(s) for s in set(out.status)},
                             "max_abs_objective_diff_optimal": float(np.max(np.abs(out.objective[ok] - f_ref[ok])))
                             if ok.any() else None,
                             "max_bound_above_daqp": float(np.max(out.lower_bound - f_ref)),  # ≤ 0 up to rounding
                             "max_abs_objective_diff_any_point": float(np.nanmax(np.abs(out.objective - f_ref))),
                             "max_relative_gap": float(np.max(gaps[ok])) if ok.any() else None,
                             "admm_iterations_max": int(out.iterations.max()),
                             "admm_iterations_mean": float(out.iterations.mean())})
                print(rows[-1], flush=True)
                if partial is not None:
                    partial.write_text(json.dumps(rows, indent=1))
    return rows


SECTIONS = ("parity", "baselines", "block_build", "sweep", "torch_qp")


def main(path: str, only: tuple[str, ...] = SECTIONS) -> None:
    report: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "torch": torch.__version__,
                    "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
                    "torch_cpu_threads": torch.get_num_threads()}
    devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    out = pathlib.Path(path)
    sections = [("parity", parity), ("baselines", lambda: baseline_times(devices)),
                ("block_build", lambda: block_build_times(devices)),
                ("sweep", lambda: sweep_times([1000, 3000, 10_000, 30_000], devices)),
                ("torch_qp", lambda: torch_qp_times(devices, partial=out.with_suffix(".partial.json")))]
    for name, fn in sections:
        if name not in only:
            continue
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
    default = str(pathlib.Path(os.environ["OUT"]) / "relu_gpu.json") if os.environ.get("OUT") else "relu_gpu.json"
    unknown = set(sys.argv[2:]) - set(SECTIONS)
    if unknown:
        sys.exit(f"unknown sections {sorted(unknown)}; known: {SECTIONS}")
    main(sys.argv[1] if len(sys.argv) > 1 else default, tuple(sys.argv[2:]) or SECTIONS)
