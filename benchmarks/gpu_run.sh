#!/usr/bin/env bash
# One prepared GPU run for GR-KAN (≈7 min on an H100/H200): versions, kernel benchmark with float64
# error columns, interleaved training benchmark, then the kernel tests on CUDA. Everything lands in
# $OUT (logs + JSON); a stage that fails or times out does not lose the others' output.
#   OUT=/some/dir bash benchmarks/gpu_run.sh
# Needs python3 with torch and triton; no network, no pip: the package is imported through a
# symlinked shim on PYTHONPATH (the repo maps models/ → mobiledeploy.models).
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-out/gpu}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
T0=$(date +%s)
log() { echo "[$(($(date +%s) - T0))s] $*" | tee -a "$OUT/run.log"; }
left() { echo $((${BUDGET_S:-420} - ($(date +%s) - T0))); }

SHIM=$(mktemp -d)
mkdir -p "$SHIM/mobiledeploy"
for f in "$PWD"/mobiledeploy/*; do ln -s "$f" "$SHIM/mobiledeploy/"; done
ln -s "$PWD/models" "$SHIM/mobiledeploy/models"
ln -s "$PWD/exporters" "$SHIM/mobiledeploy/exporters"
ln -s "$PWD/devicebench" "$SHIM/mobiledeploy/devicebench"
export PYTHONPATH="$SHIM${PYTHONPATH:+:$PYTHONPATH}"
unset TRITON_INTERPRET MOBILEDEPLOY_GRKAN_BACKEND

log "stage 0: versions"
{
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv || true
    $PY -c "import sys, torch, triton; print('python', sys.version.split()[0]); print('torch', torch.__version__, 'cuda', torch.version.cuda); print('triton', triton.__version__); print('device', torch.cuda.get_device_name(0))"
    $PY -c "import mobiledeploy.models.grkan as g; print('package import ok:', g.__file__)"
} 2>&1 | tee "$OUT/versions.txt"

log "stage 1: benchmarks/grkan.py (4 shapes × fp32/bf16; eager, compile, ours; fwd, fwd+bwd; errors vs fp64)"
timeout 230 $PY benchmarks/grkan.py --out "$OUT/grkan.json" 2>&1 | tee "$OUT/grkan.log"
log "grkan.py exit ${PIPESTATUS[0]}"

log "stage 2: benchmarks/kat_train.py (ViT-T vs KAT-T, eager and compiled, 5 rounds × 30 steps)"
t=$(($(left) - 40))
[ "$t" -gt 200 ] && t=200
if [ "$t" -gt 60 ]; then
    timeout "$t" $PY benchmarks/kat_train.py --models vit,kat,vit_compile,kat_compile --rounds 5 --steps 30 \
        --out "$OUT/kat_train.json" 2>&1 | tee "$OUT/kat_train.log"
    log "kat_train.py exit ${PIPESTATUS[0]}"
else
    log "kat_train.py skipped: only $(left) s left"
fi

log "stage 3: GR-KAN tests on CUDA (real kernels, no interpreter)"
t=$(($(left)))
if [ "$t" -gt 30 ] && $PY -c "import pytest" 2>/dev/null; then
    timeout "$t" $PY -m pytest -q -p no:cacheprovider --noconftest tests/test_grkan_triton.py 2>&1 | tee "$OUT/pytest.log"
    log "pytest exit ${PIPESTATUS[0]}"
else
    log "pytest skipped ($(left) s left or pytest missing); the error columns of grkan.json are the CUDA check"
fi
rm -rf "$SHIM"
log "done; outputs in $OUT"
