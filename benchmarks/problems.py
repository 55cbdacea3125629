"""The registry of benchmark problems: a model, data that ships offline, a size, a reference optimum.

Every problem is built from scikit-learn's bundled data sets or from seeded
synthetic data, so a case is rebuilt identically on any worker from its name
alone. An :class:`Instance` gives each method what it needs: a fresh cvxpy model
(ours, the DMCP-style loop), the start point for a seed (shared by every method),
the objective in numpy and torch (peers), and the reference optimum where one is
known (with where it comes from).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import cvxpy as cp
import numpy as np

import multiconvex as mc
from multiconvex.globalopt.relu_convex import convex_relu_regression, two_layer_objective
from multiconvex.solvers import get_backend

from .peers import bigm_miqp

__all__ = ["BenchProblem", "Instance", "PROBLEMS", "get_problem", "register"]


@dataclass
class Instance:
    """One problem, built: everything a method needs to run on it."""

    make: Callable[[], Any]  # -> multiconvex.models.CvxpyModel (fresh variables every call)
    start: Callable[[int], dict[str, np.ndarray]]  # seed -> start point by variable name
    objective: Callable[[dict[str, np.ndarray]], float]  # numpy objective at a point
    torch_objective: Callable[[dict[str, Any]], Any] | None = None  # torch objective (peers)
    nonneg: tuple[str, ...] = ()  # variables projected on >= 0 by gradient peers
    reference: float | None = None  # global optimum when known
    reference_note: str = ""
    max_iters: int = 100
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BenchProblem:
    """A registry entry.

    Attributes
    ----------
    name : str
        Unique name, used in case ids and reports.
    family : str
        ``factorization``, ``nmf``, ``neuron``, ``relu`` or ``bilinear``.
    size : str
        Human-readable size (data shape, rank, variables).
    classes : tuple of str
        Problem classes of the block subproblems (which backends can run them).
    peers : tuple of str
        Peer methods that apply (besides our ``gauss-seidel`` and ``jacobi``).
    build : callable
        ``() -> Instance``; deterministic.
    """

    name: str
    family: str
    description: str
    size: str
    classes: tuple[str, ...]
    peers: tuple[str, ...]
    build: Callable[[], Instance]


PROBLEMS: dict[str, BenchProblem] = {}


def register(problem: BenchProblem) -> BenchProblem:
    if problem.name in PROBLEMS:
        raise ValueError(f"benchmark problem {problem.name!r} registered twice")
    PROBLEMS[problem.name] = problem
    return problem


def get_problem(name: str) -> BenchProblem:
    if name not in PROBLEMS:
        raise KeyError(f"unknown benchmark problem {name!r}; known: {', '.join(PROBLEMS)}")
    return PROBLEMS[name]


@cache
def build(name: str) -> Instance:
    """The instance of a registered problem (cached per process)."""
    return get_problem(name).build()


# -- data ---------------------------------------------------------------------------------------
def _digits(samples: int) -> np.ndarray:
    from sklearn.datasets import load_digits  # lazy: scikit-learn takes ~0.5 s to import

    return load_digits().data[:samples] / 16.0


def _low_rank(m: int, n: int, rank: int, noise: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((m, rank)) @ rng.standard_normal((rank, n)) + noise * rng.standard_normal((m, n))


def _standardise(X: np.ndarray) -> np.ndarray:
    sd = X.std(axis=0)
    return (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


# -- families -------------------------------------------------------------------------------------
def _factorization(Y: np.ndarray, rank: int, lam: float, max_iters: int) -> Instance:
    import torch  # lazy: torch takes ~0.7 s to import

    from multiconvex.models import MatrixFactorization, svt_optimum  # lazy: the models import torch (~0.7 s)

    model = MatrixFactorization(n_components=rank, lam=lam)
    X_star, value = svt_optimum(Y, lam)
    svt_rank = int(np.linalg.matrix_rank(X_star, tol=1e-9 * max(1.0, np.abs(X_star).max())))
    if svt_rank > rank:  # the factorization optimum is then above the convex one: no reference
        reference, note = None, f"none (SVT rank {svt_rank} > factor rank {rank})"
    else:
        reference, note = value, f"SVT closed form (rank {svt_rank})"
    Yt = torch.as_tensor(Y)

    def torch_objective(v):
        U, V = v["U"], v["V"]
        return 0.5 * ((Yt - U @ V.T) ** 2).sum() + lam / 2 * ((U**2).sum() + (V**2).sum())

    def start(seed):
        return MatrixFactorization(n_components=rank, lam=lam, random_state=seed).initial_point(Y)

    return Instance(make=lambda: model.to_cvxpy(Y), start=start,
                    objective=lambda v: model.objective_at(Y, v["U"], v["V"]), torch_objective=torch_objective,
                    reference=reference, reference_note=note, max_iters=max_iters,
                    data={"Y": Y, "rank": rank, "lam": lam})


def _nmf(Y: np.ndarray, rank: int, alpha: float, max_iters: int) -> Instance:
    import torch  # lazy: torch takes ~0.7 s to import

    from multiconvex.models import NonnegativeMatrixFactorization  # lazy: the models import torch (~0.7 s)

    m, n = Y.shape  # scikit-learn's penalty scaling: alpha_W·n on W, alpha_H·m on H
    model = NonnegativeMatrixFactorization(rank, init="random", alpha_W=alpha / n, alpha_H=alpha / m)
    Yt = torch.as_tensor(Y)

    def torch_objective(v):
        W, H = v["W"], v["H"]
        return 0.5 * ((Yt - W @ H) ** 2).sum() + alpha / 2 * ((W**2).sum() + (H**2).sum())

    def start(seed):
        return NonnegativeMatrixFactorization(rank, init="random", alpha_W=alpha / n, alpha_H=alpha / m,
                                              random_state=seed).initial_point(Y)

    return Instance(make=lambda: model.to_cvxpy(Y), start=start,
                    objective=lambda v: model.objective_at(Y, v["W"], v["H"]), torch_objective=torch_objective,
                    nonneg=("W", "H"), reference=None, reference_note="none (NMF is NP-hard)",
                    max_iters=max_iters, data={"Y": Y, "rank": rank, "alpha": alpha})


def _neuron(alpha: float, basin: str | None) -> Instance:
    """R&R's single neuron; ``basin`` picks a start inside one local minimum's piece (else random)."""
    import torch  # lazy: torch takes ~0.7 s to import

    from multiconvex.models import SingleReLUNeuron  # lazy: the models import torch (~0.7 s)

    neuron = SingleReLUNeuron(alpha=alpha)
    x, y = neuron.dataset()
    (_, best) = neuron.global_minimum()
    minima = dict(zip(("bad", "good"), neuron.local_minima()))
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)

    def start(seed):
        rng = np.random.default_rng(seed)
        if basin is None:
            return SingleReLUNeuron(alpha=alpha, seed=seed).initial_point()
        (a, b), _ = minima[basin]  # a small seeded perturbation that stays in the same piece
        return {"a": np.asarray(a + 0.1 * rng.uniform(-1, 1)), "b": np.asarray(b + 0.1 * rng.uniform(-1, 1))}

    def torch_objective(v):
        return ((yt - torch.relu(v["a"] * xt + v["b"])) ** 2).sum()

    note = "best of the 8 sign-pattern QPs (global)"
    if basin:
        note += f"; start in the basin of the {basin} local minimum (value {minima[basin][1]:g})"
    return Instance(make=neuron.to_cvxpy, start=start, objective=lambda v: float(neuron.objective_at(v["a"], v["b"])),
                    torch_objective=torch_objective, reference=best, reference_note=note, max_iters=50,
                    data={"alpha": alpha})


def _relu_net(X: np.ndarray, y: np.ndarray, hidden: int, decay: float, max_iters: int) -> Instance:
    """One hidden layer, ``(1/n)‖w2ᵀ relu(W1 [X; 1]) − y‖² + decay (‖W1‖² + ‖w2‖²)``, written with ``mc.relu``."""
    import torch  # lazy: torch takes ~0.7 s to import

    from multiconvex.models import CvxpyModel  # lazy: the models import torch (~0.7 s)

    n = X.shape[0]
    Xa = np.vstack([X.T, np.ones(n)])  # (d + 1) x n: the bias is the last input
    Xt, yt = torch.as_tensor(Xa), torch.as_tensor(y)

    def make():
        W1 = cp.Variable((hidden, Xa.shape[0]), name="W1")
        w2 = cp.Variable(hidden, name="w2")
        loss = cp.sum_squares(w2 @ mc.relu(W1 @ Xa) - y) / n + decay * (cp.sum_squares(W1) + cp.sum_squares(w2))
        return CvxpyModel(cp.Problem(cp.Minimize(loss)), [[W1], [w2]], {"W1": W1, "w2": w2})

    def objective(v):
        pred = v["w2"] @ np.maximum(v["W1"] @ Xa, 0.0)
        return float(np.sum((pred - y) ** 2) / n + decay * (np.sum(v["W1"] ** 2) + np.sum(v["w2"] ** 2)))

    def torch_objective(v):
        pred = v["w2"] @ torch.relu(v["W1"] @ Xt)
        return ((pred - yt) ** 2).sum() / n + decay * ((v["W1"] ** 2).sum() + (v["w2"] ** 2).sum())

    def start(seed):  # He-style start, shared by every method
        rng = np.random.default_rng(seed)
        return {"W1": rng.standard_normal((hidden, Xa.shape[0])) * np.sqrt(2.0 / Xa.shape[0]),
                "w2": rng.standard_normal(hidden) / np.sqrt(hidden)}

    return Instance(make=make, start=start, objective=objective, torch_objective=torch_objective,
                    reference=None, reference_note="none (non-convex network)", max_iters=max_iters,
                    data={"n": n, "hidden": hidden})


def _relu_global(n: int, hidden: int) -> Instance:
    """Tiny unregularised ReLU regression (one input) whose global optimum big-M MIQPs give."""
    x = np.linspace(-1.0, 1.0, n)
    y = np.abs(x) - 0.3 + 0.5 * x**3 + 0.1 * np.random.default_rng(0).standard_normal(n)
    inst = _relu_net(x[:, None], y, hidden=hidden, decay=0.0, max_iters=100)
    inst.data.update(x=x, y=y)
    for name in ("gurobi", "scip"):  # the reference: the same MIQPs, by the first MIQP backend available
        if get_backend(name).available():
            out = bigm_miqp(x, y, hidden, solver=get_backend(name).cvxpy_target())
            if out["status"] == "converged":
                inst.reference = out["objective"]
                inst.reference_note = f"global: {hidden + 1} big-M MIQPs (one per output sign multiset) by {name}"
                break
    else:
        inst.reference_note = "none (no MIQP backend: install gurobipy or pyscipopt)"
    return inst


def _relu_units(n: int, lam: float, seed: int) -> Instance:
    """Two-layer ReLU units ``[d, 1, 1]`` with a bias column, λ-regularised (sums): the reference is the
    convex reformulation's optimum over every activation pattern (set-up, not timed)."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, size=(n, 2))
    y = np.maximum(X[:, 0] + 0.5 * X[:, 1], 0) - np.maximum(0.3 - X[:, 1], 0) + 0.1 * rng.standard_normal(n)
    Xb = np.hstack([X, np.ones((n, 1))])
    ref = convex_relu_regression(Xb, y, lam, patterns="exact", solver="clarabel")

    def no_cvxpy_model():
        raise ValueError("relu-units problems run only with the global methods (grow, convex-reformulation)")

    return Instance(make=no_cvxpy_model, start=lambda seed: {},
                    objective=lambda v: two_layer_objective(Xb, y, v["units"], lam),
                    reference=float(ref.objective),
                    reference_note="convex reformulation over all activation patterns (Clarabel)",
                    max_iters=50, data={"X": X, "Xb": Xb, "y": y, "lam": lam})


def _bilinear(n: int, m: int, seed: int) -> Instance:
    from multiconvex.models import BilinearProgram  # lazy: the models import torch (~0.7 s)

    bp = BilinearProgram.random(n=n, m=m, seed=seed)

    def start(s):
        return BilinearProgram(**{**bp.get_params(), "seed": s}).feasible_point()

    return Instance(make=bp.to_cvxpy, start=start, objective=lambda v: bp.objective_at(v["x"], v["y"]),
                    reference=None, reference_note="none (bilinear programs are NP-hard)", max_iters=100)


def _diabetes(samples: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_diabetes  # lazy: scikit-learn takes ~0.5 s to import

    X, y = load_diabetes(return_X_y=True)
    X, y = X[:samples], y[:samples]
    return _standardise(X), (y - y.mean()) / y.std()


def _cancer(samples: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_breast_cancer  # lazy: scikit-learn takes ~0.5 s to import

    X, y = load_breast_cancer(return_X_y=True)
    X, y = X[:samples], y[:samples]
    return _standardise(X), 2.0 * y - 1.0  # labels ±1, squared loss


# -- the registry -----------------------------------------------------------------------------------
_OURS_PEERS_MF = ("dmcp-loop", "torch-adam", "torch-gd")

register(BenchProblem("mf-synth-60x40", "factorization", "rank-3 signal + noise, rank-5 factors, λ=2",
                      "60x40, k=5 (500 vars)", ("EQP",), _OURS_PEERS_MF,
                      lambda: _factorization(_low_rank(60, 40, 3, 0.1, seed=0), 5, 2.0, 300)))
register(BenchProblem("mf-synth-200x100", "factorization", "rank-5 signal + noise, rank-8 factors, λ=3",
                      "200x100, k=8 (2400 vars)", ("EQP",), _OURS_PEERS_MF,
                      lambda: _factorization(_low_rank(200, 100, 5, 0.1, seed=1), 8, 3.0, 300)))
register(BenchProblem("mf-digits-600", "factorization", "centred digits (the README demo), λ=8",
                      "600x64, k=12 (7968 vars)", ("EQP",), _OURS_PEERS_MF,
                      lambda: _factorization(_standardise_mean(_digits(600)), 12, 8.0, 500)))
register(BenchProblem("nmf-digits-100", "nmf", "digits/16, plain NMF (α=0)", "100x64, k=5 (820 vars)",
                      ("QP",), ("sklearn-cd", "sklearn-mu", "dmcp-loop", "torch-gd"),
                      lambda: _nmf(_digits(100), 5, 0.0, 30)))
register(BenchProblem("nmf-digits-300", "nmf", "digits/16, plain NMF (α=0)", "300x64, k=8 (2912 vars)",
                      ("QP",), ("sklearn-cd", "sklearn-mu", "dmcp-loop", "torch-gd"),
                      lambda: _nmf(_digits(300), 8, 0.0, 40)))
register(BenchProblem("neuron-bad", "neuron", "R&R §8 single ReLU neuron, α=3, start near the bad minimum",
                      "3 points, 2 vars", ("QP",), ("torch-gd", "torch-adam"), lambda: _neuron(3.0, "bad")))
register(BenchProblem("neuron-good", "neuron", "R&R §8 single ReLU neuron, α=3, start near the good minimum",
                      "3 points, 2 vars", ("QP",), ("torch-gd", "torch-adam"), lambda: _neuron(3.0, "good")))
register(BenchProblem("neuron-random", "neuron", "R&R §8 single ReLU neuron, α=3, random start",
                      "3 points, 2 vars", ("QP",), ("torch-gd", "torch-adam"), lambda: _neuron(3.0, None)))
register(BenchProblem("relu-diabetes-100", "relu", "1-hidden-layer ReLU regression, diabetes (100 samples)",
                      "100x10, 4 hidden (48 vars)", ("QP",), ("torch-adam", "torch-gd"),
                      lambda: _relu_net(*_diabetes(100), hidden=4, decay=1e-3, max_iters=30)))
register(BenchProblem("relu-diabetes", "relu", "1-hidden-layer ReLU regression, diabetes",
                      "442x10, 8 hidden (96 vars)", ("QP",), ("torch-adam", "torch-gd"),
                      lambda: _relu_net(*_diabetes(), hidden=8, decay=1e-3, max_iters=40)))
register(BenchProblem("relu-cancer", "relu", "1-hidden-layer ReLU classifier (±1, squared loss), breast cancer",
                      "569x30, 8 hidden (256 vars)", ("QP",), ("torch-adam", "torch-gd"),
                      lambda: _relu_net(*_cancer(), hidden=8, decay=1e-3, max_iters=40)))
register(BenchProblem("relu-global-20", "global", "unregularised 1-input ReLU regression, seeded data",
                      "20 points, 2 hidden (6 vars)", ("QP",), ("bigm-miqp", "torch-gd", "torch-adam"),
                      lambda: _relu_global(20, 2)))
register(BenchProblem("relu-units-40", "global", "two-layer ReLU units grown to a certified optimum, λ=0.1",
                      "40 samples, d=2 + bias", ("SOCP",), ("convex-reformulation",),
                      lambda: _relu_units(40, 0.1, 0)))
register(BenchProblem("bilinear-10", "bilinear", "random bilinear program, LP blocks", "x, y in R^10, 5 rows each",
                      ("LP",), ("dmcp-loop",), lambda: _bilinear(10, 5, seed=0)))
register(BenchProblem("bilinear-50", "bilinear", "random bilinear program, LP blocks", "x, y in R^50, 30 rows each",
                      ("LP",), ("dmcp-loop",), lambda: _bilinear(50, 30, seed=0)))


def _standardise_mean(Y: np.ndarray) -> np.ndarray:
    return Y - Y.mean(axis=0)
