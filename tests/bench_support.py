"""Shared helpers for the devicebench tests: small real artifacts and a real OpenSSH server on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SSHD = "/usr/sbin/sshd"
_ARTIFACTS: dict[str, dict[str, Path]] = {}


def tiny_net():
    """A small conv net with the ops mobile models use (conv, BN, ReLU6, depthwise, pool, linear)."""
    import torch.nn as nn

    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU6(),
        nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.BatchNorm2d(8), nn.ReLU6(),
        nn.Conv2d(8, 16, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
    )
    return net.eval()


def build_artifacts(base: Path) -> dict[str, Path]:
    """Export the tiny net once per session to .onnx (with external data), .tflite and .pt2."""
    key = str(base)
    if key in _ARTIFACTS:
        return _ARTIFACTS[key]
    import torch

    torch.manual_seed(0)
    net = tiny_net()
    x = torch.randn(1, 3, 32, 32)
    base.mkdir(parents=True, exist_ok=True)
    out = {}
    out["onnx"] = base / "tiny.onnx"
    torch.onnx.export(net, (x,), str(out["onnx"]), dynamo=True, verbose=False)
    import litert_torch

    out["tflite"] = base / "tiny.tflite"
    litert_torch.convert(net, (x,)).export(str(out["tflite"]))
    out["pt2"] = base / "tiny.pt2"
    torch.export.save(torch.export.export(net, (x,)), str(out["pt2"]))
    _ARTIFACTS[key] = out
    return out


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory) -> dict[str, Path]:
    return build_artifacts(tmp_path_factory.getbasetemp() / "bench_artifacts")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class SSHServer:
    """A running sshd and the client config that reaches it (ssh -F config)."""

    port: int
    user: str
    config: Path  # client ssh_config
    remote_tmp: Path  # $TMPDIR of sessions on the "board"
    proc: subprocess.Popen
    log: Path

    @property
    def url(self) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}"


def start_sshd(root: Path) -> SSHServer:
    """Start Debian's sshd on a free high port with a throwaway host key and user key."""
    if not os.path.exists(SSHD) or not shutil.which("ssh"):
        pytest.fail("openssh-server/openssh-client are not installed; run scripts/setup.sh as root "
                    "(apt-get install openssh-server openssh-client)")
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    user = os.environ.get("USER") or subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    hostkey, userkey = root / "host_ed25519", root / "user_ed25519"
    for k in (hostkey, userkey):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(k)], check=True)
    (root / "authorized_keys").write_text((root / "user_ed25519.pub").read_text())
    remote_tmp = root / "remote_tmp"
    remote_tmp.mkdir()
    try:
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # privilege separation dir sshd insists on
    except PermissionError:
        pass  # not root: sshd then serves only this user, which is all the tests need
    port = free_port()
    cfg = root / "sshd_config"
    cfg.write_text(f"""\
Port {port}
ListenAddress 127.0.0.1
HostKey {hostkey}
PidFile {root}/sshd.pid
AuthorizedKeysFile {root}/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
AcceptEnv TMPDIR
LogLevel VERBOSE
""")
    known = root / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {(root / 'host_ed25519.pub').read_text().split(' ', 2)[0]} "
                     f"{(root / 'host_ed25519.pub').read_text().split()[1]}\n")
    client = root / "ssh_config"
    # Host keys are checked strictly against the throwaway key: the tests never weaken the policy.
    client.write_text(f"""\
Host *
    IdentityFile {userkey}
    IdentitiesOnly yes
    UserKnownHostsFile {known}
    StrictHostKeyChecking yes
    SetEnv TMPDIR={remote_tmp}
    LogLevel ERROR
""")
    log = root / "sshd.log"
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(cfg)], stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    deadline = time.time() + 10
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"sshd exited: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("sshd did not start listening")
    return SSHServer(port, user, client, remote_tmp, proc, log)


def stop_sshd(server: SSHServer) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        server.proc.kill()


def venv_python() -> str:
    """The interpreter running the tests (it has numpy and the runtimes): the 'board's' python."""
    return sys.executable
