"""Suites: which registered problems run, and with which methods.

A case is one problem × method × backend × seed. Our methods (``gauss-seidel``,
``jacobi``) and the DMCP-style loop take each requested backend that can solve
the problem's block class; the other peers (scikit-learn, torch) run once per seed
with backend ``sklearn`` / ``torch``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from multiconvex.solvers import get_backend

from .problems import PROBLEMS

OURS = ("gauss-seidel", "jacobi")
#: The global-optimality methods: our grow meta-algorithm and the convex reformulation it is checked against.
GLOBAL_METHODS = ("grow", "convex-reformulation")
#: Methods that take a backend from --solvers.
BACKEND_METHODS = (*OURS, "dmcp-loop", *GLOBAL_METHODS)
#: Every method and its backend label when it takes none.
PEER_BACKEND = {"sklearn-cd": "sklearn", "sklearn-mu": "sklearn", "torch-adam": "torch", "torch-gd": "torch"}
#: Global MIQP methods run on every available MIQP backend, once (they use no seed).
MIQP_BACKENDS = ("gurobi", "scip")
#: Methods whose result does not depend on the seed: run for the first seed only.
SEEDLESS = ("bigm-miqp", "convex-reformulation")

#: suite -> (problem, methods or None for ours + every peer of the problem)
SUITES: dict[str, list[tuple[str, tuple[str, ...] | None]]] = {
    "quick": [
        ("mf-synth-60x40", (*OURS, "dmcp-loop", "torch-gd")),
        ("nmf-digits-100", ("gauss-seidel", "sklearn-cd", "sklearn-mu")),
        ("neuron-bad", ("gauss-seidel", "torch-gd")),
        ("neuron-good", ("gauss-seidel", "torch-gd")),
        ("relu-diabetes-100", (*OURS, "torch-adam")),
        ("bilinear-10", ("gauss-seidel", "dmcp-loop")),
    ],
    "factorization": [
        ("mf-synth-60x40", None),
        ("mf-synth-200x100", None),
        ("mf-digits-600", (*OURS, "torch-gd")),
        ("nmf-digits-100", None),
        ("nmf-digits-300", ("gauss-seidel", "sklearn-cd", "sklearn-mu", "torch-gd")),
    ],
    "counterexample": [("neuron-bad", None), ("neuron-good", None), ("neuron-random", None)],
    "relu": [("relu-diabetes-100", None), ("relu-diabetes", None), ("relu-cancer", None)],
    "global": [("relu-global-20", None), ("neuron-random", (*OURS, "torch-gd")),
               ("mf-synth-60x40", ("grow", "gauss-seidel")), ("relu-units-40", GLOBAL_METHODS)],
    "cvxpy-peers": [
        ("mf-synth-60x40", (*OURS, "dmcp-loop")),
        ("mf-synth-200x100", (*OURS, "dmcp-loop")),
        ("nmf-digits-100", ("gauss-seidel", "dmcp-loop")),
        ("bilinear-10", ("gauss-seidel", "dmcp-loop")),
        ("bilinear-50", ("gauss-seidel", "dmcp-loop")),
    ],
}
SUITES["all"] = [entry for name in ("factorization", "counterexample", "relu", "global", "cvxpy-peers")
                 for entry in SUITES[name]]


@dataclass(frozen=True)
class Case:
    """One benchmark case; plain data, so it travels to process and Dask workers."""

    suite: str
    problem: str
    method: str
    backend: str
    seed: int
    max_iters: int | None = None  # None: the problem's own
    time_limit: float | None = None
    tol: float = 1e-6

    @property
    def id(self) -> str:
        return f"{self.problem}/{self.method}/{self.backend}/seed{self.seed}"

    def to_dict(self) -> dict:
        return {**asdict(self), "id": self.id}


def _backend_fits(backend: str, method: str, classes: tuple[str, ...]) -> bool:
    if backend == "auto":
        return method in OURS or method == "dmcp-loop"
    b = get_backend(backend)
    if method == "dmcp-loop" and b.cvxpy_name is None:
        return False
    if method in GLOBAL_METHODS:  # per-pattern programs and the reformulation are second-order cone programs
        return b.cvxpy_name is not None and b.can_solve("SOCP")
    return all(b.can_solve(c) for c in classes)


def expand(suite: str, solvers: list[str], seeds: list[int], *, methods: list[str] | None = None,
           problems: list[str] | None = None, max_iters: int | None = None, time_limit: float | None = None,
           tol: float = 1e-6) -> list[Case]:
    """The cases of ``suite`` for these backends and seeds (optionally filtered by method / problem)."""
    if suite not in SUITES:
        raise KeyError(f"unknown suite {suite!r}; known suites: {', '.join(SUITES)}")
    cases: list[Case] = []
    seen: set[str] = set()
    for name, chosen in SUITES[suite]:
        if problems and name not in problems:
            continue
        prob = PROBLEMS[name]
        for method in chosen if chosen is not None else (*OURS, *prob.peers):
            if methods and method not in methods:
                continue
            if method == "bigm-miqp":
                backends = [b for b in MIQP_BACKENDS if get_backend(b).available()]
            elif method in BACKEND_METHODS:
                backends = [b for b in solvers if _backend_fits(b, method, prob.classes)]
            else:
                backends = [PEER_BACKEND[method]]
            for backend in backends:
                for seed in seeds[:1] if method in SEEDLESS else seeds:
                    case = Case(suite, name, method, backend, seed, max_iters, time_limit, tol)
                    if case.id not in seen:
                        seen.add(case.id)
                        cases.append(case)
    return cases
