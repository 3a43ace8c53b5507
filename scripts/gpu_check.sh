#!/usr/bin/env bash
# The GPU check (issue "GPU figures"): rlloop's headline figures on one accelerator in under
# ten minutes. `scripts/gpu_check.py --help` says what it measures and writes.
#
#   scripts/gpu_prepare.sh             # here, once: the wheels and data the GPU machine lacks
#   scripts/gpu_check.sh               # on the GPU machine, from the repository root
#   scripts/gpu_check.sh --dry-run     # the same steps at tiny sizes on the CPU
#
# On the GPU machine rlloop runs from this source tree (PYTHONPATH) on that machine's own jax,
# flax, optax, chex and orbax; the packages it lacks (mctx, hydra-core, omegaconf, antlr4,
# tensorboardX, lightgbm, pgx, svgwrite) are installed without network from .gpu/wheels into
# a folder of their own, and .gpu/connect4 holds the Connect Four test sets.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
dry_run=0
for arg in "$@"; do
    [[ $arg == --dry-run ]] && dry_run=1
done
if [[ $dry_run == 0 ]]; then
    if compgen -G ".gpu/wheels/*.whl" > /dev/null; then
        site=${RLLOOP_GPU_SITE:-/tmp/rlloop-gpu-site}
        "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target "$site" .gpu/wheels/*.whl
        export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
    else
        echo "gpu_check: no .gpu/wheels (run scripts/gpu_prepare.sh here first); using the" \
             "packages $PYTHON already has" >&2
    fi
    if [[ -d .gpu/connect4 && -z ${RLLOOP_CONNECT4_DATA:-} ]]; then
        export RLLOOP_CONNECT4_DATA="$PWD/.gpu/connect4"
    fi
fi
exec "$PYTHON" scripts/gpu_check.py --python "$PYTHON" "$@"
