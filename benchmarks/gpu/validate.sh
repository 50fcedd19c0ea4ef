#!/usr/bin/env bash
# Validate zoo-bench's GPU measurements on one GPU (an H200: under 8 minutes), one PASS/FAIL/SKIP
# line per check; exit status 1 on any FAIL. See benchmarks/gpu/README.md.
#
#   benchmarks/gpu/validate.sh                      # on the GPU machine
#   benchmarks/gpu/validate.sh --dry-run            # every line on the CPU at tiny sizes (or DRY_RUN=1)
#   benchmarks/gpu/validate.sh --python tf=/envs/tf/bin/python   # a framework in its own environment
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
    args+=(--dry-run)
fi
cd "$root"
exec "$python" "$here/validate.py" "${args[@]}"
