#!/usr/bin/env bash
# One prepared GPU run for GR-KAN (≈6.5 min with BUDGET_S=400 on an H100/H200): versions, kernel
# benchmark with float64 error columns, interleaved training benchmark, then the kernel tests on CUDA.
# Everything lands in $OUT (one log per stage + JSON); every stage has its own timeout, so a stage
# that fails or hangs does not lose the others' output.
#   OUT=/some/dir BUDGET_S=400 bash benchmarks/gpu_run.sh
# Needs python3 with torch and triton; no network, no pip: the package is imported through a
# symlinked shim (the repo maps models/ → mobiledeploy.models). Every command runs with the shim as
# its working directory and PYTHONSAFEPATH=1: the repo root's own mobiledeploy/ folder (no models/
# inside) must never come first on sys.path, as it did for `python -c` and `python -m pytest`.
set -u
OUT_DEFAULT=out/gpu BUDGET_DEFAULT=400
source "$(dirname "$0")/gpu_common.sh"

versions_stage "$(cap 20 370)" models.grkan,models.kat

# 4 shapes × fp32/bf16; eager (fp32 only), compile, ours (defaults: persistent forward, grouped backward),
# ours_grouped, ours_persistent (one generation both ways), ours_atomic (defaults, atomic sums; fp32 only). Without a GPU (a dry run of this script) the kernels run in Triton's
# interpreter at a tiny size, error columns only.
stage "stage 1: benchmarks/grkan.py" grkan.log "$(cap 110 260)" \
    "${INTERP[@]}" $PY "$REPO/benchmarks/grkan.py" --eager-dtypes fp32 --out "$OUT/grkan.json"

# *_cudagraphs: compile with CUDA graphs, so the ratio without host launch overhead is measured too.
stage "stage 2: benchmarks/kat_train.py (ViT-T vs KAT-T, eager, compiled, CUDA graphs, 5 rounds × 20 steps)" \
    kat_train.log "$(cap 230 30)" $PY "$REPO/benchmarks/kat_train.py" \
    --models vit,kat,vit_compile,kat_compile,vit_cudagraphs,kat_cudagraphs --rounds 5 \
    --steps 20 --out "$OUT/kat_train.json"

if $PY -c "import pytest" 2>/dev/null; then
    stage "stage 3: GR-KAN tests on CUDA (real kernels, no interpreter)" pytest.log "$(cap 60 0)" \
        $PY -m pytest -q -p no:cacheprovider --rootdir "$REPO" "$REPO/tests/test_grkan_triton.py"
else
    log "stage 3 skipped: pytest missing; the error columns of grkan.json are the CUDA check"
fi
log "done; outputs in $OUT"
