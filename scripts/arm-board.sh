#!/usr/bin/env bash
# An emulated ARM64 board: an arm64 Debian rootfs with Python, numpy, LiteRT and onnxruntime, run
# under qemu-user with a NEON CPU model (no SVE/SME), reached through a real OpenSSH server on
# 127.0.0.1. `mobiledeploy bench|verify --device ssh://arm-board --ssh-config STATE/ssh_config`
# then treats it like any board. It is for correctness on ARM kernels, never for timing.
#
#   scripts/arm-board.sh check             exit 0 when this machine can run it, else 77 + "skip: reason"
#   scripts/arm-board.sh build             build the rootfs (or reuse the cached one); prints its path
#   scripts/arm-board.sh start [--port N] [--state DIR]   build + start sshd; prints the ssh config entry
#   scripts/arm-board.sh stop [--state DIR]
#   scripts/arm-board.sh status [--state DIR]
#   scripts/arm-board.sh host-shim OUT.so   the ExecuTorch shim for this host, against .venv's executorch
#
# Needs root (chroot, mounts, binfmt), Debian's qemu-user-static + binfmt-support (installed here
# when root and missing), apt-get, and pip. The rootfs is made without running any emulated
# package script (FINDINGS.md "ARM64 under emulation"): ~20 s, cached under
# ${XDG_CACHE_HOME:-~/.cache}/mobiledeploy/arm64-rootfs/<recipe hash>.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${MOBILEDEPLOY_ARM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mobiledeploy/arm64-rootfs}
STATE=${MOBILEDEPLOY_ARM_STATE:-/tmp/mobiledeploy-arm-board}
# neoverse-n1: ARMv8.2 with NEON, fp16 arithmetic and dot product, no SVE/SME (what phones' big cores
# and Graviton2 run). qemu's default `max` makes XNNPACK/onnxruntime pick SME kernels no phone runs.
QEMU_CPU_MODEL=${MOBILEDEPLOY_ARM_CPU:-neoverse-n1}
PORT=""

# --- the recipe (everything below up to "end of recipe" feeds the cache key) ---------------------
# python3.11 and what it links, plus the few tools the SSH runner's remote sh needs (mktemp, tar, rm).
DEBS=(python3.11 python3.11-minimal libpython3.11-stdlib libpython3.11-minimal dash
      libc6 libgcc-s1 gcc-12-base libstdc++6 zlib1g libexpat1 libffi8 libssl3 libbz2-1.0 liblzma5
      libsqlite3-0 libuuid1 libncursesw6 libtinfo6 libreadline8 libdb5.3 libcrypt1 libnsl2 libtirpc3
      libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0 libcom-err2 libkeyutils1
      media-types libtirpc-common readline-common tzdata ca-certificates
      coreutils tar libacl1 libattr1 libselinux1 libpcre2-8-0 libgmp10)
# The board's runtimes: the same versions as this checkout's .venv when it has them, so that an
# ARM-vs-x86 difference is the ISA's and not a release's.
venv_version() {
    "$REPO/.venv/bin/python" -c "import importlib.metadata as m; print(m.version('$1'))" 2>/dev/null || true
}
NUMPY_V=$(venv_version numpy); LITERT_V=$(venv_version ai-edge-litert); ORT_V=$(venv_version onnxruntime)
WHEELS=("numpy${NUMPY_V:+==$NUMPY_V}" "ai-edge-litert${LITERT_V:+==$LITERT_V}" "onnxruntime${ORT_V:+==$ORT_V}")
# ExecuTorch: only the runtime's shared libraries from the aarch64 executorch wheel (executorch/lib: the
# core, XNNPACK, optimized/quantized kernels, none links torch; its Python package needs torch, whose PyPI
# aarch64 wheel is 454 MB and pulls the CUDA 13 wheels) plus scripts/executorch_shim.cpp cross-compiled
# against them, which the agent's executorch-native runner calls through ctypes (README.md, "An emulated
# ARM64 board").
ET_V=$(venv_version executorch); ET_V=${ET_V:-1.5.1}
ET_SHIM_HASH=$(sha256sum "$REPO/scripts/executorch_shim.cpp" | cut -c1-16)
# pip takes these tags literally (no glibc range): list what Debian 12 (glibc 2.36) can load.
PIP_PLATFORM=(--platform manylinux2014_aarch64 --platform manylinux_2_17_aarch64 --platform manylinux_2_27_aarch64
              --platform manylinux_2_28_aarch64 --platform manylinux_2_31_aarch64 --platform manylinux_2_34_aarch64
              --implementation cp --python-version 3.11 --abi cp311 --only-binary=:all:)
# onnxruntime's cpuinfo reads /proc/cpuinfo and segfaults under qemu 7.2 on the x86 host's one: the
# board shows this Neoverse-N1 text instead (the features are the ones qemu's neoverse-n1 reports in
# HWCAP (qemu 7.2 emulates neither evtstrm nor ssbs); `verify --device` records both, and the tests
# check that they agree).
CPUINFO_CORE='BogoMIPS	: 50.00
Features	: fp asimd aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: 0x3
CPU part	: 0xd0c
CPU revision	: 1'
RECIPE_VERSION=2
# --- end of recipe -------------------------------------------------------------------------------

say() { echo "arm-board: $*" >&2; }
skip() { echo "skip: $*"; exit 77; }

recipe_hash() {
    { printf '%s\n' "$RECIPE_VERSION" "${DEBS[@]}" "${WHEELS[@]}" "${PIP_PLATFORM[@]}" "$CPUINFO_CORE" \
          "$ET_V" "$ET_SHIM_HASH"; } | sha256sum | cut -c1-16
}

# Why this machine cannot run the board, or nothing. Installs qemu/binfmt when root and missing.
prerequisites() {
    [ "$(uname -s)" = Linux ] || { echo "not Linux ($(uname -s)): qemu-user and binfmt_misc are Linux-only"; return; }
    [ "$(id -u)" = 0 ] || { echo "needs root (chroot, bind mounts, binfmt_misc); run as root, e.g. in CI or a VM"; return; }
    if [ "$(uname -m)" = aarch64 ]; then :; else
        if [ ! -x /usr/bin/qemu-aarch64-static ] || ! command -v update-binfmts >/dev/null; then
            if command -v apt-get >/dev/null; then
                say "installing qemu-user-static and binfmt-support"
                DEBIAN_FRONTEND=noninteractive apt-get install -y -q qemu-user-static binfmt-support >/dev/null 2>&1 \
                    || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive \
                         apt-get install -y -q qemu-user-static binfmt-support >/dev/null 2>&1; } || true
            fi
        fi
        [ -x /usr/bin/qemu-aarch64-static ] || { echo "qemu-user-static is not installed (apt-get install qemu-user-static binfmt-support)"; return; }
        # Containers and VMs without systemd never run binfmt-support's service: mount and enable here.
        if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
            mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null \
                || { echo "binfmt_misc is not mounted and cannot be (a container without CAP_SYS_ADMIN?)"; return; }
        fi
        if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
            update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || update-binfmts --import qemu-aarch64 >/dev/null 2>&1 || true
        fi
        [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || { echo "binfmt_misc has no qemu-aarch64 entry (update-binfmts --enable qemu-aarch64 failed)"; return; }
        # F (fix binary): the kernel opens qemu at registration, so it works inside a chroot without qemu.
        grep -q '^flags:.*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 \
            || { echo "the qemu-aarch64 binfmt entry lacks the F flag (Debian's qemu-user-static sets it)"; return; }
    fi
    if ! command -v "$(cxx_aarch64)" >/dev/null && command -v apt-get >/dev/null; then
        say "installing g++-aarch64-linux-gnu (builds the ExecuTorch shim for the board)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q g++-aarch64-linux-gnu >/dev/null 2>&1 \
            || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive \
                 apt-get install -y -q g++-aarch64-linux-gnu >/dev/null 2>&1; } || true
    fi
    command -v "$(cxx_aarch64)" >/dev/null \
        || { echo "no aarch64 C++ compiler for the ExecuTorch shim (apt-get install g++-aarch64-linux-gnu)"; return; }
    for t in apt-get dpkg-deb unshare chroot ssh-keygen; do
        command -v "$t" >/dev/null || { echo "$t is not installed"; return; }
    done
    [ -x /usr/sbin/sshd ] || { echo "openssh-server is not installed (apt-get install openssh-server)"; return; }
}

cxx_aarch64() {
    if [ "$(uname -m)" = aarch64 ]; then echo g++; else echo aarch64-linux-gnu-g++; fi
}

# ExecuTorch's runtime libraries from the aarch64 wheel and the shim over them, into R/opt/executorch-runtime/lib.
build_executorch() {
    local R=$1 work=$2 py=$3 et lib
    et="$work/et"
    mkdir -p "$et"
    "$py" -m pip download -q --no-deps --disable-pip-version-check "${PIP_PLATFORM[@]}" -d "$et" \
        "executorch==$ET_V" >"$work/et.log" 2>&1 || { tail -5 "$work/et.log" >&2; return 1; }
    (cd "$et" && "$py" -m zipfile -e executorch-*.whl unpacked >/dev/null)
    lib="$R/opt/executorch-runtime/lib"
    mkdir -p "$lib"
    local so
    for so in libexecutorch libexecutorch_threadpool libexecutorch_backend_xnnpack libexecutorch_kernels_optimized \
              libexecutorch_kernels_quantized; do
        cp "$et/unpacked/executorch/lib/$so.so" "$lib/"
    done
    compile_shim "$(cxx_aarch64)" "$et/unpacked/executorch/include" "$lib" '$ORIGIN' "$lib/libmdet_executorch.so" \
        >>"$work/et.log" 2>&1 || { tail -20 "$work/et.log" >&2; return 1; }
    echo "$ET_V" > "$lib/VERSION"
    rm -rf "$et"
}

# scripts/executorch_shim.cpp against an executorch wheel's headers and libraries. Args: CXX INCLUDE LIBDIR RPATH OUT
compile_shim() {
    local cxx=$1 inc=$2 lib=$3 rpath=$4 out=$5
    # The C10 macro stands in for a header only a PyTorch build generates; the tracer one matches how the
    # libraries were compiled (executorch/lib/cmake's EXECUTORCH_COMPILE_DEFINITIONS).
    "$cxx" -std=c++17 -O2 -shared -fPIC -Wno-deprecated-declarations -DC10_USING_CUSTOM_GENERATED_MACROS -DET_EVENT_TRACER_ENABLED \
        -I "$inc" -I "$inc/executorch/runtime/core/portable_type/c10" "$REPO/scripts/executorch_shim.cpp" \
        -L "$lib" -Wl,--no-as-needed -lexecutorch -lexecutorch_backend_xnnpack -lexecutorch_kernels_optimized \
        -lexecutorch_kernels_quantized -lexecutorch_threadpool -Wl,--as-needed -Wl,-rpath,"$rpath" -o "$out"
}

# The shim for this host, against the executorch in .venv (tests compare it with ExecuTorch's Python runtime).
host_shim() {
    local out=$1 et
    et=$("$(host_python)" -c 'import os, importlib.util as u; print(list(u.find_spec("executorch").submodule_search_locations)[0])') \
        || { echo "executorch is not installed in $(host_python)" >&2; return 1; }
    mkdir -p "$(dirname "$out")"
    compile_shim "${CXX:-g++}" "$et/include" "$et/lib" "$et/lib" "$out"
}

host_python() {
    if [ -x "$REPO/.venv/bin/python" ]; then echo "$REPO/.venv/bin/python"; else command -v python3.11 || command -v python3; fi
}

build() {
    local key root work apt_opts
    key=$(recipe_hash)
    root="$CACHE/$key"
    if [ -e "$root/.complete" ]; then echo "$root/rootfs"; return; fi
    say "building the arm64 rootfs (recipe $key) in $root"
    rm -rf "$root" "$root.partial"
    work="$root.partial"
    mkdir -p "$work/debs" "$work/apt/state/lists/partial" "$work/apt/cache/archives/partial" "$work/rootfs"
    : > "$work/apt/status"
    # A private apt state for arm64: the host's dpkg architectures and package lists stay untouched.
    apt_opts=(-q -o "Dir::State=$work/apt/state" -o "Dir::State::status=$work/apt/status"
              -o "Dir::Cache=$work/apt/cache" -o APT::Architecture=arm64 -o "APT::Architectures::=arm64"
              -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
    apt-get "${apt_opts[@]}" update >"$work/apt.log" 2>&1 || { tail -5 "$work/apt.log" >&2; return 1; }
    (cd "$work/debs" && apt-get "${apt_opts[@]}" download "${DEBS[@]}" >>"$work/apt.log" 2>&1) \
        || { tail -5 "$work/apt.log" >&2; return 1; }
    local R="$work/rootfs"
    # Debian 12 is merged-/usr: make the links first and keep them (plain `dpkg-deb -x` replaces them).
    mkdir -p "$R/usr/bin" "$R/usr/sbin" "$R/usr/lib" "$R/usr/lib64"
    for d in bin sbin lib lib64; do ln -sfn "usr/$d" "$R/$d"; done
    for deb in "$work"/debs/*.deb; do
        dpkg-deb --fsys-tarfile "$deb" | tar -x --keep-directory-symlink -C "$R"
    done
    ln -sfn python3.11 "$R/usr/bin/python3"
    ln -sfn dash "$R/usr/bin/sh"
    mkdir -p "$R/proc" "$R/sys" "$R/dev" "$R/tmp" "$R/root" "$R/etc" "$R/opt/site"
    chmod 1777 "$R/tmp"
    echo "root:x:0:0:root:/root:/bin/sh" > "$R/etc/passwd"
    echo "root:x:0:" > "$R/etc/group"
    local py
    py=$(host_python)
    say "downloading aarch64 wheels: ${WHEELS[*]}"
    "$py" -m pip install -q --no-compile --disable-pip-version-check "${PIP_PLATFORM[@]}" \
        --target "$R/opt/site" "${WHEELS[@]}" >"$work/pip.log" 2>&1 || { tail -5 "$work/pip.log" >&2; return 1; }
    say "ExecuTorch $ET_V runtime libraries + shim (aarch64)"
    build_executorch "$R" "$work" "$py" || return 1
    mkdir -p "$R/usr/local/lib/python3.11/dist-packages"
    echo "/opt/site" > "$R/usr/local/lib/python3.11/dist-packages/mobiledeploy-board.pth"
    # Byte-compile on the host (same 3.11 magic number): emulated starts would recompile every time.
    if "$py" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
        "$py" -m compileall -q -j 0 -s "$R" -p / "$R/usr/lib/python3.11" "$R/opt/site" >/dev/null 2>&1 || true
    fi
    printf '%s\n' "$CPUINFO_CORE" > "$work/cpuinfo.core"
    mv "$work/rootfs" "$root.rootfs-tmp"
    mkdir -p "$root"
    mv "$root.rootfs-tmp" "$root/rootfs"
    mv "$work/cpuinfo.core" "$root/cpuinfo.core"
    mv "$work/apt.log" "$work/pip.log" "$root/" 2>/dev/null || true
    rm -rf "$work"
    # Smoke test under emulation: the runtimes import on the NEON CPU model.
    if ! in_rootfs "$root" /usr/bin/python3 -c 'import ctypes, numpy, onnxruntime; from ai_edge_litert import interpreter
ctypes.CDLL("/opt/executorch-runtime/lib/libmdet_executorch.so").mdet_abi_version(); print("ok")' \
            >"$root/smoke.log" 2>&1; then
        cat "$root/smoke.log" >&2
        say "the rootfs does not run its runtimes under qemu; left in $root for a look"
        return 1
    fi
    touch "$root/.complete"
    # Rootfs of older recipes are stale (~290 MB each): keep only this one.
    local old
    for old in "$CACHE"/*/; do
        old=${old%/}
        [ "$old" = "$root" ] || { say "removing the stale rootfs $old"; rm -rf "$old"; }
    done
    echo "$root/rootfs"
}

# cpuinfo with one entry per host CPU (runtimes size thread pools from it).
make_cpuinfo() {
    local core=$1 out=$2 n i
    n=$(nproc)
    : > "$out"
    for ((i = 0; i < n; i++)); do printf 'processor\t: %d\n%s\n\n' "$i" "$(cat "$core")" >> "$out"; done
}

# Run a command inside the rootfs the way board sessions do (private mounts, fake cpuinfo, QEMU_CPU).
in_rootfs() {
    local root=$1; shift
    local tmp; tmp=$(mktemp -d)
    make_cpuinfo "$root/cpuinfo.core" "$tmp/cpuinfo"
    unshare -m --propagation private -- "$REPO/scripts/arm-board.sh" __enter "$root/rootfs" "$tmp/cpuinfo" "$tmp" "$QEMU_CPU_MODEL" "$@"
    local rc=$?
    rm -rf "$tmp"
    return $rc
}

# Inside a fresh mount namespace: mount what the runtimes need, then chroot. Args: ROOTFS CPUINFO TMP CPU CMD...
enter() {
    local R=$1 cpuinfo=$2 tmp=$3 cpu=$4; shift 4
    mount -t proc proc "$R/proc"
    mount --bind "$cpuinfo" "$R/proc/cpuinfo"
    # LiteRT silently skips XNNPACK without /sys (cpuinfo reads the CPU topology there).
    mount --rbind /sys "$R/sys"
    mount --rbind /dev "$R/dev"
    mount --bind "$tmp" "$R/tmp"
    exec chroot "$R" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 \
        QEMU_CPU="$cpu" TMPDIR=/tmp PYTHONDONTWRITEBYTECODE=1 "$@"
}

start() {
    local why root user
    why=$(prerequisites)
    [ -z "$why" ] || skip "$why"
    root=$(dirname "$(build)")
    user=$(id -un)
    mkdir -p "$STATE"
    chmod 700 "$STATE"
    if [ -f "$STATE/sshd.pid" ] && kill -0 "$(cat "$STATE/sshd.pid")" 2>/dev/null; then
        say "already running (pid $(cat "$STATE/sshd.pid")); stop it first: $0 stop --state $STATE"
        cat "$STATE/ssh_config"
        return 0
    fi
    [ -n "$PORT" ] || PORT=$("$(host_python)" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    rm -f "$STATE/host_ed25519" "$STATE/host_ed25519.pub" "$STATE/user_ed25519" "$STATE/user_ed25519.pub"
    ssh-keygen -q -t ed25519 -N "" -C arm-board-host -f "$STATE/host_ed25519"
    ssh-keygen -q -t ed25519 -N "" -C arm-board-user -f "$STATE/user_ed25519"
    cp "$STATE/user_ed25519.pub" "$STATE/authorized_keys"
    mkdir -p "$STATE/tmp"
    chmod 1777 "$STATE/tmp"
    make_cpuinfo "$root/cpuinfo.core" "$STATE/cpuinfo"
    # Every session, whatever it asks for, runs inside the rootfs: ForceCommand enters it.
    cat > "$STATE/enter-board" <<EOF
#!/bin/sh
# sshd's ForceCommand for the emulated board: the client's command runs in the arm64 rootfs.
cmd=\${SSH_ORIGINAL_COMMAND:-exec /bin/sh -i}
exec unshare -m --propagation private -- "$REPO/scripts/arm-board.sh" __enter "$root/rootfs" "$STATE/cpuinfo" "$STATE/tmp" "$QEMU_CPU_MODEL" /bin/sh -c "\$cmd"
EOF
    chmod 755 "$STATE/enter-board"
    mkdir -p /run/sshd
    cat > "$STATE/sshd_config" <<EOF
Port $PORT
ListenAddress 127.0.0.1
HostKey $STATE/host_ed25519
PidFile $STATE/sshd.pid
AuthorizedKeysFile $STATE/authorized_keys
AllowUsers $user
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin forced-commands-only
ForceCommand $STATE/enter-board
DisableForwarding yes
PermitTTY no
StrictModes no
UsePAM no
LogLevel INFO
EOF
    # forced-commands-only only admits root with a command= key option: give the key one.
    echo "command=\"$STATE/enter-board\",restrict $(cat "$STATE/user_ed25519.pub")" > "$STATE/authorized_keys"
    echo "[127.0.0.1]:$PORT $(cut -d' ' -f1,2 "$STATE/host_ed25519.pub")" > "$STATE/known_hosts"
    cat > "$STATE/ssh_config" <<EOF
# The emulated ARM64 board (scripts/arm-board.sh): qemu-aarch64, QEMU_CPU=$QEMU_CPU_MODEL.
Host arm-board 127.0.0.1
    HostName 127.0.0.1
    Port $PORT
    User $user
    IdentityFile $STATE/user_ed25519
    IdentitiesOnly yes
    UserKnownHostsFile $STATE/known_hosts
    StrictHostKeyChecking yes
    LogLevel ERROR
EOF
    /usr/sbin/sshd -f "$STATE/sshd_config" -E "$STATE/sshd.log"
    local i
    for i in $(seq 50); do [ -s "$STATE/sshd.pid" ] && break; sleep 0.1; done
    [ -s "$STATE/sshd.pid" ] || { cat "$STATE/sshd.log" >&2; say "sshd did not start"; return 1; }
    echo "$PORT" > "$STATE/port"
    say "sshd pid $(cat "$STATE/sshd.pid") on 127.0.0.1:$PORT; sessions run in $root/rootfs (QEMU_CPU=$QEMU_CPU_MODEL)"
    say "use: mobiledeploy verify ARTIFACT --device ssh://arm-board --ssh-config $STATE/ssh_config"
    say "  or append $STATE/ssh_config to ~/.ssh/config and use --device ssh://arm-board"
    cat "$STATE/ssh_config"
}

stop() {
    if [ -f "$STATE/sshd.pid" ]; then
        local pid; pid=$(cat "$STATE/sshd.pid")
        kill "$pid" 2>/dev/null || true
        rm -f "$STATE/sshd.pid"
        say "stopped sshd $pid"
    else
        say "not running (no $STATE/sshd.pid)"
    fi
}

cmd=${1:-}
[ $# -gt 0 ] && shift
while [ $# -gt 0 ]; do
    case "$1" in
        --port) PORT=$2; shift 2 ;;
        --state) STATE=$2; shift 2 ;;
        --cpu) QEMU_CPU_MODEL=$2; shift 2 ;;
        *) { [ "$cmd" = __enter ] || [ "$cmd" = run ] || [ "$cmd" = host-shim ]; } && break; echo "unknown option $1" >&2; exit 2 ;;
    esac
done
case "$cmd" in
    check) why=$(prerequisites); [ -z "$why" ] || skip "$why"; echo "ok: recipe $(recipe_hash), cache $CACHE" ;;
    build) why=$(prerequisites); [ -z "$why" ] || skip "$why"; build ;;
    start) start ;;
    stop) stop ;;
    status) if [ -f "$STATE/sshd.pid" ] && kill -0 "$(cat "$STATE/sshd.pid")" 2>/dev/null; then
                echo "running: pid $(cat "$STATE/sshd.pid"), port $(cat "$STATE/port")"; else echo "not running"; exit 1; fi ;;
    run) why=$(prerequisites); [ -z "$why" ] || skip "$why"; r=$(dirname "$(build)"); in_rootfs "$r" "$@" ;;
    host-shim) host_shim "${1:?usage: arm-board.sh host-shim OUT.so}" ;;
    __enter) enter "$@" ;;
    *) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
