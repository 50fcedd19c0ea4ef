#!/usr/bin/env bash
# The GPU suite: ResNet-50 and EfficientNet-Lite0 at 224 px on synthetic-imagenet-224, batch 256,
# bf16 and fp32, in torch, torch:compile, tf, tf:xla and jax: one `zoo bench` run on the GPU, then
# its `zoo report` table. See benchmarks/gpu/README.md.
#
#   benchmarks/gpu/suite.sh                         # on the GPU machine (results in results/gpu-suite)
#   benchmarks/gpu/suite.sh --dry-run               # the same suite on the CPU at tiny sizes (or DRY_RUN=1)
#   benchmarks/gpu/suite.sh --print                 # show the zoo commands only
#   benchmarks/gpu/suite.sh -- --repeats 3          # flags after -- go to zoo bench
#
# PYTHON picks the interpreter (default: the repository's .venv, else python3).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
if [ ! -x "$python" ]; then
    python="$(command -v python3)"
fi
args=("$@")
if [ "${DRY_RUN:-0}" = "1" ]; then
    args=(--dry-run "${args[@]}")
fi
cd "$root"
exec "$python" "$here/suite.py" "${args[@]}"
