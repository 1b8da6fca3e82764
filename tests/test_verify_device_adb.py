"""`verify --device adb://…` through tests/doubles/fake_adb (a transport double: there is no phone here).

tests/doubles/fake_benchmark_model stands for LiteRT's benchmark_model: with --output_filepath it runs
the model once on this host's LiteRT on the inputs of --input_layer_value_files and writes the raw bytes
of every output in the interpreter's order, as the real tool does. What these tests check is our side:
the flags, the byte layout both ways, the judging, the cleanup and the manifest record. No phone, no
ARM kernel runs here (the emulated board in test_arm_board.py covers ARM kernels over SSH).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import stat
import sys
from pathlib import Path

import pytest

from mobiledeploy.cli import main

DOUBLES = Path(__file__).parent / "doubles"
SERIAL = "FAKE0001"
# A Cortex-A55 + Cortex-A76 phone's /proc/cpuinfo (two cores shown).
CPUINFO = """processor\t: 0
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x2
CPU part\t: 0xd05
CPU revision\t: 0

processor\t: 7
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x1
CPU part\t: 0xd0b
CPU revision\t: 0
"""


def _script(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


@pytest.fixture
def phone(tmp_path, monkeypatch):
    """A fake phone root (getprop, /proc/cpuinfo) and a PATH whose `adb` is the transport double."""
    root = tmp_path / "phone"
    (root / "data/local/tmp").mkdir(parents=True)
    (root / "proc").mkdir()
    (root / "proc/cpuinfo").write_text(CPUINFO)
    bin_ = root / "system/bin"
    bin_.mkdir(parents=True)
    _script(bin_ / "getprop", "#!/bin/sh\ncat <<'EOF'\n[ro.product.manufacturer]: [Google]\n"
            "[ro.product.model]: [Pixel 6a]\n[ro.soc.model]: [GS101]\n[ro.build.version.release]: [14]\n"
            "[ro.product.cpu.abi]: [arm64-v8a]\nEOF\n")
    host_bin = tmp_path / "host-bin"
    host_bin.mkdir()
    (host_bin / "adb").symlink_to(DOUBLES / "fake_adb")
    monkeypatch.setenv("PATH", f"{host_bin}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_ADB_ROOT", str(root))
    monkeypatch.setenv("FAKE_ADB_SERIAL", SERIAL)
    monkeypatch.setenv("FAKE_ADB_STATE", "device")
    monkeypatch.setenv("FAKE_PHONE_PYTHON", sys.executable)  # the double runs LiteRT with this interpreter
    return root


@pytest.fixture(scope="module")
def tflite(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("adb-verify")
    assert main(["export", "mobilenetv2_035", "-t", "tflite", "--input-size", "32", "--out", str(out)]) == 0
    return next(out.glob("*.tflite"))


def _copy(artifact: Path, dest: Path) -> Path:
    p = dest / artifact.name
    p.write_bytes(artifact.read_bytes())
    Path(str(p) + ".json").write_text(Path(str(artifact) + ".json").read_text())
    return p


def _verify(args: list[str], capsys) -> tuple[int, dict, str]:
    rc = main(["verify", *args, "--json"])
    cap = capsys.readouterr()
    return rc, (json.loads(cap.out[cap.out.index("{"):]) if "{" in cap.out else {}), cap.err


def _calls(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / "data/local/tmp/calls.jsonl").read_text().splitlines()]


def test_verify_on_the_phone_double(phone, tflite, tmp_path, capsys):
    art = _copy(tflite, tmp_path)
    rc, res, err = _verify([str(art), "--device", f"adb://{SERIAL}",
                            "--benchmark-binary", str(DOUBLES / "fake_benchmark_model"), "--random", "2"], capsys)
    assert rc == 0, err
    dev = res["on_device"]
    assert res["verified"] is True and dev["parity"]["rel_l2"] <= 1e-5 and dev["parity"]["n_samples"] == 5
    assert dev["facts"]["kind"] == "adb" and dev["facts"]["board"] == "Google Pixel 6a"
    assert dev["facts"]["cpu"] == "GS101 / 1x Cortex-A55 + 1x Cortex-A76"
    assert dev["facts"]["vector_path"] == "NEON" and dev["runtime"]["name"] == "litert benchmark_model"
    # The same LiteRT on the same host computed both: the bytes we cut from the output file are its outputs.
    assert res["device_vs_host"]["bit_identical"] is True
    calls = _calls(phone)
    assert len(calls) == 5  # one benchmark_model run per input
    flags = dict(a[2:].split("=", 1) for a in calls[0]["argv"])
    assert flags["input_layer"] == "serving_default_args_0" and flags["input_layer_shape"] == "1,3,32,32"
    assert flags["input_layer_value_files"].startswith("serving_default_args_0:/") and flags["output_filepath"]
    assert not list((phone / "data/local/tmp").glob("mobiledeploy-verify-*"))  # cleaned up
    m = json.loads(Path(str(art) + ".json").read_text())
    assert [d["device"] for d in m["devices"]] == [f"adb://{SERIAL}"] and m["devices"][0]["verified"] is True


def test_a_short_output_file_is_an_error_not_a_verdict(phone, tflite, tmp_path, capsys):
    art = _copy(tflite, tmp_path)
    short = tmp_path / "short_benchmark_model"
    # A benchmark_model whose output file lacks the last 4 bytes (an older tool, a different model).
    _script(short, f"#!/bin/sh\n{DOUBLES / 'fake_benchmark_model'} \"$@\" || exit $?\n"
            "for a in \"$@\"; do case $a in --output_filepath=*) f=${a#--output_filepath=};; esac; done\n"
            "head -c -4 \"$f\" > \"$f.tmp\" && mv \"$f.tmp\" \"$f\"\n")
    rc, res, err = _verify([str(art), "--device", f"adb://{SERIAL}", "--benchmark-binary", str(short),
                            "--random", "1", "--no-photos"], capsys)
    assert rc == 2 and "output bytes" in err and res == {}
    assert not list((phone / "data/local/tmp").glob("mobiledeploy-verify-*"))


def test_wrong_artifact_fails_on_the_phone_double(phone, tflite, tmp_path, capsys):
    from test_arm_board import _break_weights

    art = _copy(tflite, tmp_path)
    _break_weights(art)
    rc, res, err = _verify([str(art), "--device", f"adb://{SERIAL}",
                            "--benchmark-binary", str(DOUBLES / "fake_benchmark_model"), "--random", "1"], capsys)
    assert rc != 0 and res["verified"] is False and res["on_device"]["parity"]["rel_l2"] > 1e-2
    assert "fails the fp32 parity check on adb://" in err


def test_phone_refuses_what_benchmark_model_cannot_run(phone, tmp_path, capsys):
    from mobiledeploy.devicebench.adb_verify import run_adb
    from mobiledeploy.devicebench.remote_verify import DeviceOptions
    from mobiledeploy.errors import UserError

    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"x")
    with pytest.raises(UserError, match="phones verify .tflite"):
        run_adb(f"adb://{SERIAL}", onnx, [], {}, DeviceOptions(benchmark_binary=str(onnx)))
    with pytest.raises(UserError, match="needs --benchmark-binary"):
        run_adb(f"adb://{SERIAL}", tmp_path / "m.tflite", [], {}, DeviceOptions())


def test_value_file_names_with_colons_round_trip():
    """Our escaping and benchmark_model's parser (as the double implements it) agree on 'name:0' inputs."""
    from mobiledeploy.devicebench.adb_verify import _escape

    loader = importlib.machinery.SourceFileLoader("fake_benchmark_model", str(DOUBLES / "fake_benchmark_model"))
    spec = importlib.util.spec_from_loader("fake_benchmark_model", loader)
    double = importlib.util.module_from_spec(spec)
    loader.exec_module(double)
    for name in ("serving_default_input:0", "a::b", "plain"):
        assert double.split_value_file(f"{_escape(name)}:/data/local/tmp/x.bin") == (name, "/data/local/tmp/x.bin")
    assert double.split_value_file("a:b:c") is None  # two separators: the real tool refuses it
