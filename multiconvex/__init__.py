"""multiconvex: train piecewise multi-convex models by iterated convex optimization.

Blocks of variables are optimised by convex subproblems on the current piece, handed
to the backend solver of your choice, and every result carries its certificate.

>>> import multiconvex as mc
>>> res = mc.solve(prob, blocks=[[U], [V]], algorithm="jacobi", solver="clarabel")  # doctest: +SKIP
>>> res.certificate.is_partial_minimum                                                # doctest: +SKIP

``import multiconvex`` loads cvxpy (the core's modeling layer) but neither Pyomo nor torch: the
Pyomo front end (:mod:`multiconvex.pyomo_front`, ``mc.ReLURelation``) is imported on first use, and
``SolverFactory("multiconvex")`` is registered with Pyomo as soon as ``pyomo.environ`` (or the new
interface's factory module) is imported, whether before or after ``multiconvex``
(``import multiconvex.pyomo_front`` registers explicitly).
The torch parts (:mod:`multiconvex.nets`, the ReLU-network models) load torch when imported.
"""

import importlib
import importlib.abc
import logging
import sys
from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("multiconvex")
except _metadata.PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"

from . import errors
from .cvxpy_front import find_blocks, is_multiconvex, last_result, relu, solve
from .cvxpy_front import register as _register_cvxpy
from .errors import (
    InvalidInputError,
    LicenceError,
    MulticonvexError,
    NotMulticonvexError,
    SolverFailure,
    SolverUnavailableError,
    UnknownSolverError,
)
from .result import Certificate, HistoryEntry, Result
from .subproblem import BlockSubproblem, KronTerm

logger = logging.getLogger("multiconvex")

#: Names served by :func:`__getattr__` (PEP 562): they live in the Pyomo front end, and importing it
#: costs Pyomo's import, which cvxpy-only users should not pay.
_LAZY = {"ReLURelation": ".pyomo_front", "pyomo_front": ".pyomo_front"}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(_LAZY[name], __name__)
    return module if name == "pyomo_front" else getattr(module, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))



def available_solvers():
    """Every backend in the registry: installed, licence state, version (see :mod:`multiconvex.solvers`)."""
    from .solvers import available_solvers as _available  # lazy: probing backends imports each installed one

    return _available()


def _register_pyomo() -> None:
    """Register ``"multiconvex"`` with Pyomo's solver factories (importing the Pyomo front end does it)."""
    try:
        importlib.import_module(".pyomo_front", __name__)
    except Exception as exc:  # a broken Pyomo install must not break the user's `import pyomo.environ`
        logger.warning("multiconvex could not register with Pyomo's SolverFactory: %s", exc)


class _RegisterAfterPyomo(importlib.abc.MetaPathFinder):
    """Import hook: once Pyomo's solver factories exist, register ``"multiconvex"`` with them.

    Pyomo (6.x) has no entry point for third-party solver plugins: a plugin registers when its module
    is imported. Importing the Pyomo front end here unconditionally would make every ``import
    multiconvex`` import Pyomo, so instead this finder waits for the user to import ``pyomo.environ``
    (or the new interface's ``pyomo.contrib.solver.common.factory`` on its own) and registers right
    after that module has executed. Module, spec and loader stay Pyomo's own; the finder removes
    itself once it has registered.
    """

    TRIGGERS = ("pyomo.environ", "pyomo.contrib.solver.common.factory")

    def find_spec(self, fullname, path, target=None):
        if fullname not in self.TRIGGERS:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        exec_module = loader.exec_module

        def exec_then_register(module):
            try:
                exec_module(module)
            finally:
                del loader.exec_module  # back to the loader class's own method
            # the factory module is also imported while pyomo.environ executes: wait for environ then
            if fullname == "pyomo.environ" or "pyomo.environ" not in sys.modules:
                if self in sys.meta_path:
                    sys.meta_path.remove(self)
                _register_pyomo()

        loader.exec_module = exec_then_register
        return spec


_register_cvxpy()
if "pyomo.environ" in sys.modules:
    _register_pyomo()
elif not any(isinstance(f, _RegisterAfterPyomo) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterAfterPyomo())

__all__ = [
    "solve", "find_blocks", "is_multiconvex", "relu", "ReLURelation", "last_result", "available_solvers",
    "Result", "Certificate", "HistoryEntry", "BlockSubproblem", "KronTerm", "errors", "MulticonvexError",
    "InvalidInputError",
    "NotMulticonvexError", "UnknownSolverError", "SolverUnavailableError", "LicenceError", "SolverFailure",
    "__version__",
]
