"""What a benchmark ran on: machine, CPU, GPU, Python and the versions that matter."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import socket
from functools import lru_cache

#: Distributions whose versions every record carries.
PACKAGES = ("multiconvex", "cvxpy", "numpy", "scipy", "torch", "scikit-learn", "clarabel", "osqp", "scs", "ecos",
            "highspy", "gurobipy", "mosek", "PySCIPOpt", "dask", "distributed")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpu() -> str | None:
    try:
        import torch  # lazy and optional: the GPU line is informational; torch takes ~0.7 s to import

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except Exception:  # noqa: BLE001 - informational
        pass
    return None


@lru_cache(maxsize=1)
def environment() -> dict:
    """The environment of this process (cached): host, CPU, GPU, Python, package versions, thread limits."""
    versions = {}
    for dist in PACKAGES:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    try:
        from threadpoolctl import threadpool_info  # lazy and optional: informational, recorded when present

        blas = sorted({f"{i.get('internal_api')}:{i.get('num_threads')}" for i in threadpool_info()})
    except Exception:  # noqa: BLE001
        blas = []
    return {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "gpu": _gpu(),
        "threadpools": blas,
        "versions": versions,
    }
