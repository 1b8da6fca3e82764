"""`bench --device adb://…` end to end through tests/doubles/fake_adb, a transport double (no phone here).

The double runs the phone's side locally in a folder that stands for the phone's filesystem;
tests/doubles/fake_benchmark_model prints benchmark_model's log format and records what it printed,
so the parsed JSON can be compared with the printed numbers.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from mobiledeploy.cli import main

DOUBLES = Path(__file__).parent / "doubles"
SERIAL = "FAKE0001"
# A 4+4 SoC: little cores at 1.8 GHz, big cores at 2.4 GHz.
FREQS = {c: (1800000 if c < 4 else 2400000) for c in range(8)}


@pytest.fixture
def phone(tmp_path, monkeypatch):
    """A fake phone root, and a PATH whose `adb` is the transport double."""
    root = tmp_path / "phone"
    for c, f in FREQS.items():
        d = root / f"sys/devices/system/cpu/cpu{c}/cpufreq"
        d.mkdir(parents=True)
        (d / "cpuinfo_max_freq").write_text(f"{f}\n")
        (d / "scaling_governor").write_text("schedutil\n")
    for i, (kind, temp) in enumerate((("cpu-big", "41500"), ("battery", "30100"))):
        z = root / f"sys/class/thermal/thermal_zone{i}"
        z.mkdir(parents=True)
        (z / "type").write_text(kind + "\n")
        (z / "temp").write_text(temp + "\n")
    (root / "data/local/tmp").mkdir(parents=True)
    bin_ = root / "system/bin"
    bin_.mkdir(parents=True)
    _script(bin_ / "getprop", "#!/bin/sh\ncat <<'EOF'\n[ro.product.manufacturer]: [Google]\n"
            "[ro.product.model]: [Pixel 7]\n[ro.soc.manufacturer]: [Google]\n[ro.soc.model]: [GS201]\n"
            "[ro.build.version.release]: [14]\n[ro.product.cpu.abi]: [arm64-v8a]\nEOF\n")
    # Android's taskset is toybox's: `taskset MASK CMD…`. The double records the mask and runs CMD.
    _script(bin_ / "taskset", f"#!/bin/sh\necho \"$1\" >> {root}/taskset.log\nshift\nexec \"$@\"\n")
    host_bin = tmp_path / "host-bin"
    host_bin.mkdir()
    (host_bin / "adb").symlink_to(DOUBLES / "fake_adb")
    monkeypatch.setenv("PATH", f"{host_bin}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_ADB_ROOT", str(root))
    monkeypatch.setenv("FAKE_ADB_SERIAL", SERIAL)
    monkeypatch.setenv("FAKE_ADB_STATE", "device")
    return root


def _script(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def _calls(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / "data/local/tmp/calls.jsonl").read_text().splitlines()]


def _workdirs(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "data/local/tmp").glob("mobiledeploy-bench-*"))


def test_two_models_interleaved_pinned_parsed_cleaned(phone, artifacts, tmp_path, capsys):
    other = tmp_path / "other.tflite"
    shutil.copy(artifacts["tflite"], other)
    with open(other, "ab") as f:
        f.write(b"\0" * 333)  # a different size gives the double different timings
    out = tmp_path / "phone.json"
    rc = main(["bench", str(artifacts["tflite"]), str(other), "--device", f"adb://{SERIAL}",
               "--benchmark-binary", str(DOUBLES / "fake_benchmark_model"), "--threads", "4", "--runs", "6",
               "--warmup", "2", "--profile-ops", "--json", str(out), "--plot", str(tmp_path / "phone.png")])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "Pixel 7" in captured.out
    run = json.loads(out.read_text())
    calls = _calls(phone)
    # Three rounds, A B A B A B, two counted runs each.
    graphs = [next(a for a in c["argv"] if a.startswith("--graph=")).rsplit("/", 1)[1] for c in calls]
    assert graphs == ["m0.tflite", "m1.tflite"] * 3
    for c in calls:
        assert {"--num_threads=4", "--num_runs=2", "--warmup_runs=2", "--enable_op_profiling=true",
                "--report_peak_memory_footprint=true"} <= set(c["argv"])
    # The four 2.4 GHz cores; each run is a probe (`taskset f0 true`) plus the pinned benchmark.
    assert (phone / "taskset.log").read_text().split() == ["f0"] * 12
    dev = run["device"]
    assert dev["kind"] == "adb" and dev["model"] == "Google Pixel 7" and dev["soc"] == "Google GS201"
    assert dev["cores_used"] == [4, 5, 6, 7] and dev["taskset_mask"] == "f0"
    assert dev["governor"] == "schedutil"
    assert dev["temperatures_c"]["before"] == {"cpu-big": 41.5, "battery": 30.1}
    assert dev["temperatures_c"]["after"] == {"cpu-big": 41.5, "battery": 30.1}
    assert dev["workdir_removed"] is True and _workdirs(phone) == []
    for i, r in enumerate(run["results"]):
        mine = calls[i::2]
        runs_us = [t for c in mine for t in c["runs"]]
        lat = r["latency_ms"]
        assert lat["count"] == 6
        assert lat["mean"] == pytest.approx(sum(runs_us) / len(runs_us) / 1000, rel=1e-4)
        assert lat["min"] == min(runs_us) / 1000 and lat["max"] == max(runs_us) / 1000
        assert lat["init"] == mine[0]["init_us"] / 1000 and lat["first"] == mine[0]["first_us"] / 1000
        assert lat["median"] is None and lat["raw"] is None  # not pooled, not invented
        assert r["runtime"]["partitions"] == 1 and r["runtime"]["delegate"] == "XNNPACK"
        assert r["memory_mb"]["peak"] == 9.75
        assert r["ops"]["available"] and r["ops"]["table"][0]["op"] == "TfLiteXNNPackDelegate"
    assert run["results"][1]["ratio_to_first"] == pytest.approx(
        run["results"][1]["latency_ms"]["mean"] / run["results"][0]["latency_ms"]["mean"])
    assert run["results"][0]["ratio_stat"] == "mean"


def test_single_model_keeps_the_printed_median(phone, artifacts, tmp_path, capsys):
    out = tmp_path / "one.json"
    rc = main(["bench", str(artifacts["tflite"]), "--device", f"adb://{SERIAL}", "--benchmark-binary",
               str(DOUBLES / "fake_benchmark_model"), "--runs", "7", "--warmup", "1", "--json", str(out)])
    assert rc == 0, capsys.readouterr().err
    (call,) = _calls(phone)
    lat = json.loads(out.read_text())["results"][0]["latency_ms"]
    assert lat["median"] == call["median_us"] / 1000 and lat["count"] == 7
    assert (phone / "taskset.log").read_text().split() == ["f0", "f0"]  # 1 thread: the fastest cluster


def test_more_threads_than_pinned_phone_cores_is_said(phone, artifacts, tmp_path, capsys):
    out = tmp_path / "one.json"
    rc = main(["bench", str(artifacts["tflite"]), "--device", f"adb://{SERIAL}", "--benchmark-binary",
               str(DOUBLES / "fake_benchmark_model"), "--runs", "3", "--warmup", "1", "--threads", "2",
               "--cores", "7", "--json", str(out)])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "note: --threads 2 is more than the 1 CPU(s) this run could use (7)" in err
    assert len(json.loads(out.read_text())["notes"]) == 1


@pytest.mark.parametrize("state,words", [("unauthorized", "Allow USB debugging"), ("offline", "reconnect")])
def test_unusable_phone_states(phone, artifacts, monkeypatch, capsys, state, words):
    monkeypatch.setenv("FAKE_ADB_STATE", state)
    rc = main(["bench", str(artifacts["tflite"]), "--device", f"adb://{SERIAL}", "--benchmark-binary",
               str(DOUBLES / "fake_benchmark_model")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and f"phone {SERIAL} is {state}" in err and words in err and "\n" not in err


def test_unknown_serial(phone, artifacts, capsys):
    rc = main(["bench", str(artifacts["tflite"]), "--device", "adb://NOPE", "--benchmark-binary",
               str(DOUBLES / "fake_benchmark_model")])
    assert rc == 2 and "phone NOPE is missing" in capsys.readouterr().err


def test_output_that_does_not_parse_shows_the_raw_text_and_cleans_up(phone, artifacts, tmp_path, capsys):
    broken = tmp_path / "broken_benchmark_model"
    _script(broken, "#!/bin/sh\necho 'INFO: STARTING!'\necho 'Segmentation fault (core dumped) at 0xdeadbeef'\n")
    rc = main(["bench", str(artifacts["tflite"]), "--device", f"adb://{SERIAL}", "--benchmark-binary", str(broken),
               "--runs", "3"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "Inference timings in us" in err and "Segmentation fault (core dumped) at 0xdeadbeef" in err
    assert _workdirs(phone) == []


def test_bad_adb_inputs(phone, artifacts, tmp_path, capsys):
    rc = main(["bench", str(artifacts["tflite"]), "--device", f"adb://{SERIAL}"])
    assert rc == 2 and "--benchmark-binary" in capsys.readouterr().err
    rc = main(["bench", str(artifacts["onnx"]), "--device", f"adb://{SERIAL}", "--benchmark-binary",
               str(DOUBLES / "fake_benchmark_model")])
    assert rc == 2 and "phones run .tflite" in capsys.readouterr().err
    rc = main(["bench", str(artifacts["tflite"]), "--device", f"adb://{SERIAL}", "--benchmark-binary",
               str(tmp_path / "nope")])
    assert rc == 2 and "benchmark binary not found" in capsys.readouterr().err
    rc = main(["bench", str(artifacts["tflite"]), "--device", f"adb://{SERIAL}", "--runtime", "onnxruntime",
               "--benchmark-binary", str(DOUBLES / "fake_benchmark_model")])
    assert rc == 2 and "does not run on phones" in capsys.readouterr().err
    assert _workdirs(phone) == []


def test_rejected_mask_runs_unpinned_on_record(phone, artifacts, tmp_path, capsys):
    """Big cores can be offline (hotplug): taskset refuses the mask, the run goes on unpinned and says so."""
    _script(phone / "system/bin/taskset", "#!/bin/sh\necho \"taskset: sched_setaffinity: Invalid argument\" >&2\nexit 1\n")
    out = tmp_path / "r.json"
    rc = main(["bench", str(artifacts["tflite"]), "--device", f"adb://{SERIAL}", "--benchmark-binary",
               str(DOUBLES / "fake_benchmark_model"), "--runs", "3", "--json", str(out)])
    assert rc == 0, capsys.readouterr().err
    dev = json.loads(out.read_text())["device"]
    assert dev["cores_used"] is None and dev["taskset_mask"] is None and dev["pinning"].startswith("not pinned")
    assert len(_calls(phone)) == 1
