"""What an on-device check exchanges: the feeds sent, how to reach the device, what it returned.

Shared by the SSH path (remote_verify.py) and the ADB path (adb_verify.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

Feeds = dict[str, np.ndarray]
Progress = Callable[[str], None]


@dataclass
class DeviceRun:
    """What a device returned: outputs per sample (by output name), its facts and its runtime's."""

    outputs: list[dict[str, np.ndarray]]
    device: dict[str, Any]
    runtime: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    verdict: Any = None  # a device tool's own judgement (onnx_test_runner) where the outputs stay on the device


@dataclass
class DeviceOptions:
    """How to reach the device: ssh options, adb binary, the on-phone tools."""

    ssh: Any = None  # devicebench.ssh.SSHOptions
    adb_bin: str = "adb"
    benchmark_binary: str | None = None  # LiteRT benchmark_model for the phone
    executor_runner: str | None = None  # ExecuTorch executor_runner for the phone
    onnx_test_runner: str | None = None  # onnxruntime's onnx_test_runner for the phone
