#!/usr/bin/env bash
# One seed of the gpu-cifar10 preset on one CUDA GPU, timed with /usr/bin/time -v, then
# `hydraplus compare` into docs/results/gpu-cifar10/ (tables, figures, the seed's evaluation files,
# the timing and the machine it ran on).
#
#   bash benchmarks/gpu_cifar10.sh DATA [OOD]
#
# DATA  CIFAR-10: torchvision's folder (the one holding cifar-10-batches-py), or an .npz with
#       x_train/y_train (uint8 NHWC) and, if it has them, x_test/y_test; without a test split 10%
#       of the training images become the test set (e.g. ../shared/data/cifar10_train.npz).
# OOD   SVHN for the OOD detection: the folder holding test_32x32.mat, or an .npz of its images.
#       Left out: the preset's data/svhn (the run stops with an error naming it when it is missing).
#
# Environment: SEED (default 0), RUN (the run folder, default runs/gpu-cifar10; must not hold a run
# yet: --resume continues it), OUT (default docs/results/gpu-cifar10), HYDRAPLUS (the command,
# default .venv/bin/hydraplus, else hydraplus on PATH). Extra train flags go in TRAIN_ARGS,
# e.g. TRAIN_ARGS="--resume".
set -euo pipefail
cd "$(dirname "$0")/.."

DATA="${1:?usage: bash benchmarks/gpu_cifar10.sh DATA [OOD] (see the comment at the top)}"
OOD="${2:-}"
SEED="${SEED:-0}"
RUN="${RUN:-runs/gpu-cifar10}"
OUT="${OUT:-docs/results/gpu-cifar10}"
if [ -z "${HYDRAPLUS:-}" ]; then
    if [ -x .venv/bin/hydraplus ]; then HYDRAPLUS=.venv/bin/hydraplus; else HYDRAPLUS=hydraplus; fi
fi
PYTHON="$(dirname "$(command -v "$HYDRAPLUS")")/python"
[ -x "$PYTHON" ] || PYTHON=python3

"$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'no CUDA GPU visible to torch')"
mkdir -p "$OUT"
{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
    echo "command: $HYDRAPLUS train gpu-cifar10 --seeds $SEED --out $RUN --device cuda --data $DATA${OOD:+ --ood-data $OOD} ${TRAIN_ARGS:-}"
    "$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda); print('gpu', torch.cuda.get_device_name(0))"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
    echo "cpus: $(nproc)"
} > "$OUT/environment.txt"

ood_args=()
if [ -n "$OOD" ]; then ood_args=(--ood-data "$OOD"); fi
timing=(/usr/bin/time -v -o "$OUT/time-seed-$SEED.txt")
if [ ! -x /usr/bin/time ]; then timing=(); echo "no /usr/bin/time: wall time only (train_seconds in evaluation.json)" >&2; fi
# shellcheck disable=SC2086  # TRAIN_ARGS is a list of flags
${timing[@]+"${timing[@]}"} "$HYDRAPLUS" train gpu-cifar10 --seeds "$SEED" --out "$RUN" --device cuda \
    --data "$DATA" ${ood_args[@]+"${ood_args[@]}"} ${TRAIN_ARGS:-}

"$HYDRAPLUS" compare "$RUN" --out "$OUT"
mkdir -p "$OUT/seed-$SEED"
cp "$RUN/seed-$SEED/config.json" "$RUN/seed-$SEED/evaluation.json" "$RUN/seed-$SEED/evaluation.md" "$OUT/seed-$SEED/"
echo "results: $OUT/compare.md (timing: $OUT/time-seed-$SEED.txt, machine: $OUT/environment.txt)"
