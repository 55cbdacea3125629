import logging

import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def svt_value(Y: np.ndarray, lam: float) -> float:
    """Optimum of ½‖Y − X‖²_F + λ‖X‖_*: singular values soft-thresholded at λ (closed form)."""
    s = np.linalg.svd(Y, compute_uv=False)
    t = np.maximum(s - lam, 0.0)
    return float(0.5 * np.sum((s - t) ** 2) + lam * np.sum(t))


@pytest.fixture(autouse=True)
def _quiet_logs():
    logging.getLogger("multiconvex").setLevel(logging.WARNING)
    yield
