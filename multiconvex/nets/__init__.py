"""ReLU networks in torch: layer-block subproblems, gradient baselines, certificates, diagnostics.

The estimator users call is :class:`multiconvex.models.ReLUNetwork`; this package is the
machinery behind it, usable on its own with any weights:

- :mod:`.network` — architecture, forward pass, objective ``F(θ)`` (one convention for all)
- :mod:`.blocks` — block subproblems (affine maps and piece constraints) built in torch
- :mod:`.form` — :class:`NetForm`, the standard form the Jacobi / Gauss–Seidel drivers run on
- :mod:`.baselines` — ``gd`` / ``sgd`` / ``adam`` with the same Result format
- :mod:`.certificates` — partial-minimum certificate for any weights; K&K gradient-basis gap
- :mod:`.adjacent` — a unit block's gap bound over every piece adjacent to a point (the certificates use it)
- :mod:`.diagnostics` — Milne: region test, λ threshold, normalised curvature, loss change fraction
- :mod:`.batched` — every unit block of a layer built in one torch pass (layer-parallel Jacobi, gaps)
- :mod:`.piece_context` — what every unit block at one point shares (signs, slopes, |z| statistics, boundary flags)
- :mod:`.unit_blocks` — exact solves of those unit blocks (DAQP per hidden unit, one batched Cholesky
  for the output layer)
- :mod:`.incremental` — forward passes updated after a block step (only what changed)
- :mod:`.torch_threads` — one torch thread around the unit sweep's small tensor work (the user's setting given back)
- :mod:`.hybrid` — ``"adam+gauss-seidel"``: a gradient phase, then block sweeps until certified
- :mod:`.layer_step` — joint steps of a whole layer on its fixed pieces (they move the point; gaps certify)
"""

from .adjacent import AdjacentBound, adjacent_bounds
from .baselines import GRADIENT_ALGORITHMS, GradientOptions, run_gradient
from .batched import unit_batch
from .blocks import ENTRY_BUDGET, LayerBlock, block_data, make_blocks
from .certificates import (
    GradientBasisGap,
    block_gaps,
    certificate,
    gradient_basis_gap,
    parameter_jacobian,
    partial_minimum_certificate,
)
from .diagnostics import (
    LambdaThreshold,
    RegionTest,
    lambda_threshold,
    loss_change_fraction,
    normalised_curvature,
    region_test,
    region_theta,
    spectral_norm,
)
from .form import NetForm, params_from_named
from .hybrid import HYBRID_ALGORITHMS, LayerSteps, parse_hybrid, run_hybrid, run_rounds
from .incremental import ForwardCache
from .network import (
    ACTIVATIONS,
    LOSSES,
    Architecture,
    data_loss,
    encode_targets,
    forward,
    init_params,
    objective,
    resolve_device,
)

__all__ = [
    "Architecture", "LOSSES", "ACTIVATIONS", "forward", "objective", "data_loss", "init_params", "encode_targets",
    "resolve_device", "LayerBlock", "make_blocks", "block_data", "ENTRY_BUDGET", "NetForm", "params_from_named",
    "GRADIENT_ALGORITHMS", "GradientOptions", "run_gradient", "block_gaps", "partial_minimum_certificate",
    "GradientBasisGap", "gradient_basis_gap", "parameter_jacobian", "RegionTest", "region_test", "region_theta",
    "spectral_norm", "LambdaThreshold", "lambda_threshold", "normalised_curvature", "loss_change_fraction",
    "certificate", "unit_batch", "ForwardCache", "HYBRID_ALGORITHMS", "parse_hybrid", "run_hybrid", "LayerSteps",
    "run_rounds", "AdjacentBound", "adjacent_bounds",
]
