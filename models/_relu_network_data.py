"""How a ReLU network estimator reads its architecture and targets from the data (scikit-learn style).

`ReLUData` is the part of :class:`~multiconvex.models.ReLUNetwork` that turns ``(X, y)`` into torch
tensors: ``validate_data`` (``n_features_in_``, ``feature_names_in_``), the loss (given, or chosen by
the number of classes), the layer sizes (``hidden_layer_sizes`` plus the input and output sizes the
data call for, or the deprecated full ``sizes``), ``classes_`` and the one-hot / ±1 targets.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from sklearn.utils._tags import ClassifierTags, RegressorTags
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import column_or_1d

from multiconvex.errors import InvalidInputError
from multiconvex.globalopt.checks import check_scalar
from multiconvex.nets import ACTIVATIONS, LOSSES, Architecture, resolve_device
from multiconvex.nets.network import DTYPE, as_flag
from multiconvex.validation import check_random_state

from ._base import DEPRECATED, Estimator, NotFittedError

__all__ = ["ReLUData", "check_hidden_sizes", "is_classification"]


def check_hidden_sizes(value, where: str, *, allow_empty: bool = True,
                       example: str = "the widths of the hidden layers, e.g. (16, 16)") -> tuple[int, ...]:
    """``hidden_layer_sizes`` as a tuple of positive ints (an int is one layer); bools and floats refused."""
    h = (value,) if isinstance(value, numbers.Integral) and not isinstance(value, bool) else value
    try:
        hidden = tuple(h)
    except TypeError:
        hidden = (0,)
    if (not hidden and not allow_empty) or not all(
            isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 1 for s in hidden):
        kind = "a sequence" if allow_empty else "a non-empty sequence"
        raise InvalidInputError(f"{where}: hidden_layer_sizes must be {kind} of positive ints ({example}), got "
                                f"{value!r}.")
    return tuple(int(s) for s in hidden)


def is_classification(est) -> bool:
    """Whether ``est`` (a `ReLUData`) is a classifier: any loss but ``"squared"``."""
    return est._loss_param() != "squared"


class ReLUData(Estimator):
    """Architecture, device and targets of a ReLU network estimator, read from its parameters and data.

    Subclasses define the parameters (``hidden_layer_sizes``, ``weight_decay``, ``activation``,
    ``negative_slope``, ``bias``, ``device``, ``random_state``; optionally ``loss``, ``sizes``, ``seed``)
    and may fix the loss by overriding `_loss_param`.
    """

    def _loss_param(self) -> str:
        """The loss asked for: a name in LOSSES, or "auto" (by the number of classes)."""
        return self.loss

    def _given_sizes(self) -> tuple[int, ...] | None:
        """The deprecated full ``sizes`` when the user passed them (with a FutureWarning), else None."""
        sizes = getattr(self, "sizes", DEPRECATED)
        if isinstance(sizes, str) and sizes == DEPRECATED:
            return None
        name = type(self).__name__
        warnings.warn(f"{name}(sizes=[d, n_1, ..., n_out]) is deprecated and will be removed in the next "
                      f"release; use {name}(hidden_layer_sizes=[n_1, ...]): the input and output sizes are "
                      "read from the data.", FutureWarning, stacklevel=4)
        ok = isinstance(sizes, (list, tuple, np.ndarray)) and len(sizes) >= 2 and all(
            isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 1 for s in sizes)
        if not ok:
            raise InvalidInputError(f"{name}: sizes must be a list [d, n_1, ..., n_out] of positive ints, "
                                    f"got {sizes!r}.")
        return tuple(int(s) for s in sizes)

    def _random_state(self, where: str) -> int | None:
        seed = getattr(self, "seed", DEPRECATED)
        value = self.random_state if isinstance(seed, str) and seed == DEPRECATED else self._renamed(
            "seed", "random_state")
        return check_random_state(value, "random_state", where=where)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        if is_classification(self):
            tags.estimator_type = "classifier"
            tags.classifier_tags = ClassifierTags(multi_class=self._loss_param() != "logistic")
        else:
            tags.estimator_type = "regressor"
            tags.regressor_tags = RegressorTags()
            tags.target_tags.multi_output = True
        return tags

    # -- configuration -------------------------------------------------------------------------
    def _hidden(self, where: str) -> tuple[int, ...]:
        return check_hidden_sizes(self.hidden_layer_sizes, where)

    def _arch(self, where: str, sizes: Sequence[int] | None = None, loss: str | None = None) -> Architecture:
        """The architecture: ``sizes``/``loss`` when given, else the fitted ones, else the deprecated
        ``sizes`` parameter (an unfitted network without it has no architecture yet)."""
        if sizes is None:
            if hasattr(self, "sizes_"):
                sizes, loss = self.sizes_, self.loss_
            else:
                sizes = self._given_sizes()
                if sizes is None:
                    raise NotFittedError(f"{where}: the input and output sizes are read from the data: call "
                                         "fit(X, y) first.")
        loss = self._loss_param() if loss is None else loss
        if loss not in LOSSES:
            raise InvalidInputError(f"{where}: loss={loss!r}; use one of {', '.join(LOSSES)}.")
        if self.activation not in ACTIVATIONS:
            raise InvalidInputError(f"{where}: activation={self.activation!r}; use one of {', '.join(ACTIVATIONS)}.")
        if loss == "logistic" and sizes[-1] != 1:
            raise InvalidInputError(f"{where}: logistic loss needs one output, got sizes[-1]={sizes[-1]}.")
        check_scalar(self.weight_decay, name="weight_decay", where=where)
        slope = check_scalar(self.negative_slope, name="negative_slope", where=where) \
            if self.activation == "leaky_relu" else 0.0
        return Architecture(tuple(sizes), loss, self.activation, slope, as_flag(self.bias, "bias", where=where))

    def _device(self, where: str | None = None) -> torch.device:
        try:
            return resolve_device(self.device)
        except InvalidInputError as exc:  # the message names the estimator's call when it is known
            if where is None:
                raise
            raise InvalidInputError(f"{where}: {exc}") from exc

    def _fit_shape(self, X: np.ndarray, y: np.ndarray, where: str) -> tuple[tuple[int, ...], str]:
        """Resolve (and store) the architecture and, for classification, ``classes_``, from the data."""
        loss = self._loss_param()
        if loss == "squared":
            n_out = 1 if y.ndim == 1 else y.shape[1]
        else:
            self.classes_ = np.unique(y)
            if len(self.classes_) < 2:
                raise InvalidInputError(f"{where}: y has 1 class ({self.classes_[0]!r}); a classifier needs at "
                                        "least 2 classes.")
            if loss == "auto":
                loss = "logistic" if len(self.classes_) == 2 else "softmax"
            if loss == "logistic" and len(self.classes_) != 2:
                raise InvalidInputError(f"{where}: y has {len(self.classes_)} classes; logistic loss takes exactly 2: "
                                        "use loss='softmax'.")
            n_out = 1 if loss == "logistic" else len(self.classes_)
        given = self._given_sizes()
        if given is None:
            sizes = (X.shape[1], *self._hidden(where), n_out)
        else:
            sizes = given
            if X.shape[1] != sizes[0]:
                raise InvalidInputError(f"{where}: X has {X.shape[1]} features, the network takes "
                                        f"sizes[0]={sizes[0]}.")
            if loss == "squared" and n_out != sizes[-1]:
                raise InvalidInputError(f"{where}: y has {n_out} columns, the network has sizes[-1]={sizes[-1]} "
                                        "outputs.")
            if loss == "softmax" and n_out > sizes[-1]:
                raise InvalidInputError(f"{where}: y has {len(self.classes_)} classes; softmax loss with "
                                        f"sizes[-1]={sizes[-1]} takes {sizes[-1]}.")
        self._arch(where, sizes, loss)  # validate before storing
        self.sizes_, self.loss_ = tuple(int(s) for s in sizes), loss
        return self.sizes_, loss

    def _tensors(self, X, y, where: str, fit: bool):
        """``(arch, X, targets)`` as torch tensors on the device; ``fit=True`` (or an unfitted network)
        reads the architecture and classes from ``(X, y)`` and stores them (``sizes_``, ``classes_``)."""
        learn = fit or not hasattr(self, "coefs_")
        if y is None and not fit:
            X = self._validate_data(X, reset=False, where=where)
            arch = self._arch(where)
            return arch, torch.as_tensor(X, dtype=DTYPE, device=self._device()), None
        classification = is_classification(self) if learn else self.loss_ != "squared"
        if classification:
            X, y = self._validate_data(X, y, reset=learn, where=where, dtype=(np.float64, None))
            X = np.asarray(X, dtype=np.float64)
            try:
                check_classification_targets(y)
            except ValueError as exc:
                raise InvalidInputError(f"{where}: {exc}") from exc
            y = column_or_1d(y, warn=True)
        else:
            X, y = self._validate_data(X, y, reset=learn, where=where, multi_output=True, y_numeric=True)
        if learn:
            sizes, loss = self._fit_shape(X, y, where)
            arch = self._arch(where, sizes, loss)
        else:
            arch = self._arch(where)
        dev = self._device()
        Xt = torch.tensor(X, dtype=DTYPE, device=dev)  # a copy: X may be read-only (memmap)
        if arch.loss == "squared":
            if np.asarray(y).dtype.kind not in "biuf":
                raise InvalidInputError(f"{where}: y holds {np.asarray(y).dtype} values, not numbers: squared loss "
                                        "regresses numbers (for class labels use ReLUClassifier, or loss='softmax').")
            T = y.reshape(len(y), -1).astype(float)
            if T.shape[1] != arch.sizes[-1]:
                raise InvalidInputError(f"{where}: y has {T.shape[1]} columns, the network has "
                                        f"{arch.sizes[-1]} outputs.")
        else:
            unknown = ~np.isin(y, self.classes_)
            if unknown.any():
                raise InvalidInputError(f"{where}: y has labels not seen in fit: {np.unique(y[unknown])[:5]}.")
            if arch.loss == "logistic":
                T = np.where(y == self.classes_[1], 1.0, -1.0).reshape(-1, 1)
            else:
                T = np.zeros((len(y), arch.sizes[-1]))
                T[np.arange(len(y)), np.searchsorted(self.classes_, y)] = 1.0
        return arch, Xt, torch.as_tensor(T, dtype=DTYPE, device=dev)

