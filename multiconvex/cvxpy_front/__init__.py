"""The cvxpy front end: problems, blocks, pieces and the ``multiconvex`` solve method."""

from .atoms import relu
from .blocks import find_blocks, interaction_graph, is_multiconvex
from .form import CvxpyForm
from .solve import last_result, register, solve

__all__ = ["relu", "find_blocks", "interaction_graph", "is_multiconvex", "CvxpyForm", "solve", "last_result",
           "register"]
