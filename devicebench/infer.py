"""Run given inputs through an artifact with the registered runner and return every output by name.

The on-device half of `verify --device ssh://…`: the agent loads the artifact with the same runner
class that `bench` and the host use, feeds the host's .npy inputs and sends the outputs back as
.npy bytes. numpy and the standard library only (this file travels to the board with the agent).
"""

from __future__ import annotations

import base64
import io
import json
import os
from typing import Any

import numpy as np

from mobiledeploy.errors import UserError

from .runners import Runner, runner_for


def npy_bytes(a: np.ndarray) -> bytes:
    """An array as .npy file bytes (dtype and shape included, no pickle)."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(a), allow_pickle=False)
    return buf.getvalue()


def from_npy(data: bytes) -> np.ndarray:
    """The array in .npy bytes."""
    return np.load(io.BytesIO(data), allow_pickle=False)


def encode(a: np.ndarray) -> str:
    """An array as base64 .npy text (for the agent's JSON)."""
    return base64.b64encode(npy_bytes(a)).decode()


def decode(text: str) -> np.ndarray:
    """The array in base64 .npy text."""
    return from_npy(base64.b64decode(text))


def run_named(runner: Runner, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One inference with inputs and outputs keyed by the names the manifest records."""
    run = getattr(runner, "run", None)
    if callable(run):  # a runner that maps names itself
        return {k: np.asarray(v) for k, v in run(feeds).items()}
    session = getattr(runner, "session", None)
    if session is not None and hasattr(session, "get_outputs"):  # onnxruntime
        names = [o.name for o in session.get_outputs()]
        return dict(zip(names, session.run(names, {k: np.ascontiguousarray(v) for k, v in feeds.items()})))
    interp = getattr(runner, "interp", None)
    if interp is not None:  # LiteRT: manifests name the signature's inputs and outputs, as the host run does
        sigs = interp.get_signature_list() if hasattr(interp, "get_signature_list") else {}
        if sigs:
            sig = interp.get_signature_runner()
            if set(feeds) <= set(sig.get_input_details()):
                out = sig(**{k: np.ascontiguousarray(v) for k, v in feeds.items()})
                return {k: np.array(v) for k, v in out.items()}
        by_name = {d["name"]: d["index"] for d in interp.get_input_details()}
        missing = [k for k in feeds if k not in by_name]
        if missing:
            raise UserError(f"the model has no input named {missing[0]!r} (it has {sorted(by_name)})", None)
        for k, v in feeds.items():
            interp.set_tensor(by_name[k], np.ascontiguousarray(v))
        interp.invoke()
        return {d["name"]: np.array(interp.get_tensor(d["index"])) for d in interp.get_output_details()}
    raise UserError(f"the {runner.name} runner cannot run given inputs on a device yet", None)


def run_folder(folder: str, artifact: str, runtime: str = "auto", threads: int = 1) -> dict[str, Any]:
    """Run every sample listed in folder/index.json; the outputs (base64 .npy) and the runtime's facts."""
    from .device import host_facts

    with open(os.path.join(folder, "index.json")) as f:
        index = json.load(f)
    cls = runner_for(artifact, runtime)
    try:
        runner = cls(artifact, threads)
    except UserError:
        raise
    except Exception as e:  # a corrupt or foreign file: say which runtime refused which file
        raise UserError(f"{cls.name} could not load {artifact}: {type(e).__name__}: {e}", None) from None
    samples = []
    for s in index["samples"]:
        feeds = {name: np.load(os.path.join(folder, rel), allow_pickle=False) for name, rel in s["inputs"].items()}
        outs = run_named(runner, feeds)
        samples.append({"name": s["name"], "outputs": {k: encode(v) for k, v in outs.items()}})
    info = runner.info()
    return {"mode": "infer", "artifact": artifact, "runtime": info, "device": host_facts(), "samples": samples}
