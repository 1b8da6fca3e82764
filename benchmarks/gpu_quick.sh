#!/usr/bin/env bash
# A short prepared GPU check for GR-KAN (≤ 200 s on an H100/H200): versions, `grkan.py --quick` (fp32;
# compile, ours_grouped, ours_persistent (each kernel generation both ways); copy bandwidth and float64
# errors in the same run),
# a profile of ViT-T and KAT-T training steps (`kat_profile.py`: wall vs device time, top ops), the host
# cost per GR-KAN call with real launches (`grkan_host_overhead.py`), then the
# kernel tests on CUDA (-x -q). Everything lands in $OUT (one log per stage + JSON + run.log);
# every stage has its own timeout, so one that fails or hangs does not lose the others' output.
#   OUT=/some/dir bash benchmarks/gpu_quick.sh
# Same import approach as gpu_run.sh: the package is imported through a symlinked shim (the repo maps
# models/ → mobiledeploy.models); every command runs with the shim as its working directory and
# PYTHONSAFEPATH=1, so the repo root's own mobiledeploy/ folder never comes first on sys.path.
set -u
OUT_DEFAULT=out/gpu_quick BUDGET_DEFAULT=200
source "$(dirname "$0")/gpu_common.sh"

versions_stage "$(cap 20 175)" models.grkan,models.kat

# Without a GPU (a dry run of this script) the kernels run in Triton's interpreter at a tiny size,
# error columns only.
stage "stage 1: benchmarks/grkan.py --quick" grkan_quick.log "$(cap 60 110)" \
    "${INTERP[@]}" $PY "$REPO/benchmarks/grkan.py" --quick --out "$OUT/grkan_quick.json"

# KAT-T trains at ~0.58× ViT-T while its GR-KAN kernels take a few ms of device time per step: this
# says whether the rest is host time (launches, Python) or device time, and in which ops.
stage "stage 2: benchmarks/kat_profile.py (ViT-T vs KAT-T, eager, 10 profiled steps)" kat_profile.log \
    "$(cap 45 60)" $PY "$REPO/benchmarks/kat_profile.py" --models vit,kat --steps 10 --out "$OUT/kat_profile.json"

# Host µs per GR-KAN call with real launches on a tiny tensor (device time negligible), beside GELU:
# the part of the step gap that is our wrapper plus Triton's launcher (CPU runs stub the launches).
stage "stage 2b: benchmarks/grkan_host_overhead.py (host µs per GR-KAN call vs GELU)" host_overhead.log \
    "$(cap 20 60)" $PY "$REPO/benchmarks/grkan_host_overhead.py" --rounds 5 --calls 500 \
    --out "$OUT/grkan_host_overhead.json"

if $PY -c "import pytest" 2>/dev/null; then
    stage "stage 3: tests/test_grkan_triton.py$([ ${#INTERP[@]} -eq 0 ] && echo ' on CUDA' || echo ' (interpreter)')" \
        pytest.log "$(cap 60 0)" "${INTERP[@]}" $PY -m pytest -x -q -p no:cacheprovider --rootdir "$REPO" \
        "$REPO/tests/test_grkan_triton.py"
else
    log "stage 3 skipped: pytest missing; the error columns of grkan_quick.json are the CUDA check"
fi
log "done in $(($(date +%s) - T0)) s; outputs in $OUT"
