"""Blocks of a cvxpy problem: validation, automatic discovery, multi-convexity checks.

:func:`find_blocks` is polynomial in the number of variables (DMCP enumerates
every subset): variables that multiply each other — where DCP breaks at a node
whose arguments are all DCP — are joined in an *interaction graph*; a greedy
colouring of that graph (largest degree first) gives blocks whose variables
never multiply each other, and each block is then verified by one DCP check of
its subproblem with the other blocks fixed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

import cvxpy as cp
from cvxpy.expressions.expression import Expression
from cvxpy.expressions.variable import Variable

from ..errors import InvalidInputError, NotMulticonvexError


def interaction_graph(problem: cp.Problem) -> dict[int, set[int]]:
    """Edges between variables (by id) that meet in a product-like, non-DCP node."""
    graph: dict[int, set[int]] = defaultdict(set)
    for v in problem.variables():
        graph[v.id]
    roots: list[Expression] = [problem.objective.expr] + [a for c in problem.constraints for a in c.args]
    stack = list(roots)
    seen: set[int] = set()
    while stack:
        e = stack.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        args = getattr(e, "args", [])
        with_vars = [a for a in args if a.variables()]
        if len(with_vars) >= 2 and not e.is_dcp() and all(a.is_dcp() for a in with_vars):
            sets = [{v.id for v in a.variables()} for a in with_vars]
            for i, si in enumerate(sets):
                for sj in sets[i + 1:]:
                    for a in si:
                        for b in sj:
                            if a != b:
                                graph[a].add(b)
                                graph[b].add(a)
        stack.extend(with_vars)
    return graph


def _colour(graph: dict[int, set[int]], order: Sequence[int]) -> list[list[int]]:
    colour: dict[int, int] = {}
    for v in sorted(order, key=lambda v: -len(graph[v])):
        used = {colour[u] for u in graph[v] if u in colour}
        c = 0
        while c in used:
            c += 1
        colour[v] = c
    classes: dict[int, list[int]] = defaultdict(list)
    for v in order:
        classes[colour[v]].append(v)
    return [classes[c] for c in sorted(classes)]


def find_blocks(problem: cp.Problem) -> list[list[Variable]]:
    """Blocks in which ``problem`` is multi-convex, found in polynomial time.

    Returns
    -------
    list[list[cvxpy.Variable]]
        A cover of the problem's variables; each block's subproblem is convex
        (DCP) when the others are fixed and every ``relu`` is fixed to its piece.

    Raises
    ------
    NotMulticonvexError
        If some variable is not convex even on its own.

    Examples
    --------
    >>> import cvxpy as cp, multiconvex as mc
    >>> x, y = cp.Variable(name="x"), cp.Variable(name="y")
    >>> [[v.name() for v in b] for b in mc.find_blocks(cp.Problem(cp.Minimize(cp.square(x * y - 1))))]
    [['x'], ['y']]
    """
    from .cross_section import CrossSection

    variables = {v.id: v for v in problem.variables()}
    if not variables:
        raise InvalidInputError("the problem has no variables: there is nothing to optimise.")
    objective = _minimised(problem)
    blocks: list[list[Variable]] = []
    for ids in _colour(interaction_graph(problem), list(variables)):
        group = [variables[i] for i in ids]
        try:
            CrossSection("candidate", objective, problem.constraints, group)
            blocks.append(group)
        except NotMulticonvexError:
            for v in group:  # split the colour class; a lone variable that fails is a real failure
                CrossSection(v.name(), objective, problem.constraints, [v])
                blocks.append([v])
    return blocks


def is_multiconvex(problem: cp.Problem, blocks: Sequence[Sequence[Variable]] | None = None) -> bool:
    """Whether ``problem`` is multi-convex in ``blocks`` (found automatically when ``None``).

    One DCP check per block, each with the other blocks fixed and every ``relu``
    fixed to its piece: polynomial in the number of variables.
    """
    from .cross_section import CrossSection

    try:
        if blocks is None:
            find_blocks(problem)
            return True
        checked = normalise_blocks(problem, blocks)
        objective = _minimised(problem)
        for name, group in zip(block_names(checked), checked):
            CrossSection(name, objective, problem.constraints, group)
        return True
    except NotMulticonvexError:
        return False


def _minimised(problem: cp.Problem) -> Expression:
    return problem.objective.expr if isinstance(problem.objective, cp.Minimize) else -problem.objective.expr


def normalise_blocks(problem: cp.Problem, blocks: Iterable) -> list[list[Variable]]:
    """Check a user's block list: variables of this problem, non-empty, covering every variable."""
    variables = {v.id: v for v in problem.variables()}
    out: list[list[Variable]] = []
    for i, b in enumerate(blocks):
        group = [b] if isinstance(b, Variable) else list(b)
        if not group:
            raise InvalidInputError(f"block {i} is empty: every block needs at least one variable.")
        for v in group:
            if not isinstance(v, Variable):
                raise InvalidInputError(
                    f"block {i} contains {type(v).__name__} `{v}`, not a cvxpy Variable: list variables only.")
            if v.id not in variables:
                raise InvalidInputError(
                    f"block {i} contains variable '{v.name()}', which does not appear in the problem.")
        out.append(group)
    covered = {v.id for g in out for v in g}
    missing = [v.name() for vid, v in variables.items() if vid not in covered]
    if missing:
        raise InvalidInputError(
            f"the blocks do not cover every variable: {', '.join(missing)} belong to no block. Add them to a "
            "block (an auxiliary variable may be listed in every block), or pass blocks=None to find blocks "
            "automatically.")
    return out


def block_names(blocks: Sequence[Sequence[Variable]]) -> list[str]:
    """Readable, unique names: the variables' names joined by '+'."""
    names: list[str] = []
    for i, b in enumerate(blocks):
        n = "+".join(v.name() for v in b)
        names.append(n if n not in names else f"{n}#{i}")
    return names
