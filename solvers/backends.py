"""The cvxpy-reachable backends, gathered: one module per backend, one small class each.

Each class is data plus, for the commercial solvers, licence detection and error translation:

- :mod:`.clarabel_backend`, :mod:`.osqp_backend`, :mod:`.scs_backend`, :mod:`.ecos_backend`,
  :mod:`.highs_backend` (with :func:`silence_highs_banner`), :mod:`.scip_backend`,
  :mod:`.ipopt_backend` — open-source, no licence;
- :mod:`.gurobi_backend`, :mod:`.mosek_backend` — licence detection and translation of licence errors.

The matrix-level backends live in their own modules too (:mod:`.lstsq`, :mod:`.clarabel_native`,
:mod:`.daqp_qp`, :mod:`.proxqp_qp`); :mod:`.registry` holds every backend by name.
"""

from .clarabel_backend import ClarabelBackend
from .ecos_backend import EcosBackend
from .gurobi_backend import GurobiBackend
from .highs_backend import HighsBackend, silence_highs_banner
from .ipopt_backend import IpoptBackend
from .mosek_backend import MosekBackend
from .osqp_backend import OsqpBackend
from .scip_backend import ScipBackend
from .scs_backend import ScsBackend

__all__ = [
    "ClarabelBackend",
    "OsqpBackend",
    "ScsBackend",
    "EcosBackend",
    "HighsBackend",
    "GurobiBackend",
    "MosekBackend",
    "ScipBackend",
    "IpoptBackend",
    "silence_highs_banner",
]
