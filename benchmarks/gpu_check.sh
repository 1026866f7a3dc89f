#!/usr/bin/env bash
# One command on a machine with a CUDA GPU (at most ~8 minutes):
#   1. the CUDA tests: no host sync under torch.cuda.set_sync_debug_mode("error"),
#      CUDA-graph capture, the fused path (tests/torch/test_torch_compile.py, the
#      tests marked "needs a CUDA GPU", and the fused tests on CUDA parameters);
#   2. the GPU benchmarks of all three backends, one table, benchmarks/results/gpu_check.json.
# Usage: benchmarks/gpu_check.sh [--cpu]
#   --cpu: smoke run without a GPU (checks this script: the CUDA tests skip, tiny shapes).
# PYTHON selects the interpreter (default: .venv/bin/python if present, else python).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python)}
export PYTHONPATH="$PWD:$PWD/backends:$PWD/conformance${PYTHONPATH:+:$PYTHONPATH}"
mode=${1:-}
if [ "$mode" != "--cpu" ]; then
    "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' || {
        echo "gpu_check: no CUDA GPU visible to torch (use --cpu for a smoke run)" >&2
        exit 2
    }
fi
echo "== CUDA tests"
tests=(tests/torch/test_torch_compile.py -k "cuda")
[ "$mode" = "--cpu" ] && tests=(tests/torch/test_torch_compile.py -k "cuda" -rs)
timeout 180 "$PYTHON" -m pytest -q -p no:cacheprovider "${tests[@]}"
echo "== GPU benchmarks"
timeout 300 "$PYTHON" -m benchmarks.gpu_check $mode
