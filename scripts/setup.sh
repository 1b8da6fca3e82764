#!/usr/bin/env bash
# Create .venv and install mobiledeploy with every extra; idempotent and quick when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
stamp=.venv/.mobiledeploy-installed
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "setting up .venv (first run takes a few minutes)" >&2
    # pip's notes about this machine's local package folders are noise: keep real errors only.
    # setuptools' editable-install notice (a boxed BuildBackendWarning, ~8 lines) says nothing actionable here:
    # drop the block from its first line through its indented continuation lines.
    quiet() { "$@" 2> >(grep -v -e 'is ignored: it is neither' -e '^\s*$' \
        | awk '/BuildBackendWarning: Editable installation/ {skip=1; next} skip && /^[ \t]/ {next} {skip=0; print}' >&2); }
    quiet .venv/bin/pip install -q --upgrade pip
    # torch 2.14.1 + torchvision 0.29.1: the pair that lies on this machine's disk and that timm
    # (our test oracle) imports with; litert-torch needs torch<2.15.
    quiet .venv/bin/pip install -q torch==2.14.1 torchvision==0.29.1
    quiet .venv/bin/pip install -q -e '.[all,test]'
    echo "$want" > "$stamp"
fi
# System tools the tests use: a real OpenSSH server for the devicebench SSH path.
if [ "${MOBILEDEPLOY_SKIP_SYSTEM:-0}" != 1 ] && ! command -v /usr/sbin/sshd >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing openssh-server/openssh-client (for the SSH bench tests)" >&2
        (apt-get install -y -q openssh-server openssh-client >/dev/null 2>&1 \
            || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q openssh-server openssh-client >/dev/null 2>&1; }) \
            || echo "warning: could not install openssh-server; SSH bench tests will fail" >&2
    fi
fi
# The emulated ARM64 board of the `arm` tests (scripts/arm-board.sh): qemu-user with binfmt_misc.
if [ "${MOBILEDEPLOY_SKIP_SYSTEM:-0}" != 1 ] && [ "$(uname -m)" != aarch64 ] \
        && { [ ! -x /usr/bin/qemu-aarch64-static ] || ! command -v update-binfmts >/dev/null 2>&1; }; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing qemu-user-static/binfmt-support (for the emulated ARM64 board tests)" >&2
        (DEBIAN_FRONTEND=noninteractive apt-get install -y -q qemu-user-static binfmt-support >/dev/null 2>&1 \
            || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive \
                 apt-get install -y -q qemu-user-static binfmt-support >/dev/null 2>&1; }) \
            || echo "warning: could not install qemu-user-static; the arm tests will skip with the reason" >&2
    fi
fi
# The board's ExecuTorch shim (scripts/executorch_shim.cpp) is cross-compiled: an aarch64 C++ compiler.
if [ "${MOBILEDEPLOY_SKIP_SYSTEM:-0}" != 1 ] && [ "$(uname -m)" != aarch64 ] \
        && ! command -v aarch64-linux-gnu-g++ >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing g++-aarch64-linux-gnu (builds the emulated ARM64 board's ExecuTorch shim)" >&2
        (DEBIAN_FRONTEND=noninteractive apt-get install -y -q g++-aarch64-linux-gnu >/dev/null 2>&1 \
            || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive \
                 apt-get install -y -q g++-aarch64-linux-gnu >/dev/null 2>&1; }) \
            || echo "warning: could not install g++-aarch64-linux-gnu; the arm tests will skip with the reason" >&2
    fi
fi
