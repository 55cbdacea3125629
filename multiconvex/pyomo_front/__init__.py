"""The Pyomo front end: ``SolverFactory("multiconvex")``, ReLU relations, blocks as matrices or sub-models.

Importing this package registers ``"multiconvex"`` with Pyomo's legacy and new solver factories
(:func:`register`, idempotent). ``import multiconvex`` imports it as soon as ``pyomo.environ`` is
imported, so a Pyomo user needs nothing more than ``import multiconvex``.
"""

from .form import PyomoForm
from .networks import PyomoModel, relu_network_model, set_consistent_activations
from .relations import ReLURelation
from .solver import LegacyMulticonvexSolver, MulticonvexConfig, MulticonvexSolver, register

register()

__all__ = ["PyomoForm", "PyomoModel", "relu_network_model", "set_consistent_activations", "ReLURelation",
           "MulticonvexSolver", "LegacyMulticonvexSolver", "MulticonvexConfig", "register"]
