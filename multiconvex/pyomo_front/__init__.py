"""The Pyomo front end: ``SolverFactory("multiconvex")``, ReLU relations, blocks as matrices or sub-models."""

from .form import PyomoForm
from .networks import PyomoModel, relu_network_model, set_consistent_activations
from .relations import ReLURelation
from .solver import LegacyMulticonvexSolver, MulticonvexConfig, MulticonvexSolver, register

__all__ = ["PyomoForm", "PyomoModel", "relu_network_model", "set_consistent_activations", "ReLURelation",
           "MulticonvexSolver", "LegacyMulticonvexSolver", "MulticonvexConfig", "register"]
