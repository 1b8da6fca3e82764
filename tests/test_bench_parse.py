"""Parsing LiteRT benchmark_model logs (the formats its source prints), getprop, and the big-core mask."""

from __future__ import annotations

import pytest

from mobiledeploy.devicebench.adb import (
    BenchmarkOutputError, big_core_mask, cores_mask, parse_adb_url, parse_benchmark_output, parse_getprop,
    parse_op_summary, parse_stat_line,
)
from mobiledeploy.errors import UserError

# Lines as benchmark_model.cc / BenchmarkLoggingListener / StatWithPercentiles print them (LiteRT 2024+),
# as seen through `adb shell` (TFLITE_LOG writes an "INFO: " prefix).
MODERN = """\
INFO: STARTING!
INFO: Log parameter values verbosely: [0]
INFO: Num threads: [4]
INFO: Graph: [/data/local/tmp/mobiledeploy-bench-1a2b/m0.tflite]
INFO: #threads used for CPU inference: [4]
INFO: Loaded model /data/local/tmp/mobiledeploy-bench-1a2b/m0.tflite
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
INFO: Explicitly applied XNNPACK delegate, and the model graph will be partially executed by the delegate w/ 15 delegate kernels.
INFO: The input model file size (MB): 10.4312
INFO: Initialized session in 35.214ms.
INFO: Running benchmark for at least 10 iterations and at least 0 seconds but terminate if exceeding 150 seconds.
INFO: count=10 first=9120 curr=4410 min=4380 max=9120 avg=4967.3 std=1401 p5=4380 median=4452 p95=9120

INFO: Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
INFO: count=231 first=4440 curr=4391 min=4302 max=6120 avg=4421.57 std=151 p5=4318 median=4399 p95=4705

INFO: Inference timings in us: Init: 35214, First inference: 9120, Warmup (avg): 4967.3, Inference (avg): 4421.57
INFO: Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
INFO: Memory footprint delta from the start of the tool (MB): init=21.3867 overall=24.1211
INFO: Overall peak memory footprint (MB) via periodic monitoring: 30.457
INFO: Memory status at the end of exeution:
INFO: - VmRSS              : 41 MB
INFO: + RssAnnon           : 25 MB
INFO: + RssFile + RssShmem : 16 MB
"""

# TensorFlow 2.4-era: Stat without percentiles, one warm-up run ("count=1 curr=…"), the older memory line.
OLDER = """\
STARTING!
Num threads: [1]
Graph: [/data/local/tmp/m.tflite]
Loaded model /data/local/tmp/m.tflite
Explicitly applied XNNPACK delegate, and the model graph will be completely executed by the delegate.
The input model file size (MB): 3.5
Initialized session in 4.2ms.
Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
count=1 curr=30511

Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
count=50 first=20110 curr=20001 min=19870 max=21002 avg=20133.5 std=211

Inference timings in us: Init: 4200, First inference: 30511, Warmup (avg): 30511, Inference (avg): 20133.5
Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
Peak memory footprint (MB): init=2.5 overall=6.25
"""

# The pre-2020 summary line.
LEGACY = """\
Initialized session in 38.467ms
Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
count=6 first=83235 curr=79760 min=79001 max=83235 avg=80100 std=1500

Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
count=50 first=79449 curr=81350 min=77385 max=88213 avg=79732 std=1929

Average inference timings in us: Warmup: 83235, Init: 38467, Inference: 79760.9
"""

PROFILE = """\
INFO: Operator-wise Profiling Info for Regular Benchmark Runs:
============================== Run Order ==============================
\t             [node type]\t          [start]\t  [first]\t [avg ms]\t     [%]\t  [cdf%]\t  [mem KB]\t[times called]\t[Name]
\t                 CONV_2D\t            0.021\t    1.210\t    1.190\t 60.000%\t 60.000%\t     0.000\t        1\t[conv1]:0
Number of nodes executed: 3
============================== Summary by node type ==============================
\t             [Node type]\t  [count]\t  [avg ms]\t    [avg %]\t    [cdf %]\t  [mem KB]\t[times called]
\t                 CONV_2D\t        2\t     1.500\t    75.000%\t    75.000%\t     0.000\t        2
\t       DEPTHWISE_CONV_2D\t        1\t     0.400\t    20.000%\t    95.000%\t     0.000\t        1
\t                 SOFTMAX\t        1\t     0.100\t     5.000%\t   100.000%\t     0.000\t        1

Timings (microseconds): count=50 first=2010 curr=1990 min=1950 max=2200 avg=2001 std=40
"""

# Space-aligned rows with XNNPACK's own op names (spaces and commas inside the node type).
PROFILE_ALIGNED = """\
INFO: Operator-wise Profiling Info for Regular Benchmark Runs:
============================== Summary by node type ==============================
                                     [Node type]          [count]         [avg ms]          [avg %]         [cdf %]       [mem KB]        [times called]
                   Convolution (NHWC, QC8) IGEMM                3            0.900          60.000%         60.000%          0.000                3
                  Convolution (NHWC, QC8) DWConv               13            0.600          40.000%        100.000%          0.000               13

Timings (microseconds): count=50 first=1500 curr=1490 min=1450 max=1700 avg=1500 std=40
"""


def test_modern_output():
    r = parse_benchmark_output(MODERN)
    assert (r["init_us"], r["first_us"], r["warmup_avg_us"], r["inference_avg_us"]) == (35214, 9120, 4967.3, 4421.57)
    assert r["run_stats_us"] == {"count": 231, "first": 4440, "curr": 4391, "min": 4302, "max": 6120,
                                 "avg": 4421.57, "std": 151, "p5": 4318, "median": 4399, "p95": 4705}
    assert r["warmup_stats_us"]["count"] == 10
    assert (r["delegate"], r["partitions"], r["fully_delegated"]) == ("XNNPACK", 15, False)
    assert r["threads"] == 4
    assert r["model_size_mb"] == 10.4312
    assert r["session_init_ms"] == 35.214
    assert (r["mem_init_mb"], r["mem_overall_mb"], r["mem_peak_mb"]) == (21.3867, 24.1211, 30.457)
    assert "ops" not in r


def test_older_output_single_warmup_run():
    r = parse_benchmark_output(OLDER)
    assert r["warmup_stats_us"] == {"count": 1, "curr": 30511, "min": 30511, "max": 30511, "avg": 30511,
                                    "std": 0.0, "first": 30511}
    assert r["run_stats_us"]["avg"] == 20133.5 and "median" not in r["run_stats_us"]
    assert (r["delegate"], r["partitions"], r["fully_delegated"]) == ("XNNPACK", 1, True)
    assert (r["mem_init_mb"], r["mem_overall_mb"]) == (2.5, 6.25)
    assert "mem_peak_mb" not in r


def test_legacy_summary_line():
    r = parse_benchmark_output(LEGACY)
    assert (r["warmup_avg_us"], r["init_us"], r["inference_avg_us"]) == (83235, 38467, 79760.9)
    assert "first_us" not in r
    assert r["run_stats_us"]["count"] == 50


def test_all_same_stat_line():
    assert parse_stat_line("count=5 curr=1200(all same)") == {
        "count": 5, "curr": 1200, "min": 1200, "max": 1200, "avg": 1200, "std": 0.0, "first": 1200}
    assert parse_stat_line("count=1 curr=905463 p5=905463 median=905463 p95=905463")["median"] == 905463


def test_delegate_not_applied():
    text = MODERN.replace(
        "Explicitly applied XNNPACK delegate, and the model graph will be partially executed by the delegate w/ 15 "
        "delegate kernels.", "Though XNNPACK delegate is explicitly applied, the model graph will not be executed "
        "by the delegate.")
    r = parse_benchmark_output(text)
    assert (r["delegate"], r["partitions"]) == (None, 0)


@pytest.mark.parametrize("text", ["", "Segmentation fault\n", "ERROR: Could not open 'm.tflite'.\n"
                                  "ERROR: Benchmarking failed.\n"])
def test_unparseable_output_shows_the_raw_text(text):
    with pytest.raises(BenchmarkOutputError) as e:
        parse_benchmark_output(text)
    assert "Inference timings" in str(e.value)
    for line in text.splitlines():
        assert line in str(e.value)


def test_op_profile_tables():
    rows = parse_op_summary(MODERN + PROFILE)
    assert [(r["op"], r["kind"], r["count"], r["ms_per_run"], r["percent"]) for r in rows] == [
        ("CONV_2D", "conv", 2, 1.5, 75.0), ("DEPTHWISE_CONV_2D", "depthwise conv", 1, 0.4, 20.0),
        ("SOFTMAX", "softmax", 1, 0.1, 5.0)]
    rows = parse_op_summary(PROFILE_ALIGNED)
    assert [(r["op"], r["count"], r["ms_per_run"]) for r in rows] == [
        ("Convolution (NHWC, QC8) IGEMM", 3, 0.9), ("Convolution (NHWC, QC8) DWConv", 13, 0.6)]
    assert parse_op_summary(MODERN) is None
    assert parse_benchmark_output(MODERN + PROFILE)["ops"][0]["op"] == "CONV_2D"


def test_getprop_and_core_masks():
    props = parse_getprop("[ro.product.model]: [Pixel 7]\n[ro.soc.model]: [GS201]\n[ro.empty]: []\nnoise\n")
    assert props == {"ro.product.model": "Pixel 7", "ro.soc.model": "GS201", "ro.empty": ""}
    tri = {0: 1803000, 1: 1803000, 2: 1803000, 3: 1803000, 4: 2348000, 5: 2348000, 6: 2850000, 7: 2850000}
    assert big_core_mask(tri, threads=1) == ("c0", [6, 7])
    assert big_core_mask(tri, threads=4) == ("f0", [4, 5, 6, 7])
    assert big_core_mask(tri, threads=8) == ("ff", list(range(8)))
    assert big_core_mask({}) is None
    assert cores_mask([0, 2]) == "5"


def test_adb_urls():
    assert parse_adb_url("adb://emulator-5554") == "emulator-5554"
    assert parse_adb_url("adb://192.168.1.20:5555") == "192.168.1.20:5555"
    for bad in ("adb://", "adb://-s", "adb://a;b", "ssh://x"):
        with pytest.raises(UserError):
            parse_adb_url(bad)
