"""Benchmarks on ARM Linux boards over SSH, through the system OpenSSH client.

The user's ~/.ssh/config, agent, jump hosts and host-key policy apply unchanged: we only add
BatchMode (never hang on a prompt) and ConnectTimeout. Every remote command line is built from
quoted arguments and run by `sh -c` with the values as positional parameters, so neither file
names nor the user's login shell can change what runs. The board's temporary folder is removed
by a shell trap when the agent ends and again from here in a `finally`, also on Ctrl-C.
"""

from __future__ import annotations

import io
import re
import shlex
import signal
import subprocess
import sys
import tarfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from mobiledeploy.errors import UserError

from . import agent as agent_mod
from .protocol import Protocol, find_manifest

# Files the agent imports on the board: numpy + the runtime + these, nothing else of mobiledeploy.
AGENT_FILES = ("__init__.py", "agent.py", "device.py", "infer.py", "protocol.py", "runners.py", "stats.py")
INSTALL_HINT = ("on the board: pip install numpy onnxruntime (for .onnx) or numpy ai-edge-litert "
                "(for .tflite; older boards: tflite-runtime), then pass --remote-python /path/to/that/python")
_NAME = re.compile(r"[A-Za-z0-9_.%+\-]+")
_HOST = re.compile(r"[A-Za-z0-9_.\-]+|\[[0-9A-Fa-f:.%a-z]+\]")
_WORKDIR = re.compile(r"/[A-Za-z0-9_./\-]+")


@dataclass(frozen=True)
class SSHTarget:
    """ssh://[user@]host[:port]; host may be an alias from the user's ssh config."""

    host: str
    user: str | None = None
    port: int | None = None

    @property
    def dest(self) -> str:
        host = self.host.strip("[]")
        return f"{self.user}@{host}" if self.user else host

    def url(self) -> str:
        """The target as the user wrote it."""
        return "ssh://" + (f"{self.user}@" if self.user else "") + self.host + (f":{self.port}" if self.port else "")


def parse_ssh_url(url: str) -> SSHTarget:
    """Parse ssh://[user@]host[:port], refusing anything ssh could read as an option."""
    if not url.startswith("ssh://"):
        raise UserError(f"not an ssh:// device: {url!r}", "use --device ssh://user@host[:port]")
    rest = url[len("ssh://"):].rstrip("/")
    user = None
    if "@" in rest:
        user, rest = rest.rsplit("@", 1)
        if not _NAME.fullmatch(user) or user.startswith("-"):
            raise UserError(f"bad user name in {url!r}", "use --device ssh://user@host[:port]")
    port = None
    m = re.fullmatch(r"(.+?):(\d+)", rest) if not rest.endswith("]") else None
    if m and not (rest.startswith("[") and not m.group(1).endswith("]")):
        rest, port = m.group(1), int(m.group(2))
        if not 0 < port < 65536:
            raise UserError(f"bad port in {url!r}", "ports are 1-65535")
    if not rest or rest.startswith("-") or not _HOST.fullmatch(rest):
        raise UserError(f"bad host in {url!r}", "use --device ssh://user@host[:port] (a name, an IP or [IPv6])")
    return SSHTarget(rest, user, port)


@dataclass
class SSHOptions:
    """How to reach the board: ssh config file, connect timeout, which python runs the agent there."""

    config: str | None = None  # passed as `ssh -F`; None keeps the user's ~/.ssh/config
    connect_timeout: int = 10
    remote_python: str = "python3"
    ssh: str = "ssh"
    run_timeout: float | None = None  # seconds for the whole remote run; None: no limit


def ssh_argv(target: SSHTarget, opts: SSHOptions, remote: Sequence[str]) -> list[str]:
    """ssh argument list: options, `--`, destination, then one quoted remote command line."""
    argv = [opts.ssh]
    if opts.config:
        argv += ["-F", opts.config]
    argv += ["-T", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={int(opts.connect_timeout)}",
             "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4"]
    if target.port:
        argv += ["-p", str(target.port)]
    argv += ["--", target.dest, " ".join(shlex.quote(a) for a in remote)]
    return argv


def _sh(script: str, *args: str) -> list[str]:
    """A POSIX sh invocation with values as positional parameters ($1, $2, …), never spliced into the script."""
    return ["sh", "-c", script, "mobiledeploy-bench", *args]


_MKTEMP = 'd=$(mktemp -d "${TMPDIR:-/tmp}/mobiledeploy-bench.XXXXXX") && printf "%s\\n" "$d"'

# $1 = workdir, $2 = python, rest = agent arguments. The EXIT trap removes the folder however
# the agent ends; the pid file lets a Ctrl-C on our side stop an agent that is still running.
_RUN = r'''
d=$1; py=$2; shift 2
trap 'rm -rf -- "$d"' EXIT
trap 'exit 130' INT TERM HUP
cd "$d" || exit 97
tar -xf - || { echo "error: could not unpack the artifacts on the device (is tar installed?)" >&2; exit 98; }
PYTHONPATH="$d/pkg${PYTHONPATH:+:$PYTHONPATH}" "$py" -m mobiledeploy.devicebench.agent "$@" &
pid=$!
echo "$pid" > "$d/agent.pid"
wait "$pid"
'''

_CLEANUP = r'''
d=$1
if [ -f "$d/agent.pid" ]; then kill "$(cat "$d/agent.pid")" 2>/dev/null; fi
rm -rf -- "$d"
[ ! -e "$d" ]
'''


def _run(argv: list[str], *, input: bytes | None = None, timeout: float | None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, input=input if input is not None else b"", capture_output=True, timeout=timeout)
    except FileNotFoundError:
        raise UserError(f"'{argv[0]}' not found", "install the OpenSSH client (apt-get install openssh-client)") \
            from None
    except subprocess.TimeoutExpired:
        raise UserError(f"ssh did not finish within {timeout:.0f} s", "check the network, or raise --connect-timeout") \
            from None


def _last_line(b: bytes) -> str:
    lines = [ln.strip() for ln in b.decode(errors="replace").splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def _connection_error(target: SSHTarget, proc: subprocess.CompletedProcess) -> UserError:
    why = _last_line(proc.stderr) or f"ssh exited with status {proc.returncode}"
    return UserError(f"cannot reach {target.url()}: {why}",
                     "check host, port, user and key; `ssh` with the same arguments must log in without a prompt")


def make_workdir(target: SSHTarget, opts: SSHOptions) -> str:
    """Create a private temporary folder on the board and return its path."""
    proc = _run(ssh_argv(target, opts, _sh(_MKTEMP)), timeout=opts.connect_timeout + 30)
    if proc.returncode == 255:
        raise _connection_error(target, proc)
    path = _last_line(proc.stdout)
    if proc.returncode != 0 or not _WORKDIR.fullmatch(path):
        raise UserError(f"could not create a temporary folder on {target.url()}: "
                        f"{_last_line(proc.stderr) or path or 'no output'}",
                        "the board needs a POSIX sh and mktemp, and a writable $TMPDIR or /tmp")
    return path


def remove_workdir(target: SSHTarget, opts: SSHOptions, workdir: str) -> bool:
    """Stop a still-running agent and delete the folder; True when it is verifiably gone."""
    with _sigint_deferred():
        try:
            proc = _run(ssh_argv(target, opts, _sh(_CLEANUP, workdir)), timeout=opts.connect_timeout + 30)
        except UserError:
            return False
    return proc.returncode == 0


@contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Let cleanup finish even when the user presses Ctrl-C again; re-raise afterwards."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    hit = []
    old = signal.signal(signal.SIGINT, lambda *_: hit.append(1))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
    if hit:
        raise KeyboardInterrupt


def _onnx_sidecars(path: Path) -> list[Path]:
    """External-data files an ONNX model references (they must travel with it, under the same names)."""
    try:
        import onnx
    except ImportError:
        return [p for p in [Path(str(path) + ".data")] if p.is_file()]
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise UserError(f"cannot read {path}: {e}", "check that it is a complete ONNX file") from None
    names: set[str] = set()

    def tensors(graph):  # initializers and tensor attributes, subgraphs included
        yield from graph.initializer
        for node in graph.node:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t
                yield from attr.tensors
                if attr.HasField("g"):
                    yield from tensors(attr.g)
                for g in attr.graphs:
                    yield from tensors(g)

    for t in tensors(model.graph):
        if t.data_location == onnx.TensorProto.EXTERNAL:
            names.update(e.value for e in t.external_data if e.key == "location")
    return [path.parent / n for n in sorted(names)]


def agent_modules(here: Path) -> list[str]:
    """AGENT_FILES plus every devicebench module they import relatively (a runner registered from its own
    file, e.g. `from . import executorch_runner`, must travel too or the agent cannot even start)."""
    import ast

    todo, seen = list(AGENT_FILES), set()
    while todo:
        name = todo.pop()
        if name in seen or not (here / name).is_file():
            continue
        seen.add(name)
        for node in ast.walk(ast.parse((here / name).read_text(), filename=name)):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                todo += [f"{node.module}.py"] if node.module else [f"{a.name}.py" for a in node.names]
    return sorted(seen)


def _pkg_files() -> dict[str, bytes]:
    """The agent's files as they will sit under pkg/ on the board."""
    import mobiledeploy
    import mobiledeploy.errors as errors_mod
    import mobiledeploy.manifest as manifest_mod
    import mobiledeploy.versions as versions_mod

    here = Path(agent_mod.__file__).parent
    files = {
        # A stub package init: the real one may grow imports the board does not have.
        "pkg/mobiledeploy/__init__.py": f'__version__ = "{mobiledeploy.__version__}"\n'.encode(),
        "pkg/mobiledeploy/errors.py": Path(errors_mod.__file__).read_bytes(),
        "pkg/mobiledeploy/manifest.py": Path(manifest_mod.__file__).read_bytes(),  # protocol reads manifests
        "pkg/mobiledeploy/versions.py": Path(versions_mod.__file__).read_bytes(),
    }
    for name in agent_modules(here):
        files[f"pkg/mobiledeploy/devicebench/{name}"] = (here / name).read_bytes()
    return files


def bundle(artifacts: Sequence[str], extra: Mapping[str, bytes] | None = None) -> tuple[bytes, list[str]]:
    """A tar of the agent, the artifacts (each in its own folder, with its manifest and sidecars) and `extra` files.

    Returns the tar bytes and the artifact paths relative to the board's workdir.
    """
    buf = io.BytesIO()
    remote_paths = []

    def add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
        tar.addfile(info, io.BytesIO(data))

    def reset(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in {**_pkg_files(), **(extra or {})}.items():
            add_bytes(tar, name, data)
        for i, a in enumerate(artifacts):
            p = Path(a)
            folder = f"a{i}"
            tar.add(str(p.resolve()), arcname=f"{folder}/{p.name}", filter=reset)
            extras = []
            manifest = find_manifest(str(p))
            if manifest:
                extras.append(Path(manifest))
            if p.suffix.lower() == ".onnx":
                extras += _onnx_sidecars(p)
            for e in extras:
                if not e.is_file():
                    raise UserError(f"{p.name} needs {e.name}, which is missing", "keep the files an export wrote together")
                tar.add(str(e), arcname=f"{folder}/{e.name}", filter=reset)
            remote_paths.append(f"{folder}/{p.name}")
    return buf.getvalue(), remote_paths


def agent_argv(proto: Protocol, runtime: str, remote_paths: Sequence[str]) -> list[str]:
    """Agent arguments for a protocol (the agent's argparse mirrors `bench`'s options)."""
    argv = ["--runtime", runtime, "--threads", str(proto.threads), "--runs", str(proto.runs),
            "--warmup", str(proto.warmup), "--warmup-seconds", repr(proto.warmup_seconds),
            "--min-seconds", repr(proto.min_seconds), "--cooldown", repr(proto.cooldown),
            "--seed", str(proto.seed)]
    if proto.cores:
        argv += ["--cores", ",".join(str(c) for c in proto.cores)]
    if proto.profile_ops:
        argv.append("--profile-ops")
    if proto.sessions > 1:
        argv += ["--sessions", str(proto.sessions)]
    return argv + ["--", *remote_paths]


def bench_ssh(url: str, artifacts: Sequence[str], runtime: str, proto: Protocol, opts: SSHOptions,
              progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Copy artifacts + agent to the board, run the agent, collect its JSON, clean up; the run result."""
    proto.validate()
    result = run_agent(url, artifacts, lambda paths: agent_argv(proto, runtime, paths), opts, progress=progress)
    for r in result.get("results", []):
        r["device"] = result["device"]
    emulated = (result["device"].get("isa") or {}).get("emulated_cpu")
    if emulated:  # scripts/arm-board.sh, or any qemu-user board: its milliseconds are qemu's, not a CPU's
        result.setdefault("notes", []).append(
            f"{url} is emulated (qemu-user, QEMU_CPU={emulated}): these latencies say nothing about a phone "
            "or a board; use it for numerics (verify --device), not timing")
    return result


def run_agent(url: str, artifacts: Sequence[str], argv: Callable[[list[str]], list[str]], opts: SSHOptions,
              extra: Mapping[str, bytes] | None = None,
              progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Ship agent + artifacts (+ extra files) to a fresh folder on the board, run the agent with
    argv(remote artifact paths), return its JSON with the board's facts under "device"; always clean up.
    """
    target = parse_ssh_url(url)
    say = progress or (lambda _m: None)
    for a in artifacts:
        if not Path(a).exists():
            raise UserError(f"artifact not found: {a}", "check the path (boards run files, not model names)")
    payload, remote_paths = bundle(artifacts, extra)
    say(f"connecting to {target.url()}")
    workdir = make_workdir(target, opts)
    removed = False
    try:
        say(f"copying {len(payload) / 2**20:.1f} MB and running the agent in {workdir}")
        remote = _sh(_RUN, workdir, opts.remote_python, *argv(remote_paths))
        proc = _run(ssh_argv(target, opts, remote), input=payload, timeout=opts.run_timeout)
        out = proc.stdout.decode(errors="replace")
        result = agent_mod.extract(out)
        if result is None:
            raise _agent_failure(target, proc, out)
    finally:
        removed = remove_workdir(target, opts, workdir)
        if not removed:
            print(f"warning: could not verify that {workdir} was removed on {target.url()}", file=sys.stderr)
    dev = result.get("device") or {}
    dev.update(kind="ssh", target=target.url(), workdir=workdir, workdir_removed=removed,
               remote_python=opts.remote_python)
    result["device"] = dev
    return result


def _agent_failure(target: SSHTarget, proc: subprocess.CompletedProcess, out: str) -> UserError:
    err = proc.stderr.decode(errors="replace")
    if proc.returncode == 255 and "error:" not in err:
        return _connection_error(target, proc)
    lines = [ln.strip() for ln in err.splitlines() if ln.strip()]
    msg = next((ln for ln in reversed(lines) if ln.startswith("error:")), None)
    if msg:
        return UserError(f"on {target.url()}: {msg[len('error:'):].strip()}", None)
    if proc.returncode == 127 or "No module named" in err or "not found" in err:
        return UserError(f"the agent could not start on {target.url()}: {lines[-1] if lines else 'no output'}",
                         INSTALL_HINT)
    tail = "\n".join((out + "\n" + err).strip().splitlines()[-15:])
    return UserError(f"the agent on {target.url()} exited with status {proc.returncode} and no result; "
                     f"its output:\n{tail}", INSTALL_HINT)
