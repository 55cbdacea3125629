#!/usr/bin/env bash
# The GPU check of the ReLU network (issue 4), one call on a CUDA machine with no registry access.
# Carry .whl (cp312 wheels of cvxpy, clarabel, osqp, ecos, highspy, pyomo, qdldl, cffi, pycparser, daqp,
# sparsediffpy: `import multiconvex` imports the solver front ends). Writes $OUT/relu_gpu.json,
# $OUT/pytest.log and $OUT/env.txt.
# TORCH_QP_ONLY=1: only the batched torch QP solver (issue 14 item 5), ~3 minutes: its tests (CPU and CUDA)
# and the DAQP-loop-vs-torch timing of one layer's unit blocks, to $OUT/torch_qp.json and $OUT/pytest.log.
set -u
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
# the package layout of pyproject's package-dir, without building: solvers/ -> multiconvex.solvers, ...
rm -rf /tmp/mc && mkdir -p /tmp/mc && cp -r multiconvex /tmp/mc/ && cp -r solvers /tmp/mc/multiconvex/solvers \
  && cp -r models /tmp/mc/multiconvex/models && cp -r benchmarks /tmp/mc/multiconvex/benchmarks || exit 4
export PYTHONPATH=/tmp/site:/tmp/mc
REPO=$(pwd)
cd /tmp  # from outside the checkout, so the installed layout is imported (not ./multiconvex)
{ nvidia-smi -L; python3 -c "import torch, numpy, scipy, cvxpy, clarabel, multiconvex; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'numpy', numpy.__version__, 'scipy', scipy.__version__, 'cvxpy', cvxpy.__version__, 'clarabel', clarabel.__version__, 'multiconvex', multiconvex.__file__); print(cvxpy.installed_solvers())"; nproc; } > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
if [ "${TORCH_QP_ONLY:-0}" = 1 ]; then
  timeout 60 python3 -m pytest -q -p no:cacheprovider -c "$REPO/pyproject.toml" --rootdir "$REPO" \
    "$REPO/tests/test_torch_qp.py" -rs 2>&1 | tee "$OUT/pytest.log" | tail -8
  cd "$REPO" && timeout 170 python3 benchmarks/gpu_check.py "$OUT/torch_qp.json" torch_qp 2>&1 | tail -30
  echo "gpu_check torch_qp done rc=$?"
  exit 0
fi
timeout 200 python3 -m pytest -q -p no:cacheprovider -c "$REPO/pyproject.toml" --rootdir "$REPO" \
  "$REPO/tests/test_relu_network.py" "$REPO/tests/test_clarabel_native.py" -rs 2>&1 | tee "$OUT/pytest.log" | tail -25
[ "${TESTS_ONLY:-0}" = 1 ] && exit 0  # TESTS_ONLY=1: the tests, not the timings
cd "$REPO" && MULTICONVEX_RESULTS="$OUT" timeout 330 python3 benchmarks/gpu_check.py "$OUT/relu_gpu.json" 2>&1 | tail -60
echo "gpu_check done rc=$?"
