"""Forward passes of nearby points: recompute only what a block step changed.

A Gauss–Seidel sweep moves one unit block at a time, and the driver evaluates each candidate:
two points that differ in a few rows of one layer ``k``. :class:`ForwardCache` keeps the last
points' forward passes and derives a new point's from the nearest one: the changed rows of
``W_k``/``b_k`` are written into copies of that layer's tensors, the changed columns of ``z_k``
recomputed (each from scratch, never by adding a difference, so no rounding accumulates), and the
layers after ``k`` run as usual. Points are compared by the identity of their value arrays (the
drivers' :func:`multiconvex.standard_form.replace` keeps every array it does not replace).

Examples
--------
>>> import numpy as np, torch
>>> from multiconvex.nets import Architecture, init_params
>>> arch = Architecture((2, 3, 1))
>>> X = torch.randn(10, 2, dtype=torch.float64); T = torch.randn(10, 1, dtype=torch.float64)
>>> params = init_params(arch, 0, X.device)
>>> point = {(k, u): np.append(W[u].numpy(), b[u].numpy())
...          for k, (W, b) in enumerate(params) for u in range(W.shape[0])}
>>> cache = ForwardCache(arch, X, T, 1e-3)
>>> f = cache.get(point).f
>>> moved = dict(point); moved[(0, 1)] = point[(0, 1)] + 0.1
>>> entry = cache.get(moved)
>>> cache.incremental_hits
1
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

from .network import DTYPE, Architecture, Params, data_loss, forward
from .torch_threads import one_torch_thread

Point = Mapping[Hashable, np.ndarray]


@dataclass
class ForwardEntry:
    """A point's parameters (torch), pre-activations, layer inputs and objective ``F``."""

    point: Point
    params: Params
    pre: list[torch.Tensor]
    inputs: list[torch.Tensor]
    f: float
    #: what users derive from the pass and keep with it (e.g. boundary units per layer)
    extra: dict = field(default_factory=dict)
    #: ``‖W_k‖² + ‖b_k‖²`` per layer (Python floats): a step in one layer recomputes that layer's only
    norms: list = field(default_factory=list)


class ForwardCache:
    """The forward passes of the last ``size`` points (keys ``(layer, unit)``: a weight row with its bias last).

    Thread-safe; :attr:`incremental_hits` counts passes derived from a cached neighbour. The passes run in
    ``torch.inference_mode``: an entry's tensors are inference tensors (read them anywhere; clone one to change it
    in place or to use it in an autograd graph).
    """

    def __init__(self, arch: Architecture, X: torch.Tensor, T: torch.Tensor, weight_decay: float, size: int = 3):
        self.arch, self.X, self.T, self.weight_decay = arch, X, T, float(weight_decay)
        self.size = size
        self._entries: list[ForwardEntry] = []
        self._lock = threading.Lock()
        self.incremental_hits = 0
        self._keys = [(k, u) for k in range(arch.n_layers) for u in range(arch.sizes[k + 1])]
        self._entries_max = X.shape[0] * max(arch.sizes)  # the largest layer tensor of a forward pass

    def params_from_point(self, point: Point) -> Params:
        params: Params = []
        for k in range(self.arch.n_layers):
            rows = np.stack([point[(k, u)] for u in range(self.arch.sizes[k + 1])])
            t = torch.as_tensor(rows, dtype=DTYPE, device=self.X.device)
            params.append((t[:, :-1], t[:, -1]) if self.arch.bias else (t, None))
        return params

    @staticmethod
    def _norm(W: torch.Tensor, b: torch.Tensor | None) -> float:
        # float64 scalars: Python's arithmetic on them is torch's on 0-d tensors, without a tensor op per addition
        return float((W ** 2).sum()) + (float((b ** 2).sum()) if b is not None else 0.0)

    def _objective(self, out: torch.Tensor, norms: list) -> float:
        # sum() from 0 over the layers in order: the same arithmetic as network.sq_norm (in float64 scalars)
        return float(data_loss(self.arch, out, self.T)) + 0.5 * self.weight_decay * sum(norms)

    def _full(self, point: Point) -> ForwardEntry:
        params = self.params_from_point(point)
        out, pre, inputs = forward(self.arch, params, self.X)
        norms = [self._norm(W, b) for W, b in params]
        return ForwardEntry(point, params, pre, inputs, self._objective(out, norms), norms=norms)

    def _from(self, base: ForwardEntry, point: Point, layer: int, units: list[int]) -> ForwardEntry:
        arch, dev = self.arch, self.X.device
        # one unit (a Gauss–Seidel step) or a run of units: a slice, whose reads and writes are views
        idx: slice | torch.Tensor
        if units == list(range(units[0], units[0] + len(units))):
            idx = slice(units[0], units[0] + len(units))
        else:
            idx = torch.as_tensor(units, device=dev)
        raw = point[(layer, units[0])] if len(units) == 1 else np.stack([point[(layer, u)] for u in units])
        rows = torch.as_tensor(raw, dtype=DTYPE, device=dev).reshape(len(units), -1)
        params = list(base.params)
        W, b = params[layer]
        W = W.clone()
        if arch.bias:
            W[idx] = rows[:, :-1]
            assert b is not None
            b = b.clone()
            b[idx] = rows[:, -1]
        else:
            W[idx] = rows
        params[layer] = (W, b)
        pre, inputs = list(base.pre[:layer]), list(base.inputs[:layer + 1])
        z = base.pre[layer].clone()
        zu = inputs[layer] @ W[idx].T
        z[:, idx] = zu.add_(b[idx]) if b is not None else zu
        pre.append(z)
        for k in range(layer + 1, arch.n_layers):
            a = torch.nn.functional.leaky_relu(pre[-1], arch.negative_slope)  # σ on its piece (slope 0: ReLU)
            inputs.append(a)
            Wk, bk = params[k]
            zk = a @ Wk.T
            # the bias added in place: the same numbers as zk + bk without another layer-sized tensor
            pre.append(zk.add_(bk) if bk is not None else zk)
        norms = list(base.norms)
        norms[layer] = self._norm(W, b)
        return ForwardEntry(point, params, pre, inputs, self._objective(pre[-1], norms), norms=norms)

    def get(self, point: Point) -> ForwardEntry:
        """The forward pass of ``point`` (cached, or derived from a cached point that differs in one layer)."""
        with self._lock:
            for e in self._entries:  # a cached point (most calls): no torch context entered
                if e.point is point:
                    return e
            # inference mode: no autograd bookkeeping on the pass's few dozen operations (~15% of an incremental
            # pass); the entries' tensors are inference tensors (clone one to change it or to use it in a graph)
            with torch.inference_mode(), one_torch_thread(self.X.device, self._entries_max):
                return self._add(point)

    def _add(self, point: Point) -> ForwardEntry:
        """The forward pass of ``point`` (not cached), derived from a cached point where one differs in one layer;
        kept as the newest entry."""
        entry = None
        for base in reversed(self._entries):  # the most recent first
            changed = [key for key in self._keys if point[key] is not base.point[key]]
            layers = {k for k, _ in changed}
            if len(layers) <= 1:
                if not changed:
                    entry = ForwardEntry(point, base.params, base.pre, base.inputs, base.f, norms=base.norms)
                else:
                    layer = layers.pop()
                    entry = self._from(base, point, layer, [u for _, u in changed])
                self.incremental_hits += 1
                break
        if entry is None:
            entry = self._full(point)
        self._entries.append(entry)
        del self._entries[:-self.size]
        return entry


__all__ = ["ForwardCache", "ForwardEntry"]
