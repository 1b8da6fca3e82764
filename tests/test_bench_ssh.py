"""`bench --device ssh://…` against a real OpenSSH server on 127.0.0.1 (this machine plays the board)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench_support import REPO, start_sshd, stop_sshd, venv_python
from mobiledeploy.cli import main
from mobiledeploy.devicebench.ssh import SSHOptions, SSHTarget, parse_ssh_url, ssh_argv
from mobiledeploy.errors import UserError

FAST = ["--runs", "5", "--warmup", "1"]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    stop_sshd(server)


def _ssh_args(server) -> list[str]:
    return ["--device", server.url, "--ssh-config", str(server.config), "--remote-python", venv_python()]


def _leftovers(server) -> list[str]:
    return sorted(p.name for p in server.remote_tmp.iterdir() if p.name.startswith("mobiledeploy-bench."))


def test_whole_path_copy_run_collect_cleanup(sshd, artifacts, tmp_path, capsys):
    out = tmp_path / "board.json"
    rc = main(["bench", str(artifacts["onnx"]), str(artifacts["tflite"]), *FAST, *_ssh_args(sshd),
               "--sessions", "2", "--json", str(out), "--plot", str(tmp_path / "board.png")])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "tiny.onnx" in captured.out
    run = json.loads(out.read_text())
    dev = run["device"]
    assert dev["kind"] == "ssh" and dev["target"] == sshd.url
    assert dev["cpu"] and dev["cores_used"] and "before" in dev["temperatures_c"]
    workdir = Path(dev["workdir"])
    assert workdir.parent == sshd.remote_tmp  # the board's $TMPDIR, set through the user's ssh config
    assert dev["workdir_removed"] is True and not workdir.exists()
    assert _leftovers(sshd) == []
    # The agent that ran is the copy shipped into the board's folder, not this checkout.
    assert run["agent"]["file"] == str(workdir / "pkg/mobiledeploy/devicebench/agent.py")
    assert [r["runtime"]["name"] for r in run["results"]] == ["onnxruntime", "litert"]
    # --sessions reached the agent: two loads per artifact, 3 runs each (at least --runs 5 in all).
    assert all(r["latency_ms"]["count"] == 6 and len(r["latency_ms"]["session_medians"]) == 2 for r in run["results"])
    assert run["results"][0]["artifact"]["sha256"] == run["results"][0]["artifact"]["sha256"]
    assert run["results"][1]["runtime"]["partitions"] == 1
    assert "--device" in run["protocol"]["command"]


def test_hostile_artifact_names_are_harmless(sshd, artifacts, tmp_path, capsys):
    home_canaries = [Path.home() / "pwned", Path.home() / "pwned2"]
    for c in home_canaries:
        assert not c.exists()
    names = ["a b;rm -rf ~.tflite", "c;touch pwned;.tflite", "d$(touch pwned2)'\".tflite"]
    paths = []
    for n in names:
        p = tmp_path / n
        shutil.copy(artifacts["tflite"], p)
        paths.append(str(p))
    out = tmp_path / "r.json"
    rc = main(["bench", *paths, "--runs", "2", "--warmup", "0", *_ssh_args(sshd), "--json", str(out)])
    assert rc == 0, capsys.readouterr().err
    run = json.loads(out.read_text())
    assert [r["artifact"]["name"] for r in run["results"]] == names
    assert all(r["latency_ms"]["count"] == 2 for r in run["results"])
    for c in home_canaries:
        assert not c.exists(), f"a file name was executed on the board: {c}"
    assert not (Path.home() / "~.tflite").exists()
    assert all(Path(p).exists() for p in paths)  # nothing local was touched either
    assert _leftovers(sshd) == []


def test_agent_failure_is_reported_and_cleaned_up(sshd, artifacts, tmp_path, capsys):
    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes(b"not a flatbuffer at all")
    rc = main(["bench", str(artifacts["onnx"]), str(corrupt), *FAST, *_ssh_args(sshd)])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.startswith(f"error: on {sshd.url}: litert could not load a1/corrupt.tflite"), err
    assert _leftovers(sshd) == []


def test_missing_python_on_the_board_says_how_to_install(sshd, artifacts, capsys):
    rc = main(["bench", str(artifacts["onnx"]), *FAST, "--device", sshd.url, "--ssh-config", str(sshd.config),
               "--remote-python", "/nonexistent/python3"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "could not start" in err and "pip install numpy onnxruntime" in err and "--remote-python" in err
    assert _leftovers(sshd) == []


def test_closed_port_fails_fast_with_one_line(sshd, artifacts, capsys):
    from bench_support import free_port

    url = f"ssh://{sshd.user}@127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    rc = main(["bench", str(artifacts["onnx"]), "--device", url, "--ssh-config", str(sshd.config),
               "--connect-timeout", "3"])
    elapsed = time.monotonic() - t0
    err = capsys.readouterr().err.strip()
    assert rc == 2 and elapsed < 5
    assert err.startswith(f"error: cannot reach {url}") and "Connection refused" in err and "\n" not in err


def test_unknown_key_is_refused_without_a_prompt(sshd, artifacts, tmp_path, capsys):
    stranger = tmp_path / "stranger_ed25519"  # a key the board has never seen
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    cfg = tmp_path / "ssh_config"
    text = re.sub(r"IdentityFile \S+", f"IdentityFile {stranger}", sshd.config.read_text())
    assert str(stranger) in text
    cfg.write_text(text)
    rc = main(["bench", str(artifacts["onnx"]), "--device", sshd.url, "--ssh-config", str(cfg)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "Permission denied" in err and "\n" not in err


def test_ctrl_c_stops_the_agent_and_removes_the_folder(sshd, artifacts, tmp_path):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # The CLI must get SIGINT as from a terminal. A test run started in the background by a non-interactive
    # shell inherits SIGINT ignored, and so would the CLI (Python keeps an inherited SIG_IGN): a Python-level
    # handler here is reset to the default on exec, so the child always starts with Ctrl-C live.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mobiledeploy", "bench", str(artifacts["onnx"]), "--runs", "1000000",
             "--warmup", "0", "--min-seconds", "120", *_ssh_args(sshd)],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        pid_file = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and pid_file is None:
            for d in sshd.remote_tmp.glob("mobiledeploy-bench.*"):
                if (d / "agent.pid").is_file() and (d / "agent.pid").read_text().strip():
                    pid_file = d / "agent.pid"
            time.sleep(0.1)
        assert pid_file is not None, "the agent never started on the board"
        agent_pid = int(pid_file.read_text())
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        leftover = _pid_in(sshd)
        if leftover and _alive(leftover):  # never leave a 120 s agent behind a failed test
            os.kill(leftover, signal.SIGTERM)
    assert proc.returncode == 130, err.decode()
    assert _leftovers(sshd) == []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(agent_pid):
        time.sleep(0.1)
    assert not _alive(agent_pid), "the agent kept running on the board after Ctrl-C"


def _pid_in(server) -> int | None:
    for d in server.remote_tmp.glob("mobiledeploy-bench.*"):
        try:
            return int((d / "agent.pid").read_text())
        except (OSError, ValueError):
            pass
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has finished; only a running process counts.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_ssh_command_line_shape():
    argv = ssh_argv(SSHTarget("board", "pi", 2222), SSHOptions(config="/x/cfg"), ["echo", "a b;c"])
    assert argv[:3] == ["ssh", "-F", "/x/cfg"]
    assert "BatchMode=yes" in argv and "ConnectTimeout=10" in argv
    assert not any("StrictHostKeyChecking" in a for a in argv)  # host-key policy stays the user's
    assert argv[-3:] == ["--", "pi@board", "echo 'a b;c'"]
    assert "-F" not in ssh_argv(SSHTarget("board"), SSHOptions(), ["true"])  # default: ~/.ssh/config
    for bad in ("ssh://-oProxyCommand=x", "ssh://u@h;rm", "ssh://h:0", "http://h"):
        with pytest.raises(UserError):
            parse_ssh_url(bad)
    assert parse_ssh_url("ssh://pi@[fe80::1]:2200") == SSHTarget("[fe80::1]", "pi", 2200)
