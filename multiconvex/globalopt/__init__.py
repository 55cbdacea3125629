"""Global optimality for parallel-subnetwork models (THEORY.md §4, Haeffele & Vidal).

- :mod:`.certificate` — :class:`GlobalCertificate`: polar value or interval, λ, stationarity, and the
  proven lower bound on the global optimum from the convex dual (:func:`dual_lower_bound`)
- :mod:`.grow` — the meta-algorithm :func:`grow` (local descent, rescaling, append subnetworks along
  polar maximisers, certify)
- :mod:`.rescale` — the null-space rescaling step
- :mod:`.mf_polar` — the exact polar of matrix factorization (top singular value, no full SVD)
- :mod:`.deflated_bound` — a proven bound on σ_max from an estimated top subspace (no n × n Gram matrix)
- :mod:`.mf_expanded` — the factorization objective from its expansion, with a proven rounding bound
- :mod:`.mf_problem`, :mod:`.relu_problem` — the model-specific sides of :func:`grow`
- :mod:`.relu_polar`, :mod:`.relu_convex`, :mod:`.patterns` — the two-layer ReLU polar over activation
  patterns and the convex reformulation (loaded on first use); the polar's parts:
  :mod:`.pattern_programs` (one pattern's program), :mod:`.polar_inputs` (checks, ``patterns=``),
  :mod:`.polar_search` (local search, a lower bound), :mod:`.polar_relaxation` (SDP relaxation and
  branch and bound, an upper bound)

The estimators users call are :class:`multiconvex.models.MatrixFactorization` (``algorithm="grow"``)
and :class:`multiconvex.models.ParallelReLUNetwork`.
"""

import importlib

from .certificate import GlobalCertificate, dual_lower_bound, make_certificate
from .grow import GrowOptions, LocalDescent, PolarInfo, SubnetworkProblem, grow
from .mf_polar import MFPolar, mf_polar
from .rescale import RescaleStep, null_combination, rescale

_LAZY = {"relu_polar": ".relu_polar", "PolarResult": ".relu_polar",
         "convex_relu_regression": ".relu_convex", "two_layer_objective": ".relu_convex"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["GlobalCertificate", "dual_lower_bound", "make_certificate", "GrowOptions", "LocalDescent", "PolarInfo",
           "SubnetworkProblem", "grow", "MFPolar", "mf_polar", "RescaleStep", "null_combination", "rescale",
           "relu_polar", "PolarResult", "convex_relu_regression", "two_layer_objective"]
