"""The model zoo: ready multi-convex models that fit like estimators and hand back their cvxpy form.

Each data model is a scikit-learn estimator (``BaseEstimator`` with the right mixins; its
hyper-parameters, ``algorithm``, ``solver``, ``max_iter``, ``tol`` included, in the constructor);
``fit(...)`` calls :func:`multiconvex.solve` (or a driver) and returns self, learned state ends in ``_``
(``result_`` is the full :class:`multiconvex.Result`), and ``to_cvxpy(...)``
returns a `CvxpyModel` (problem, blocks, variables by name).

- `MatrixFactorization` and its convex ground truth `svt_optimum` (THEORY.md §4)
- `NonnegativeMatrixFactorization`
- `SingleReLUNeuron`, the R&R §8 counterexample (THEORY.md §2)
- `BilinearProgram`, alternating LPs to a partial minimum
- `ParallelReLUNetwork`, parallel ReLU subnetworks grown until the polar certificate holds (THEORY.md §4)
- `ReLURegressor`, `ReLUClassifier` (scikit-learn's MLP shape) and the general `ReLUNetwork`: layer blocks
  built in torch, GD/SGD/Adam baselines, certificates (THEORY.md §1–3, §5)
- `datasets`: offline, standardised data (scikit-learn's bundled sets, synthetic generators)
"""

from . import datasets
from ._base import CvxpyModel
from .bilinear import BilinearProgram
from .matrix_factorization import MatrixFactorization, svt_optimum
from .nmf import NonnegativeMatrixFactorization
from .parallel_relu import ParallelReLUNetwork
from .relu_estimators import ReLUClassifier, ReLURegressor
from .relu_network import ReLUNetwork
from .single_neuron import SingleReLUNeuron

__all__ = [
    "BilinearProgram",
    "datasets",
    "CvxpyModel",
    "MatrixFactorization",
    "NonnegativeMatrixFactorization",
    "ParallelReLUNetwork",
    "ReLUClassifier",
    "ReLUNetwork",
    "ReLURegressor",
    "SingleReLUNeuron",
    "svt_optimum",
]
