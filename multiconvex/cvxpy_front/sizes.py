"""The size of a block's subproblem, estimated before it is built: a block too large for this machine is refused.

:func:`check_block_sizes` runs at the front door (:func:`multiconvex.cvxpy_front.solve`) before any block's
numbers are built (it reads the blocks' structure from the front door's one walk,
:func:`~multiconvex.cvxpy_front.form.walk_form`). :func:`block_memory` reads the shapes of the data that
multiplies each block variable and the path the block takes (the compiled QP of :mod:`.quadratic`, or cvxpy's
own compilation) and estimates the bytes the subproblem takes; :func:`available_memory` says how many the machine
has now.

Examples
--------
>>> import cvxpy as cp, numpy as np
>>> U, V = cp.Variable((4, 2)), cp.Variable((2, 3))
>>> prob = cp.Problem(cp.Minimize(cp.sum_squares(np.ones((4, 3)) - U @ V)))
>>> block_memory(prob.objective.expr, prob.constraints, [U])[1]
'compiled'
>>> check_block_sizes(prob, [[U], [V]], available=2**30)  # fits in 1 GiB: returns None
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import cvxpy as cp
import scipy.sparse as sp
from cvxpy.atoms.affine.binary_operators import MulExpression
from cvxpy.expressions.variable import Variable

from ..errors import InvalidInputError
from .blocks import block_names
from .quadratic import BlockWalk, walk_block

#: Share of the memory available now that one block's subproblem may take.
MEMORY_SHARE = 0.8
#: The memory assumed available when it cannot be read (no ``psutil``, no POSIX ``sysconf``): 8 GiB.
FALLBACK_MEMORY = 8 * 2**30
#: Bytes per nonzero of cvxpy's sparse coefficient matrices on the cvxpy path: a value and two indices
#: (24 bytes), built at least twice during cvxpy's compilation.
CVXPY_BYTES_PER_NONZERO = 48


#: :func:`check_block_sizes` reads the available memory (:func:`available_memory`, ~50–90 µs with ``psutil``) only
#: when some block's subproblem needs more than this many bytes (16 MiB). Below it the check cannot matter: the
#: Python process with numpy and cvxpy loaded already holds several times as much, so a machine without 16 MiB
#: to spare has failed before the block is built. (An earlier shortcut compared with the *free* memory instead;
#: it let an over-budget block through when the kernel's reserve exceeded half the free memory.)
UNCHECKED_BYTES = 16 * 2**20


def available_memory() -> int:
    """Bytes of memory available now: ``psutil``'s ``available``, else POSIX ``sysconf`` free pages, else
    :data:`FALLBACK_MEMORY`."""
    try:
        import psutil  # lazy and optional: not a dependency; the POSIX count below is the fallback
    except ImportError:
        psutil = None
    if psutil is not None:
        return int(psutil.virtual_memory().available)
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return FALLBACK_MEMORY


#: Atoms whose argument's products with data become a Gram matrix on the compiled path (``sum_squares`` is
#: ``quad_over_lin``; ``square`` and ``power(., 2)`` are ``power``/``PowerApprox``).
_SQUARE_ATOMS = frozenset({"quad_over_lin", "QuadForm", "SymbolicQuadForm", "quad_form"})


def _is_square(e) -> bool:
    if type(e).__name__ in _SQUARE_ATOMS:
        return True
    p = getattr(e, "p", None)
    if p is None or type(e).__name__ not in {"power", "PowerApprox", "Power"}:
        return False
    try:
        return float(getattr(p, "value", p)) == 2.0
    except (TypeError, ValueError):
        return False


def _walk(expr):
    """Every node of ``expr`` with whether it lies under a square atom (:data:`_SQUARE_ATOMS`)."""
    stack = [(expr, False)]
    while stack:
        e, squared = stack.pop()
        yield e, squared
        inner = squared or _is_square(e)
        stack.extend((a, inner) for a in e.args)


def _density(data) -> float:
    """Share of nonzero entries of ``data``: its ``nnz`` over its size for a scipy.sparse constant, else 1."""
    value = getattr(data, "value", None) if not data.variables() and not data.parameters() else None
    if value is not None and sp.issparse(value):
        return value.nnz / max(1, value.shape[0] * value.shape[1])
    return 1.0


def block_memory(expr, constraints: list, block: Sequence[Variable], walk: BlockWalk | None = None,
                 products: list[tuple[Any, bool, frozenset[int], frozenset[int]]] | None = None
                 ) -> tuple[int, str, str]:
    """An estimate of the memory a block's subproblem takes when it is built, from the variable sizes and
    the shapes of the data that multiplies them: ``(bytes, path, what dominates)``.

    Each matrix product ``A @ X`` (or ``X @ B``) of the block with data contracts over ``k`` entries.

    - On the compiled path (a QP block, :mod:`.quadratic`), a product under a square atom (``sum_squares``,
      ``square``, ``quad_form``, ``power(., 2)``) becomes a dense ``k × k`` Gram matrix (``8 k²`` bytes; a
      variable multiplied on both sides, ``A @ X @ B``, a dense Kronecker product of its two Grams); any
      other product (a linear term, a constraint row) keeps its data: ``8 · size(A)`` bytes.
    - On the cvxpy path (every other block), a sparse coefficient matrix with ``size(A @ X) · k · d``
      nonzeros (``d``: the share of nonzeros of a scipy.sparse ``A``, else 1), :data:`CVXPY_BYTES_PER_NONZERO`
      each. An elementwise product ``cp.multiply(W, X)`` has ``size(W * X)`` nonzeros; one whose other factor
      holds a product of the block with a variable of another block (a Parameter in the block's subproblem)
      makes cvxpy build that product's parameter tensor dense: ``size × (entries of those variables + 1)``
      values of 8 bytes (measured: the masked L1 factorization 1000 × 1000, rank 10, asks Clarabel's
      compilation for 74.5 GiB).

    The path is decided as :class:`CvxpyForm` decides it, by the structure alone (``walk``: the block's
    :func:`~multiconvex.cvxpy_front.quadratic.walk_block`, when the caller has it; else walked here; ``products``
    likewise: the :func:`matrix_products` of ``expr`` and ``constraints``); when the
    structure cannot be read, the smaller estimate is taken (``path == "unknown"``: a refusal then holds on
    either path).
    """
    ids = {v.id: v for v in block}
    path = (walk if walk is not None else walk_block(expr, list(constraints), list(block), "size estimate")).path
    totals = {"compiled": 0, "cvxpy": 0}
    # the largest item of each path, described only when it is reported (a cvxpy expression's text is slow)
    largest: dict[str, tuple[int, Callable[[], str]]] = {"compiled": (0, str), "cvxpy": (0, str)}
    sides: dict[int, set[str]] = {}

    def add(where: str, size: int, what: Callable[[], str]) -> None:
        totals[where] += size
        if size > largest[where][0]:
            largest[where] = (size, what)

    # each product of the block with data (``products``: :func:`matrix_products`, when the caller has it)
    for e, squared, vars_a, vars_b in products if products is not None else matrix_products(expr, constraints):
        a, b = e.args
        in_a = vars_a & ids.keys()
        in_b = vars_b & ids.keys()
        if bool(in_a) == bool(in_b) or not a.shape or not b.shape:
            continue  # a product of two block variables is not convex (refused elsewhere); a scalar is cheap
        data, moving = (b, a) if in_a else (a, b)
        if isinstance(e, cp.multiply):  # elementwise: one coefficient per entry
            others = _other_block_products(moving, ids.keys())
            if others:
                values = int(e.size) * (others + 1)
                add("cvxpy", 8 * values, lambda e=e, others=others: f"a dense {int(e.size):,} × {others + 1:,} "
                                                                    f"parameter tensor for `{_short(e)}`")
            else:
                add("cvxpy", CVXPY_BYTES_PER_NONZERO * int(e.size),
                    lambda e=e: f"{int(e.size):,} coefficients for `{_short(e)}`")
            add("compiled", 8 * int(data.size), lambda e=e: f"the data of `{_short(e)}`")
            continue
        k = int(a.shape[-1])
        if squared:
            for vid in in_a | in_b:
                sides.setdefault(vid, set()).add("right" if in_a else "left")
            add("compiled", 8 * k * k, lambda e=e, k=k: f"a {k} × {k} Gram matrix of `{_short(e)}`")
        else:
            add("compiled", 8 * int(data.size), lambda e=e: f"the data of `{_short(e)}`")
        nonzeros = int(int(e.size) * k * _density(data))
        add("cvxpy", CVXPY_BYTES_PER_NONZERO * nonzeros,
            lambda e=e, nonzeros=nonzeros: f"{nonzeros:,} coefficients for `{_short(e)}`")
    for vid, where in sides.items():
        if where == {"left", "right"}:  # P = kron(R Rᵀ, Lᵀ L) for that variable: dense in its size
            n = int(ids[vid].size)
            add("compiled", 8 * n * n,
                lambda n=n, vid=vid: f"a dense {n} × {n} matrix for `{ids[vid].name()}` (data on both sides)")
    if path == "unknown":
        chosen = min(totals, key=lambda p: totals[p])
        return totals[chosen], "unknown", largest[chosen][1]()
    return totals[path], path, largest[path][1]()


def matrix_products(expr, constraints: list) -> list[tuple[Any, bool, frozenset[int], frozenset[int]]]:
    """Every product of two factors in ``expr`` and ``constraints`` (``MulExpression``: ``@`` and ``multiply``) with
    whether it lies under a square atom and the ids of the variables in each factor: what :func:`block_memory` reads
    for every block, found once (:func:`check_block_sizes` hands it to each block's estimate)."""
    out = []
    for root in [expr, *constraints]:
        for e, squared in _walk(root):
            if isinstance(e, MulExpression) and len(e.args) == 2:
                a, b = e.args
                out.append((e, squared, frozenset(v.id for v in a.variables()),
                            frozenset(v.id for v in b.variables())))
    return out


def _other_block_products(expr, block_ids) -> int:
    """Entries of the variables outside the block that multiply a block variable inside ``expr`` (they are
    Parameters in the block's subproblem); 0 when there is no such product."""
    entries = 0
    seen: set[int] = set()
    for e, _ in _walk(expr):
        if not isinstance(e, MulExpression) or isinstance(e, cp.multiply) or len(e.args) != 2:
            continue
        a, b = e.args
        if not ({v.id for v in a.variables()} | {v.id for v in b.variables()}) & block_ids:
            continue
        for v in (*a.variables(), *b.variables()):
            if v.id not in block_ids and v.id not in seen:
                seen.add(v.id)
                entries += int(v.size)
    return entries


def check_block_sizes(problem: cp.Problem, blocks: Sequence[Sequence[Variable]],
                      available: int | None = None, built: Sequence[BlockWalk] | None = None) -> None:
    """Refuse, before any subproblem's numbers are built, a block whose subproblem would take more than
    :data:`MEMORY_SHARE` of the memory available (:func:`block_memory`), naming the block, its size and the fix.

    ``built``: each block's :func:`~multiconvex.cvxpy_front.quadratic.walk_block` (structure only, no numbers),
    done once by the front door and handed on to the form; without it each block is walked here."""
    if built is not None and len(built) != len(blocks):
        raise ValueError(f"built has {len(built)} block walks for {len(blocks)} blocks")
    expr = problem.objective.expr
    walks: Sequence[BlockWalk | None] = built if built is not None else [None] * len(blocks)
    products = matrix_products(expr, problem.constraints)  # once for every block
    needs = [(name, block, *block_memory(expr, problem.constraints, block, walk, products))
             for name, block, walk in zip(block_names(blocks), blocks, walks)]
    if available is None:
        if max((need for _, _, need, _, _ in needs), default=0) <= UNCHECKED_BYTES:
            return  # every block is small (see UNCHECKED_BYTES): the available memory is not read
        available = available_memory()
    budget = MEMORY_SHARE * available
    for name, block, need, path, what in needs:
        if need > budget:
            n = sum(int(v.size) for v in block)
            fix = {"compiled": "give the data that multiplies it as a scipy.sparse matrix (the block then goes to "
                               "the sparse cvxpy path)",
                   "cvxpy": "give its data as scipy.sparse matrices (cvxpy keeps their sparsity)",
                   "unknown": "give its data as scipy.sparse matrices"}[path]
            raise InvalidInputError(
                f"block '{name}' ({n:,} variables) would need about {need / 2**30:.1f} GiB to build its subproblem "
                f"({what}), more than the {budget / 2**30:.1f} GiB this machine has for it "
                f"({MEMORY_SHARE:.0%} of the memory available now): split it into smaller blocks "
                f"(blocks=[[...], [...]]) or {fix}. Nothing was solved.")


def _short(obj: object, n: int = 60) -> str:
    text = str(obj)
    return text if len(text) <= n else text[: n - 3] + "..."
