# Shared set-up of the prepared GPU scripts (gpu_run.sh, gpu_quick.sh); source it after setting
# OUT_DEFAULT and BUDGET_DEFAULT. The package is imported through a symlinked shim (the repo maps
# models/ → mobiledeploy.models): every command runs with the shim as its working directory and
# PYTHONSAFEPATH=1, so the repo root's own mobiledeploy/ folder (no models/ inside) never comes
# first on sys.path, as it did for `python -c` and `python -m pytest`. No network, no pip needed.
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${OUT:-$REPO/$OUT_DEFAULT}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
PY=${PYTHON:-python3}
BUDGET=${BUDGET_S:-$BUDGET_DEFAULT}
T0=$(date +%s)
log() { echo "[$(($(date +%s) - T0))s] $*" | tee -a "$OUT/run.log"; }
left() { echo $((BUDGET - ($(date +%s) - T0))); }
# cap SECONDS RESERVE: SECONDS, or less so that RESERVE seconds stay for the later stages.
cap() { local t=$(($(left) - $2)); [ "$t" -gt "$1" ] && t=$1; echo "$t"; }

SHIM=$(mktemp -d)
trap 'rm -rf "$SHIM"' EXIT
mkdir -p "$SHIM/mobiledeploy"
for f in "$REPO"/mobiledeploy/*; do ln -s "$f" "$SHIM/mobiledeploy/"; done
ln -s "$REPO/models" "$SHIM/mobiledeploy/models"
ln -s "$REPO/exporters" "$SHIM/mobiledeploy/exporters"
ln -s "$REPO/devicebench" "$SHIM/mobiledeploy/devicebench"
export PYTHONPATH="$SHIM${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONSAFEPATH=1
unset TRITON_INTERPRET MOBILEDEPLOY_GRKAN_BACKEND MOBILEDEPLOY_GRKAN_KERNEL
cd "$SHIM"

# Without a GPU (a dry run of the script) the kernels run in Triton's interpreter at a tiny size.
INTERP=()
$PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null || INTERP=(env TRITON_INTERPRET=1)

# stage NAME LOG SECONDS CMD...: run one stage under its own timeout, its output in $OUT/LOG (tee'd).
stage() {
    local name=$1 logf=$2 t=$3
    shift 3
    if [ "$t" -lt 10 ]; then
        log "$name skipped: only $(left) s left"
        return
    fi
    log "$name (timeout ${t} s)"
    timeout -k 5 "$t" "$@" 2>&1 | tee "$OUT/$logf"
    local rc=${PIPESTATUS[0]}
    log "$name exit $rc$([ "$rc" -eq 124 ] && echo ' (timed out)')"
}

# versions_stage SECONDS MODULES: stage 0 of both scripts, the card, the versions and an import of
# the given mobiledeploy modules (comma-separated, e.g. "models.grkan,models.kat") through the shim.
versions_stage() {
    local imports
    imports=$(echo "$2" | sed 's/[^,][^,]*/mobiledeploy.&/g')
    stage "stage 0: versions and package import" versions.txt "$1" bash -c "
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv || true
    $PY -c \"import sys, torch, triton; print('python', sys.version.split()[0]); print('torch', torch.__version__, 'cuda', torch.version.cuda); print('triton', triton.__version__); print('device', torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)\"
    $PY -c \"import $imports; print('package import ok:', mobiledeploy.models.grkan.__file__)\""
}
