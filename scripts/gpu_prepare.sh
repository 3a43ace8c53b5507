#!/usr/bin/env bash
# Prepares .gpu/ (git-ignored) for scripts/gpu_check.sh on a GPU machine that reaches no
# package registry: manylinux x86-64 CPython 3.12 wheels of what its image lacks, and the
# Connect Four test sets. Run here, from the repository root; then carry .gpu with the tree.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
mkdir -p .gpu/wheels
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .gpu/wheels \
    mctx==0.0.71 hydra-core==1.3.8 omegaconf==2.3.1 tensorboardX==2.6.5 lightgbm==4.7.0 \
    pgx==2.6.0 svgwrite==1.4.3
# The antlr4 runtime that omegaconf 2.3 needs is published as a source archive only.
"$PYTHON" -m pip wheel -q --no-deps -w .gpu/wheels antlr4-python3-runtime==4.9.3
data=${RLLOOP_CONNECT4_DATA:-../shared/data/connect4}
if [[ -d $data ]]; then
    mkdir -p .gpu/connect4 && cp "$data"/Test_L* .gpu/connect4/
else
    echo "gpu_prepare: no $data; the loop's perfect-play scores will use the bundled set" >&2
fi
du -sh .gpu
