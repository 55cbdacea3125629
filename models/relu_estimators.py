"""`ReLURegressor` and `ReLUClassifier`: :class:`~multiconvex.models.ReLUNetwork` with the loss fixed, shaped
like scikit-learn's ``MLPRegressor`` / ``MLPClassifier`` (hidden widths in; input and output sizes, and
for classification the loss, read from the data)."""

from __future__ import annotations

from collections.abc import Sequence

from sklearn.base import ClassifierMixin, RegressorMixin

from .relu_network import ReLUNetwork

__all__ = ["ReLUClassifier", "ReLURegressor"]


class _FixedLossReLU(ReLUNetwork):
    """`ReLUNetwork`'s parameters without ``loss`` and the deprecated spellings: the loss comes from the
    subclass (:meth:`_loss_param`), the sizes from the data."""

    def __init__(self, hidden_layer_sizes: Sequence[int] = (16,), *, weight_decay: float = 1e-4,
                 activation: str = "relu", negative_slope: float = 0.01, bias: bool = True,
                 algorithm: str = "gauss-seidel", solver: str | Sequence[str] = "auto", max_iter: int = 100,
                 tol: float = 1e-6, time_limit: float | None = None, random_state: int | None = None,
                 warm_start: bool = False, device: str = "auto", lr: float | None = None,
                 batch_size: int | str | None = "auto", block_iters: int = 1000):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.weight_decay = weight_decay
        self.activation = activation
        self.negative_slope = negative_slope
        self.bias = bias
        self.algorithm = algorithm
        self.solver = solver
        self.max_iter = max_iter
        self.tol = tol
        self.time_limit = time_limit
        self.random_state = random_state
        self.warm_start = warm_start
        self.device = device
        self.lr = lr
        self.batch_size = batch_size
        self.block_iters = block_iters


class ReLURegressor(RegressorMixin, _FixedLossReLU):
    """A ReLU network regressor (squared loss, any number of outputs), like ``MLPRegressor``.

    Parameters are those of `ReLUNetwork` without ``loss`` (always ``"squared"``) and the
    deprecated spellings.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from multiconvex.models import ReLURegressor
    >>> X = np.random.default_rng(0).standard_normal((40, 3)); y = np.abs(X[:, 0]) - X[:, 1]
    >>> model = make_pipeline(StandardScaler(), ReLURegressor([4], weight_decay=1e-2, random_state=0))
    >>> model.fit(X, y).score(X, y) > 0.5
    True
    """

    def _loss_param(self) -> str:
        return "squared"


class ReLUClassifier(ClassifierMixin, _FixedLossReLU):
    """A ReLU network classifier, like ``MLPClassifier``: logistic loss (one output) for two classes,
    softmax cross-entropy (one output per class) for more; any label type.

    Parameters are those of `ReLUNetwork` without ``loss`` and the deprecated spellings.

    Examples
    --------
    >>> import numpy as np
    >>> from multiconvex.models import ReLUClassifier
    >>> X = np.random.default_rng(0).standard_normal((40, 2)); y = np.where(X[:, 0] > X[:, 1], "a", "b")
    >>> clf = ReLUClassifier([3], weight_decay=1e-3, max_iter=20, random_state=0).fit(X, y)
    >>> clf.loss_, clf.score(X, y) > 0.9
    ('logistic', True)
    """

    def _loss_param(self) -> str:
        return "auto"
