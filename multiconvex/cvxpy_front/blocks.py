"""Blocks of a cvxpy problem: validation, automatic discovery, multi-convexity checks.

:func:`find_blocks` is polynomial in the number of variables (DMCP enumerates
every subset): variables that multiply each other — where DCP breaks at a node
whose arguments are all DCP — are joined in an *interaction graph*; a greedy
colouring of that graph (largest degree first) gives blocks whose variables
never multiply each other, and each block is then verified by one DCP check of
its subproblem with the other blocks fixed.

Two checks guard against false certificates: the block objective must be *convex* (for
``Minimize``; concave for ``Maximize``), not merely DCP (:func:`is_dcp` also accepts concave
expressions), and no atom may be convex only on an implicit domain that the user's function
does not have: ``w**3`` is convex to cvxpy only on ``w >= 0``, so a block solve would minimise
over ``w >= 0`` and certify a "partial minimum" of a function that is unbounded below along
the block (:func:`check_domains`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

import cvxpy as cp
import numpy as np
import scipy.sparse as sp
from cvxpy.atoms.elementwise.power import Power
from cvxpy.constraints.nonpos import Inequality
from cvxpy.expressions.constants.parameter import Parameter
from cvxpy.expressions.expression import Expression
from cvxpy.expressions.leaf import Leaf
from cvxpy.expressions.variable import Variable

from ..errors import InvalidInputError, NotMulticonvexError
from .cross_section import CrossSection, objective_terms


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
    variables = {v.id: v for v in problem.variables()}
    if not variables:
        raise InvalidInputError("the problem has no variables: there is nothing to optimise.")
    check_domains(problem)
    objective = _minimised(problem)
    blocks: list[list[Variable]] = []
    for ids in _colour(interaction_graph(problem), list(variables)):
        group = [variables[i] for i in ids]
        try:
            check_block(problem, "candidate", group, objective)
            blocks.append(group)
        except NotMulticonvexError:
            for v in group:  # split the colour class; a lone variable that fails is a real failure
                check_block(problem, v.name(), [v], objective)
                blocks.append([v])
    return blocks


def is_multiconvex(problem: cp.Problem, blocks: Sequence[Sequence[Variable]] | None = None) -> bool:
    """Whether ``problem`` is multi-convex in ``blocks`` (found automatically when ``None``).

    One convexity check per block, each with the other blocks fixed and every ``relu``
    fixed to its piece (polynomial in the number of variables), and the domain check of
    :func:`check_domains`.

    Examples
    --------
    >>> import cvxpy as cp, multiconvex as mc
    >>> x, y = cp.Variable(2, name="x"), cp.Variable(2, name="y")
    >>> mc.is_multiconvex(cp.Problem(cp.Minimize(cp.sum_squares(x) + x @ y)), [[x], [y]])
    True
    >>> mc.is_multiconvex(cp.Problem(cp.Maximize(cp.sum_squares(x) + x @ y)), [[x], [y]])
    False
    """
    try:
        if blocks is None:
            find_blocks(problem)
            return True
        checked = normalise_blocks(problem, blocks)
        objective = _minimised(problem)
        for name, group in zip(block_names(checked), checked):
            check_block(problem, name, group, objective)
        return True
    except NotMulticonvexError:
        return False


def check_block(problem: cp.Problem, name: str, group: list[Variable], objective: Expression | None = None) -> None:
    """Raise :class:`NotMulticonvexError` unless block ``group`` is convex with the other blocks fixed.

    The objective to minimise (``-f`` for ``Maximize(f)``) must be **convex** in the block, with
    the other blocks fixed and every ``relu`` on its piece, and the constraints must define a
    convex set (:class:`~multiconvex.cvxpy_front.cross_section.CrossSection` checks those).
    """
    objective = _minimised(problem) if objective is None else objective
    section = CrossSection(name, objective, problem.constraints, group,
                           maximise=isinstance(problem.objective, cp.Maximize))
    if section.problem.objective.expr.is_convex():
        return
    sense = "maximising needs a concave term" if isinstance(problem.objective, cp.Maximize) else \
        "minimising needs a convex term"
    for term in objective_terms(objective):  # name the first term that is not convex in the block
        if not CrossSection(name, term, [], group).problem.objective.expr.is_convex():
            shown = _short(-term if isinstance(problem.objective, cp.Maximize) else term)
            raise NotMulticonvexError(
                f"block '{name}' is not convex when the other blocks are fixed: the objective term `{shown}` is "
                f"not {'concave' if isinstance(problem.objective, cp.Maximize) else 'convex'} in the block "
                f"({sense}). Split its variables into other blocks, or reformulate the term.",
                block=name, term=shown)
    raise NotMulticonvexError(
        f"block '{name}' is not convex when the other blocks are fixed: the objective is not "
        f"{'concave' if isinstance(problem.objective, cp.Maximize) else 'convex'} in the block ({sense}).",
        block=name, term=_short(problem.objective.expr))


def check_domains(problem: cp.Problem) -> None:
    """Refuse atoms that cvxpy calls convex only on an implicit domain the user's function does not have.

    ``power(x, p)`` with an odd integer ``p >= 3`` or a negative integer ``p`` is finite for
    ``x < 0`` too (``x**3``, ``1/x``), but cvxpy treats it as convex on ``x >= 0`` (``x > 0``) and
    silently restricts every solve to that set: a block solve from ``w = −2`` of ``w**3 − 3w`` returns
    ``w = 1`` and would certify a partial minimum of a function that is unbounded below. Such an
    atom is accepted when its argument is nonnegative by construction (a ``nonneg`` variable,
    ``cp.pos``, ``mc.relu``) or the problem has the explicit constraint ``arg >= 0``.

    Raises
    ------
    NotMulticonvexError
        Naming the atom, its domain and the fix.
    """
    explicit: set | None = None  # the constraints' keys, built when a power needs them (they copy constants)
    roots: list[Expression] = [problem.objective.expr] + [a for c in problem.constraints for a in c.args]
    stack, seen = list(roots), set()
    involves: dict[int, bool] = {}  # whether a node's subtree holds a variable, each node once
    while stack:
        e = stack.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, Power) and _has_variable(e.args[0], involves):
            p = float(e.p.value)
            arg = e.args[0]
            odd_or_negative = p.is_integer() and ((p >= 3 and p % 2 == 1) or p < 0)
            if odd_or_negative and not arg.is_nonneg() and explicit is None:
                explicit = {_identity(c.args[1]) for c in problem.constraints if isinstance(c, Inequality)
                            and not c.args[0].variables() and c.args[0].is_nonneg()}
            if odd_or_negative and not arg.is_nonneg() and _identity(arg) not in (explicit or set()):
                shown = f"power({_short(arg)}, {p:g})"
                raise NotMulticonvexError(
                    f"`{shown}` is convex only where `{_short(arg)}` {'>' if p < 0 else '>='} 0 (cvxpy's implicit "
                    f"domain of power with p={p:g}), but it is finite and not convex for negative values too: a "
                    "block solve would silently stay in that domain and certify a point that is not a partial "
                    f"minimum of your function. Add the constraint `{_short(arg)} >= 0` (or declare the variable "
                    "nonneg=True) if that domain is meant; otherwise reformulate the term.",
                    block=None, term=shown)
        stack.extend(a for a in getattr(e, "args", []) if _has_variable(a, involves))


def _identity(e: Expression) -> tuple:
    """``e`` as a key that two expressions share only when they are the same function: its text and its leaves in
    order — variables and parameters by id, constants by value (two variables of one name print alike)."""
    leaves: list = []
    stack = [e]
    while stack:
        node = stack.pop()
        if isinstance(node, (Variable, Parameter)):
            leaves.append((type(node).__name__, node.id))
        elif isinstance(node, Leaf):
            value = node.value.toarray() if sp.issparse(node.value) else np.asarray(node.value)
            leaves.append((value.shape, value.tobytes()))
        else:
            stack.extend(reversed(node.args))
    return str(e), tuple(leaves)


def _has_variable(e, memo: dict[int, bool]) -> bool:
    """``bool(e.variables())``, bottom-up with ``memo`` (cvxpy's ``variables()`` walks the whole subtree at every
    node it is asked of)."""
    hit = memo.get(id(e))
    if hit is None:
        if isinstance(e, Variable):
            hit = True
        elif isinstance(e, Leaf):
            hit = False
        else:
            hit = any([_has_variable(a, memo) for a in e.args])
        memo[id(e)] = hit
    return hit


def _minimised(problem: cp.Problem) -> Expression:
    return problem.objective.expr if isinstance(problem.objective, cp.Minimize) else -problem.objective.expr


def _short(obj: object, n: int = 120) -> str:
    s = str(obj)
    return s if len(s) <= n else s[: n - 3] + "..."


def normalise_blocks(problem: cp.Problem, blocks: Iterable) -> list[list[Variable]]:
    """Check a user's block list: variables of this problem, non-empty, covering every variable."""
    if isinstance(blocks, Expression):  # mc.solve(prob, x): iterating a Variable gives its entries
        raise InvalidInputError(f"blocks is the {type(blocks).__name__} `{_short(blocks)}` itself: pass a list of "
                                "blocks, each a Variable or a list of Variables, e.g. blocks=[[x], [y]].")
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
    check_domains(problem)
    return out


def block_names(blocks: Sequence[Sequence[Variable]]) -> list[str]:
    """Readable, unique names: the variables' names joined by '+'."""
    names: list[str] = []
    for i, b in enumerate(blocks):
        n = "+".join(v.name() for v in b)
        names.append(n if n not in names else f"{n}#{i}")
    return names
