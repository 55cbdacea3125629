"""What every model in the zoo shares: the cvxpy hand-back and the estimator manners.

`CvxpyModel` is what ``to_cvxpy`` returns: the problem, its blocks, and the
variables by name. `Estimator` gives scikit-learn's ``get_params`` /
``set_params`` / ``repr`` from the constructor signature, so hyper-parameters
stay constructor arguments stored as given.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import cvxpy as cp
import numpy as np

import multiconvex as mc  # at call time: the core may import the model zoo
from multiconvex.errors import InvalidInputError

__all__ = ["CvxpyModel", "Estimator"]


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
    >>> cm = MatrixFactorization(rank=2, lam=0.1).to_cvxpy(np.ones((4, 3)))
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


class Estimator:
    """scikit-learn manners for the model zoo: parameters come from ``__init__``."""

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [
            p.name
            for p in sig.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor arguments as stored (scikit-learn convention)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any):
        """Set constructor arguments by name; returns self."""
        valid = set(self._param_names())
        for name, value in params.items():
            if name not in valid:
                raise InvalidInputError(
                    f"{type(self).__name__}.set_params: unknown parameter {name!r}; "
                    f"valid ones are {sorted(valid)}."
                )
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def _fit_model(self, model: CvxpyModel, *, default_init: Mapping[str, np.ndarray], init: Any,
                   solve_kwargs: dict[str, Any], where: str) -> CvxpyModel:
        """Solve ``model`` (see :func:`solve_model`) and store the state every model learns."""
        result = solve_model(model, default_init=default_init, init=init, solve_kwargs=solve_kwargs, where=where)
        self.result_ = result
        self.cvxpy_model_ = model
        self.objective_ = float(result.objective)
        self.n_iter_ = int(result.iterations)
        return model

    def _check_fitted(self, attr: str) -> None:
        if not hasattr(self, attr):
            raise InvalidInputError(
                f"This {type(self).__name__} is not fitted yet; call fit(...) first."
            )


def solve_model(
    model: CvxpyModel,
    *,
    default_init: Mapping[str, np.ndarray],
    init: Any,
    solve_kwargs: dict[str, Any],
    where: str,
):
    """Set starting values and call :func:`multiconvex.solve` on ``model``.

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
    return mc.solve(model.problem, model.blocks, **solve_kwargs)
