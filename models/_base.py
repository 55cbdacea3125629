"""What every model in the zoo shares: the cvxpy hand-back and the estimator manners.

`CvxpyModel` is what ``to_cvxpy`` returns: the problem, its blocks, and the variables by name.
`Estimator` is :class:`sklearn.base.BaseEstimator` (``get_params`` / ``set_params`` / ``clone`` /
tags / ``repr`` from the constructor signature) plus what the zoo adds: input validation that raises
:class:`~multiconvex.errors.InvalidInputError`, `NotFittedError`, and the one-release deprecation
path of renamed parameters (``seed`` → ``random_state``, fit-time ``solver=`` → the constructor's).
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import cvxpy as cp
import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.exceptions import NotFittedError as SklearnNotFittedError
from sklearn.utils.validation import check_is_fitted, validate_data

import multiconvex as mc  # at call time: the core may import the model zoo
from multiconvex.errors import InvalidInputError
from multiconvex.nets.baselines import GRADIENT_ALGORITHMS
from multiconvex.result import LimitWords

__all__ = ["CvxpyModel", "DEPRECATED", "Estimator", "NotFittedError", "solve_model", "unchanged_on_error"]

#: Default of a renamed constructor parameter: tells "not given" from any value the user may pass.
DEPRECATED = "deprecated"


def unchanged_on_error(fit):
    """``fit`` that leaves the estimator as it was when it raises: a refused refit (parameters, solver, device,
    warm start) changes no attribute, as scikit-learn's MLP keeps its state when a warm start is refused."""

    @functools.wraps(fit)
    def guarded(self, *args, **kwargs):
        saved = dict(vars(self))
        try:
            return fit(self, *args, **kwargs)
        except BaseException:
            vars(self).clear()
            vars(self).update(saved)
            raise

    return guarded


def warn_unconverged(estimator: Any, result: Any, stacklevel: int = 3) -> None:
    """scikit-learn's ``ConvergenceWarning`` when a fit stopped at ``max_iter`` or ``time_limit`` (as ``MLP*`` and
    ``NMF`` warn at their ``max_iter``), or stalled without a certificate: the returned point is the best so far,
    its certificate in ``result_.certificate``."""
    if result.status == "stalled":  # the run's message says why; a gradient run's own stop (grad_tol, or no descent
        # left at a gradient of rounding size: info["stop"]) is no warning; an L-BFGS run stopped at a kink is one
        own_stop = (getattr(result, "algorithm", None) in GRADIENT_ALGORITHMS
                    and (getattr(result, "info", None) or {}).get("stop") in ("grad_tol", "rounding"))
        if not own_stop:
            warnings.warn(f"{type(estimator).__name__}: the fit ended stalled ({result.message}); its end point is "
                          "not certified (result_.certificate).", ConvergenceWarning, stacklevel=stacklevel)
        return
    if result.status in ("iteration_limit", "time_limit"):
        # the message names the estimator's own parameters (the fit hands its words to the run: LimitWords)
        hybrid = "+" in str(getattr(estimator, "algorithm", ""))
        params = estimator.get_params(deep=False)
        if getattr(result, "algorithm", None) == "grow":  # grow's iteration limit is its rounds of growing
            limits = ("max_rounds" if "max_rounds" in params else "fit's max_rounds") + " or time_limit"
        elif "max_iter" not in params:  # fit's keywords go to mc.solve (BilinearProgram)
            limits = "fit's max_iters or time_limit"
        else:
            limits = "max_iter, block_iters or time_limit" if hybrid else "max_iter or time_limit"
        warnings.warn(f"{type(estimator).__name__}: the fit ended {result.status} ({result.message}) without a "
                      f"certified end point; increase {limits} (result_.certificate has the block gaps at the returned "
                      "point).",
                      ConvergenceWarning, stacklevel=stacklevel)


class NotFittedError(SklearnNotFittedError, InvalidInputError):
    """A fitted-state method called before ``fit``: scikit-learn's ``NotFittedError`` (what its tools
    catch) and multiconvex's ``InvalidInputError`` (what this package raised before)."""


@dataclass
class CvxpyModel:
    """A model written as a cvxpy problem, with its blocks.

    Attributes
    ----------
    problem : cvxpy.Problem
        The (multi-convex, not DCP) problem; hand it to :func:`multiconvex.solve`.
    blocks : list of list of cvxpy.Variable
        The block structure: each inner list is one block, convex when the
        others are fixed.
    variables : dict of str to cvxpy.Variable
        The variables by name (the same names the variables carry in cvxpy).

    Examples
    --------
    >>> from multiconvex.models import MatrixFactorization
    >>> import numpy as np
    >>> cm = MatrixFactorization(n_components=2, lam=0.1).to_cvxpy(np.ones((4, 3)))
    >>> [[v.name() for v in b] for b in cm.blocks]
    [['U'], ['V']]
    """

    problem: cp.Problem
    blocks: list[list[cp.Variable]]
    variables: dict[str, cp.Variable] = field(default_factory=dict)

    def set_values(self, values: Mapping[str, Any], *, where: str) -> None:
        """Set the variables' ``.value`` from a mapping name -> array.

        Raises
        ------
        InvalidInputError
            On an unknown name, a wrong shape, or NaN/inf values.
        """
        for name, value in values.items():
            if name not in self.variables:
                raise InvalidInputError(
                    f"{where}: init names unknown variable {name!r}; "
                    f"the variables are {sorted(self.variables)}."
                )
            var = self.variables[name]
            arr = np.asarray(value, dtype=float)
            if arr.shape != var.shape:
                raise InvalidInputError(
                    f"{where}: init[{name!r}] has shape {arr.shape}, expected {var.shape}."
                )
            if not np.all(np.isfinite(arr)):
                raise InvalidInputError(f"{where}: init[{name!r}] contains NaN or inf.")
            try:
                var.value = arr
            except ValueError as exc:  # e.g. negative value for a nonneg variable
                raise InvalidInputError(f"{where}: init[{name!r}] rejected: {exc}") from exc


class Estimator(BaseEstimator):
    """scikit-learn's ``BaseEstimator`` with the zoo's validation, fitted checks and deprecations."""

    # -- input validation ------------------------------------------------------------------------
    def _validate_data(self, X: Any, y: Any = "no_validation", *, reset: bool, where: str, **check_params: Any):
        """:func:`sklearn.utils.validation.validate_data` (sets ``n_features_in_`` and
        ``feature_names_in_`` when ``reset``; checks them otherwise), float64 by default, its
        ``ValueError`` re-raised as :class:`InvalidInputError` prefixed with ``where``."""
        check_params.setdefault("dtype", np.float64)
        try:
            return validate_data(self, X, y, reset=reset, **check_params)
        except InvalidInputError:
            raise
        except ValueError as exc:
            raise InvalidInputError(f"{where}: {exc}") from exc

    def _check_fitted(self, attr: str) -> None:
        """Raise `NotFittedError` (scikit-learn's, and an InvalidInputError) unless ``attr`` is set."""
        try:
            check_is_fitted(self, attr)
        except SklearnNotFittedError:
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet; call fit(...) first.") from None

    # -- renamed parameters (kept for one release) -------------------------------------------------
    def _renamed(self, old: str, new: str) -> Any:
        """The value of constructor parameter ``new``, or of its deprecated spelling ``old`` (with a
        FutureWarning naming the replacement) when the user passed that one."""
        old_value = getattr(self, old)
        if isinstance(old_value, str) and old_value == DEPRECATED:
            return getattr(self, new)
        name = type(self).__name__
        default = inspect.signature(type(self).__init__).parameters[new].default
        if getattr(self, new) is not default and getattr(self, new) != default:
            raise InvalidInputError(f"{name}: got both {old}={old_value!r} (deprecated) and {new}="
                                    f"{getattr(self, new)!r}; pass only {new}.")
        warnings.warn(f"{name}({old}=...) is deprecated and will be removed in the next release; "
                      f"use {name}({new}=...).", FutureWarning, stacklevel=3)
        return old_value

    def _fit_time_params(self, kwargs: dict[str, Any], renames: Mapping[str, str]) -> dict[str, Any]:
        """The constructor's values of ``renames.values()``, overridden (with a FutureWarning) by the
        deprecated fit-time spellings ``renames.keys()`` popped from ``kwargs``."""
        name = type(self).__name__
        params = {new: getattr(self, new) for new in renames.values()}
        for old, new in renames.items():
            if old in kwargs:
                warnings.warn(f"{name}.fit({old}=...) is deprecated and will be removed in the next release; "
                              f"pass {name}({new}=...) (a constructor parameter, so GridSearchCV can tune it).",
                              FutureWarning, stacklevel=3)
                params[new] = kwargs.pop(old)
        return params

    # -- one seed per fit ---------------------------------------------------------------------------
    def _pin_seed(self, where: str) -> None:
        """Resolve ``random_state`` once for this fit (a ``RandomState``/``Generator`` is drawn from once, as a
        scikit-learn estimator draws once per fit): every :meth:`_random_state` call of the fit, and of the fitted
        model's later calls (its certificate), gives that seed, until the next fit or ``set_params``."""
        self.__dict__.pop("_pinned_seed", None)
        self._pinned_seed = (self._random_state(where),)

    def _pinned(self) -> tuple[int | None] | None:
        """The seed :meth:`_pin_seed` resolved, as a 1-tuple; ``None`` before a fit."""
        return self.__dict__.get("_pinned_seed")

    def set_params(self, **params: Any):
        self.__dict__.pop("_pinned_seed", None)  # a new random_state is read afresh
        return super().set_params(**params)

    def _warn_unconverged(self, result: Any) -> None:
        warn_unconverged(self, result, stacklevel=4)  # this method, fit, its caller

    # -- fitting through mc.solve ----------------------------------------------------------------
    def _fit_model(self, model: CvxpyModel, *, default_init: Mapping[str, np.ndarray], init: Any,
                   solve_kwargs: dict[str, Any], where: str) -> CvxpyModel:
        """Solve ``model`` (see :func:`solve_model`) and store the state every model learns."""
        # an estimator with a max_iter parameter hands it to mc.solve as max_iters: the messages say its name
        words = LimitWords("max_iter") if "max_iter" in self.get_params(deep=False) else None
        result = solve_model(model, default_init=default_init, init=init, solve_kwargs=solve_kwargs, where=where,
                             words=words)
        self.result_ = result
        self._warn_unconverged(result)
        self.cvxpy_model_ = model
        self.objective_ = float(result.objective)
        self.n_iter_ = int(result.iterations)
        return model


def solve_model(
    model: CvxpyModel,
    *,
    default_init: Mapping[str, np.ndarray],
    init: Any,
    solve_kwargs: dict[str, Any],
    where: str,
    words: LimitWords | None = None,
):
    """Set starting values and call :func:`multiconvex.solve` on ``model`` (its messages name the limits by
    ``words``: an estimator's own parameter names; ``None``: ``mc.solve``'s).

    ``init=None`` starts from ``default_init`` (the model's seeded start). A
    mapping from variable names to arrays overrides those names and keeps the
    seeded start for the rest. Anything else is passed through unchanged as
    ``mc.solve(..., init=init)``.
    """
    if "blocks" in solve_kwargs:
        raise InvalidInputError(
            f"{where}: blocks are fixed by the model; use to_cvxpy(...) and "
            "multiconvex.solve(problem, blocks) to choose other blocks."
        )
    model.set_values(default_init, where=where)
    if init is not None:
        if isinstance(init, Mapping) and all(isinstance(k, str) for k in init):
            model.set_values(init, where=where)
        else:
            solve_kwargs = {**solve_kwargs, "init": init}
    return mc.solve(model.problem, model.blocks, **solve_kwargs, _words=words)
