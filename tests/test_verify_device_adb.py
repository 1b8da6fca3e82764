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


def test_phone_refuses_what_no_phone_tool_runs(phone, tmp_path, capsys):
    from mobiledeploy.devicebench.adb_verify import run_adb
    from mobiledeploy.devicebench.remote_verify import DeviceOptions
    from mobiledeploy.errors import UserError

    other = tmp_path / "m.mlpackage"
    other.write_bytes(b"x")
    with pytest.raises(UserError, match="phones verify .tflite, .pte, .onnx and .ort"):
        run_adb(f"adb://{SERIAL}", other, [], {}, DeviceOptions(benchmark_binary=str(other)))
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


# --- ExecuTorch's executor_runner and onnxruntime's onnx_test_runner (doubles: tests/doubles/fake_*) ---------


def _install(phone: Path, tool: str, where: str = "data/local/tmp") -> None:
    """Put a double on the fake phone as if the user had pushed the real tool there."""
    dest = phone / where / tool
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.symlink_to(DOUBLES / f"fake_{tool}")


@pytest.fixture(scope="module")
def pte(tmp_path_factory) -> Path:
    pytest.importorskip("executorch")
    out = tmp_path_factory.mktemp("adb-pte")
    assert main(["export", "mobilenetv2_035", "-t", "executorch", "--input-size", "32", "--out", str(out)]) == 0
    return next(out.glob("*.pte"))


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("adb-onnx")
    assert main(["export", "mobilenetv2_035", "-t", "onnx", "--input-size", "32", "--out", str(out)]) == 0
    return next(out.glob("*.onnx"))


def test_pte_through_executor_runner_installed_on_the_phone(phone, pte, tmp_path, capsys):
    art = _copy(pte, tmp_path)
    _install(phone, "executor_runner")
    rc, res, err = _verify([str(art), "--device", f"adb://{SERIAL}", "--random", "2"], capsys)
    assert rc == 0, err
    dev = res["on_device"]
    assert res["verified"] is True and dev["parity"]["rel_l2"] <= 1e-5 and dev["parity"]["n_samples"] == 5
    assert dev["runtime"]["name"] == "executorch executor_runner"
    assert dev["runtime"]["delegate"] == "XNNPACK" and dev["runtime"]["partitions"] >= 1
    # The double runs the host's ExecuTorch, as verify's host half does: the bytes we read back are its outputs.
    assert res["device_vs_host"]["bit_identical"] is True
    calls = [c for c in _calls(phone) if c.get("tool") == "executor_runner"]
    assert len(calls) == 5
    flags = dict(a[2:].split("=", 1) for a in calls[0]["argv"])
    assert flags["model_path"].endswith("/model.pte") and flags["cpu_threads"] == "1"
    assert len(flags["inputs"].split(",")) == 1 and flags["output_file"].endswith("/s0_out")
    assert not list((phone / "data/local/tmp").glob("mobiledeploy-verify-*"))  # cleaned up
    m = json.loads(Path(str(art) + ".json").read_text())
    assert [(d["device"], d["verified"]) for d in m["devices"]] == [(f"adb://{SERIAL}", True)]


def test_pte_through_a_given_executor_runner_and_a_crashing_one(phone, pte, tmp_path, capsys):
    art = _copy(pte, tmp_path)
    rc, res, err = _verify([str(art), "--device", f"adb://{SERIAL}", "--executor-runner",
                            str(DOUBLES / "fake_executor_runner"), "--random", "1", "--no-photos"], capsys)
    assert rc == 0, err
    call = [c for c in _calls(phone) if c.get("tool") == "executor_runner"][0]
    assert "/mobiledeploy-verify-" in call["cwd"]  # pushed into the work folder and run from there
    assert res["on_device"]["runtime"]["binary_sha256"]
    # A runner whose model file is missing aborts (ET_CHECK: SIGABRT, status 134): an error, not a verdict.
    crash = tmp_path / "crash_runner"
    _script(crash, f'#!/bin/sh\nexec {DOUBLES / "fake_executor_runner"} "$@" --model_path=/nonexistent.pte\n')
    rc, res, err = _verify([str(art), "--device", f"adb://{SERIAL}", "--executor-runner", str(crash),
                            "--random", "1", "--no-photos"], capsys)
    assert rc == 2 and "executor_runner exited with status 134" in err and res == {}
    assert not list((phone / "data/local/tmp").glob("mobiledeploy-verify-*"))


def test_executor_runner_output_files_are_raw_tensor_bytes(pte, tmp_path):
    """The double's BASE-<i>.bin is the output's raw bytes; a file of another size is refused with the reason."""
    import subprocess

    import numpy as np

    from mobiledeploy.devicebench.adb_verify import executor_runner_argv, pte_io, read_executor_outputs
    from mobiledeploy.errors import UserError

    ins, outs = pte_io(pte)
    x = np.random.default_rng(1).standard_normal(ins[0].shape).astype(np.float32)
    (tmp_path / "x.bin").write_bytes(x.tobytes())
    proc = subprocess.run([sys.executable, str(DOUBLES / "fake_executor_runner"),
                           *executor_runner_argv(str(pte), [str(tmp_path / "x.bin")], str(tmp_path / "out"))],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "OutputX 0: tensor(sizes=[1, 1000]" in proc.stdout
    got = read_executor_outputs([tmp_path / "out-0.bin"], outs)["output"]
    from mobiledeploy.devicebench.runners import host_runner_class, load_runner

    want = load_runner(pte, 1, host_runner_class(pte)).run({"input": x})["output"]
    assert np.array_equal(got, want)
    (tmp_path / "out-0.bin").write_bytes((tmp_path / "out-0.bin").read_bytes()[:-4])
    with pytest.raises(UserError, match="executor_runner wrote 3996 bytes"):
        read_executor_outputs([tmp_path / "out-0.bin"], outs)
    bad = subprocess.run([sys.executable, str(DOUBLES / "fake_executor_runner"), "--print_outputs=none"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and "unknown command line flag 'print_outputs'" in bad.stderr


def test_missing_tools_make_the_check_not_verified(phone, pte, onnx_model, tmp_path, capsys):
    for artifact, tool in ((pte, "executor_runner"), (onnx_model, "onnx_test_runner")):
        art = _copy(artifact, tmp_path)
        rc, res, err = _verify([str(art), "--device", f"adb://{SERIAL}", "--random", "1", "--no-photos"], capsys)
        line = err.strip().splitlines()[-1]
        assert rc == 4 and res == {}, err
        assert f"not verified on adb://{SERIAL}: {tool} not found on the device" in line and "adb push" in line
        assert not list((phone / "data/local/tmp").glob("mobiledeploy-verify-*"))
        (tmp_path / art.name).unlink()
        Path(str(tmp_path / art.name) + ".json").unlink()


def test_onnx_through_onnx_test_runner_on_the_phone(phone, onnx_model, tmp_path, capsys):
    art = _copy(onnx_model, tmp_path)
    _install(phone, "onnx_test_runner", "system/bin")  # on the phone's PATH
    rc, res, err = _verify([str(art), "--device", f"adb://{SERIAL}", "--random", "2"], capsys)
    assert rc == 0, err
    dev = res["on_device"]
    assert res["verified"] is True and dev["parity"]["passed"] is True and dev["parity"]["n_samples"] == 5
    assert dev["parity"]["rel_l2"] is None  # the outputs stay on the phone: a verdict, no figure
    tol = dev["parity"]["tolerance"]
    assert tol["rel_l2"] == 1e-5 and tol["relative_per_sample_tolerance"] == 0 and 0 < tol["per_sample_tolerance"]
    assert dev["runtime"]["name"] == "onnxruntime onnx_test_runner" and res["device_vs_host"] is None
    call = [c for c in _calls(phone) if c.get("tool") == "onnx_test_runner"][0]
    assert call["argv"][:4] == ["-j", "1", "-c", "1"] and call["argv"][-1].endswith("/cases")
    assert not list((phone / "data/local/tmp").glob("mobiledeploy-verify-*"))
    m = json.loads(Path(str(art) + ".json").read_text())
    rec = m["devices"][0]
    assert rec["verified"] is True and rec["rel_l2"] is None
    assert rec["runtime"]["name"] == "onnxruntime onnx_test_runner"
    assert main(["verify", str(art), "--device", f"adb://{SERIAL}", "--random", "1", "--no-photos"]) == 0
    table = capsys.readouterr().out
    assert "compared on the phone by onnx_test_runner" in table and "onnx_test_runner judged on the phone" in table


def _break_onnx(artifact: Path) -> None:
    """Scale the largest float initializer by 1.001 and re-record the sha256: wrong by ~1e-4, consistent."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(artifact))
    init = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    w = numpy_helper.to_array(init).astype(np.float32) * np.float32(1.001)
    init.CopyFrom(numpy_helper.from_array(w, init.name))
    _save_consistent(model, artifact)


def _save_consistent(model, artifact: Path) -> None:
    """Save an edited ONNX model over the artifact and re-record its sha256, so only its numbers are wrong."""
    import onnx

    from mobiledeploy import manifest as mf

    onnx.save(model, str(artifact))
    man = mf.manifest_path(artifact)
    m = json.loads(man.read_text())
    m["sha256"] = mf.sha256(artifact)
    man.write_text(json.dumps(m))


def test_onnx_test_runner_fails_a_slightly_wrong_model(phone, onnx_model, tmp_path, capsys):
    art = _copy(onnx_model, tmp_path)
    _break_onnx(art)
    rc, res, err = _verify([str(art), "--device", f"adb://{SERIAL}", "--onnx-test-runner",
                            str(DOUBLES / "fake_onnx_test_runner"), "--random", "1", "--no-photos"], capsys)
    assert rc == 3 and res["verified"] is False and res["on_device"]["parity"]["passed"] is False, err
    call = [c for c in _calls(phone) if c.get("tool") == "onnx_test_runner"][0]
    assert "/mobiledeploy-verify-" in call["cwd"] and res["on_device"]["runtime"]["binary_sha256"]  # pushed, run
    assert res["host"]["parity"]["rel_l2"] > 1e-5  # the host sees the same error in figures
    assert "onnx_test_runner on the phone: 0/1 test data sets within" in err


def test_onnx_test_runner_undecided_is_not_verified(phone, onnx_model, tmp_path, capsys):
    """One logit off by ~1e-4 of the logits' RMS: over the strict per-element limit, under the one that proves
    a miss (rel_l2 ~3e-6 meets the bar): element-wise checks cannot decide, so "not verified", never FAILED."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    art = _copy(onnx_model, tmp_path)
    sess = ort.InferenceSession(str(art))
    x = np.random.default_rng(0).standard_normal(sess.get_inputs()[0].shape).astype(np.float32)
    logits = sess.run(None, {sess.get_inputs()[0].name: x})[0].ravel()
    k = int(np.argmax(np.abs(logits)))  # the largest logit: its relative change is steady across inputs
    model = onnx.load(str(art))
    weight = next(t for t in model.graph.initializer if list(t.dims)[:1] == [1000])  # the classifier's rows
    w = numpy_helper.to_array(weight).astype(np.float32).copy()
    w[k] *= np.float32(1 + 1e-4 * np.sqrt(np.mean(np.square(logits))) / abs(logits[k]))
    weight.CopyFrom(numpy_helper.from_array(w, weight.name))
    _save_consistent(model, art)
    rc, res, err = _verify([str(art), "--device", f"adb://{SERIAL}", "--onnx-test-runner",
                            str(DOUBLES / "fake_onnx_test_runner"), "--random", "2"], capsys)
    assert rc == 4, err
    assert f"not verified on adb://{SERIAL}: onnx_test_runner found elements off by more than" in err
    runs = [c for c in _calls(phone) if c.get("tool") == "onnx_test_runner"]
    assert len(runs) == 2  # the strict limit, then the one that would prove a miss


def test_onnx_tolerances_bracket_the_rel_l2_bar():
    """Every element within pass_atol bounds each output's rel_l2 by the bar; one element beyond fail_atol alone
    puts its output's rel_l2 above it."""
    import numpy as np

    from mobiledeploy.devicebench.adb_verify import onnx_tolerances

    rng = np.random.default_rng(0)
    refs = [{"a": rng.standard_normal((1, 1000)).astype(np.float32) * s, "b": rng.standard_normal(7)} for s in (1, 3)]
    bar = 1e-5
    pass_atol, fail_atol = onnx_tolerances(refs, ["a", "b"], bar)
    assert pass_atol < fail_atol
    for r in refs:
        for name in ("a", "b"):
            e = np.asarray(r[name], np.float64).ravel()
            worst = pass_atol * rng.choice([-1.0, 1.0], e.size)  # every element at the pass limit
            assert np.linalg.norm(worst) / np.linalg.norm(e) <= bar
            one = np.zeros_like(e)
            one[0] = fail_atol * 1.0001  # a single element just over the fail limit
            assert np.linalg.norm(one) / np.linalg.norm(e) > bar


def test_onnx_test_runner_summary_parses_the_real_text():
    from mobiledeploy.devicebench.adb_verify import parse_test_runner_summary

    text = ("Load Test Case: mobiledeploy in /data/local/tmp/x/cases/test_mobiledeploy\n"
            "result: \n\tModels: 1\n\tTotal test cases: 3\n\t\tSucceeded: 2\n\t\tNot implemented: 0\n"
            "\t\tFailed: 1\n\t\t\tResult differs: 1\n\tStats by Operator type:\n\t\tNot implemented(0): \n"
            "\t\tFailed:mobiledeploy\nFailed Test Cases:mobiledeploy onnx commit: unknown version\n")
    assert parse_test_runner_summary(text) == {"models": 1, "total": 3, "succeeded": 2, "not_implemented": 0,
                                               "failed": 1, "result_differs": 1}
    assert parse_test_runner_summary("please specify a test data dir") is None
