"""ReLU relations for Pyomo models: ``output = max(input, 0)`` as a piece marker.

A :class:`ReLURelation` ties an output variable to an affine input expression.
It is not a constraint a solver sees: in every block subproblem it is fixed to
its current piece — ``output = input, input ≥ 0`` (alive) or ``output = 0,
input ≤ 0`` (dead) — through mutable parameters, so each subproblem stays convex.

Examples
--------
>>> import pyomo.environ as pyo
>>> from multiconvex.pyomo_front import ReLURelation
>>> m = pyo.ConcreteModel()
>>> m.z, m.a = pyo.Var([0, 1]), pyo.Var([0, 1])
>>> m.act = ReLURelation([0, 1], rule=lambda b, i: b.set(m.a[i], m.z[i]))
>>> m.act[1].output is m.a[1]
True
"""

from __future__ import annotations

from pyomo.core.base.block import BlockData, declare_custom_block
from pyomo.core.base.var import VarData


@declare_custom_block(name="ReLURelation", new_ctype=True)
class ReLURelationData(BlockData):
    """One relation ``output = max(input, 0)``; set it with :meth:`set`."""

    def set(self, output: VarData, input) -> None:  # noqa: A002 - the relation's own word
        """Tie ``output`` (a variable) to ``max(input, 0)`` (``input`` an affine expression)."""
        if not isinstance(output, VarData):
            from ..errors import InvalidInputError

            raise InvalidInputError(
                f"ReLURelation {self.name}: the output must be a single Pyomo variable, got {type(output).__name__}.")
        # object.__setattr__: a Block's own __setattr__ would try to adopt a component (a scalar Var) as a
        # sub-component of this relation and fail because it already belongs to the model
        object.__setattr__(self, "_mc_output", output)
        object.__setattr__(self, "_mc_input", input)

    @property
    def output(self) -> VarData:
        return self._mc_output

    @property
    def input(self):
        return self._mc_input

    def is_set(self) -> bool:
        return hasattr(self, "_mc_output")
