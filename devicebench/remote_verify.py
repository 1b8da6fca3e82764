"""`verify --device`: the parity check with the artifact running on a board (SSH) or a phone (ADB).

The host builds the same seeded random inputs and photos as `verify` on the host, ships them in one
go, gets the device's raw outputs back and compares them with PyTorch fp32 on the host, with the
same bar. The host's own runtime runs the same inputs too, so the report sets host and device side
by side and says how far the device's outputs are from the host's (the ISA's share of the error).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from mobiledeploy.errors import UserError

from .device_run import DeviceOptions, DeviceRun, Feeds, Progress  # noqa: F401  (importable from here too)

if TYPE_CHECKING:
    from mobiledeploy.manifest import DeviceRecord


def run_ssh(url: str, artifact: Path, feeds: Sequence[Feeds], opts: Any, progress: Progress | None = None
            ) -> DeviceRun:
    """Run every sample on the board in one agent session (its registered runner, 1 thread)."""
    import json

    from . import ssh
    from .infer import decode, npy_bytes

    extra: dict[str, bytes] = {}
    index = []
    for i, f in enumerate(feeds):
        names = {}
        for k, (name, arr) in enumerate(f.items()):
            rel = f"s{i}_{k}.npy"  # fixed names: nothing the user named reaches the board's shell
            extra[f"feeds/{rel}"] = npy_bytes(arr)
            names[name] = rel
        index.append({"name": f"s{i}", "inputs": names})
    extra["feeds/index.json"] = json.dumps({"samples": index}).encode()
    result = ssh.run_agent(url, [str(artifact)],
                           lambda paths: ["--infer", "feeds", "--runtime", "auto", "--threads", "1", "--", *paths],
                           opts, extra=extra, progress=progress)
    outs = [{k: decode(v) for k, v in s["outputs"].items()} for s in result["samples"]]
    if len(outs) != len(feeds):
        raise UserError(f"the board returned {len(outs)} results for {len(feeds)} inputs", None)
    return DeviceRun(outs, result["device"], result.get("runtime") or {})


def host_run_fn(artifact: Path) -> tuple[Callable[[Path, Mapping[str, np.ndarray]], dict[str, np.ndarray]] | None,
                                        dict[str, Any]]:
    """This host's runtime for the artifact (the registry parity uses) and its facts, or (None, {})."""
    from .runners import host_runner_class, load_runner  # the one runtime registry

    cls = host_runner_class(artifact)
    if cls is None:
        return None, {}
    runner = load_runner(artifact, threads=1, cls=cls)
    info = runner.info()
    return (lambda _p, feeds: runner.run(dict(feeds))), {k: info.get(k) for k in ("name", "package", "version",
                                                                                  "delegate")}


def _recording(run: Callable, into: list) -> Callable:
    def rec(path: Path, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = run(path, feeds)
        into.append(out)
        return out
    return rec


def _replay(feeds: Sequence[Feeds], outs: Sequence[dict[str, np.ndarray]]) -> Callable:
    """A run function that answers parity.check with the device's outputs, checking it asks in shipping order."""
    it = iter(zip(feeds, outs))

    def run(_path: Path, given: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        sent, got = next(it)
        if set(sent) != set(given) or not all(np.array_equal(sent[k], given[k]) for k in sent):
            raise RuntimeError("parity asked for inputs the device did not run (sample order changed)")
        return got
    return run


def verify_on_device(artifact: Path, device: str, n_random: int = 3, photos: bool = True,
                     opts: DeviceOptions | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Host check and device check on the same inputs; a dict with both reports, facts and the comparison."""
    from mobiledeploy import pipeline
    from mobiledeploy.exporters import parity

    from .device import host_facts

    opts = opts or DeviceOptions()
    say = progress or (lambda _m: None)
    if not (device.startswith("ssh://") or device.startswith("adb://")):
        raise UserError(f"unknown --device {device!r}", "use ssh://user@host[:port] or adb://SERIAL")
    # The host check first: it validates the artifact (sha256 vs manifest, weights) exactly as `verify` does.
    m, host_report, host_reason = pipeline.verify(Path(artifact), n_random=n_random, photos=photos, progress=say)
    artifact = Path(artifact)
    if artifact.name.endswith(".json"):
        artifact = artifact.with_name(artifact.name[: -len(".json")])
    model, weights = m.model, pipeline.reference_weights(m)
    source = pipeline.load_source(model.spec, weights.path if weights else None)
    shapes = [list(t.shape) for t in pipeline.example_inputs(source, tuple(model.input_size[1:]), model.batch)]
    info = m.target_info
    batch = parity.samples(shapes, pipeline.model_mean(m), pipeline.model_std(m), n_random=n_random, photos=photos,
                           crop_pct=pipeline.model_crop(m), specs=[i.spec() for i in m.inputs],
                           precision=m.precision, target_info=info)
    in_names = [i.name for i in m.inputs]
    out_names = pipeline.compared_outputs([o.spec() for o in m.outputs], info)
    feeds = [dict(zip(in_names, s.feeds)) for s in batch]
    say(f"running {len(feeds)} inputs on {device}")
    t0 = time.monotonic()
    if device.startswith("ssh://"):
        from .ssh import SSHOptions

        dev = run_ssh(device, artifact, feeds, opts.ssh or SSHOptions(), progress=say)
    else:
        from .adb_verify import run_adb

        refs = None
        if artifact.suffix.lower() in (".onnx", ".ort"):  # onnx_test_runner compares on the phone: it gets PyTorch's
            refs = [dict(zip(out_names, parity.reference_outputs(source.module, s.arrays))) for s in batch]
        dev = run_adb(device, artifact, feeds, m, opts, progress=say, references=refs)
    seconds = time.monotonic() - t0
    ref_name = f"PyTorch fp32 (torch {__import__('torch').__version__}), eval mode"
    if dev.verdict is not None:  # the device's tool judged against PyTorch's outputs itself; no outputs came back
        dev_report = dev.verdict
    else:
        dev_report = parity.check(source.module, _replay(feeds, dev.outputs), artifact, in_names, out_names, batch,
                                  precision=m.precision, reference_name=ref_name, target_info=info)
    reason = None
    if getattr(dev_report, "vacuous", False):  # as on the host: agreement with an input-blind model proves nothing
        reason = (f"the model's outputs barely depend on its input (sensitivity "
                  f"{getattr(dev_report, 'input_sensitivity', float('nan')):.1e}), so parity cannot tell a wrong "
                  "artifact from a right one: pass --weights")
    host_outs: list[dict[str, np.ndarray]] = []
    run, host_runtime = host_run_fn(artifact)
    if run is not None:
        for f in feeds:
            host_outs.append(run(artifact, f))
    vs_host = _vs_host(host_outs, dev.outputs, out_names, [s.name for s in batch])
    return {"manifest": m, "artifact": str(artifact),
            "host": {"report": host_report, "reason": host_reason, "facts": _facts(host_facts()),
                     "runtime": host_runtime},
            "device": {"url": device, "report": dev_report, "reason": reason, "facts": _facts(dev.device),
                       "runtime": dev.runtime,
                       "seconds": round(seconds, 1), "notes": dev.notes},
            "device_vs_host": vs_host}


def _facts(d: Mapping[str, Any]) -> dict[str, Any]:
    """Where it ran, in a few fields: machine, CPU, board, ISA path and features, emulation."""
    isa = d.get("isa") or {}
    return {"kind": d.get("kind"), "target": d.get("target") or d.get("serial"), "hostname": d.get("hostname"),
            "machine": isa.get("machine") or d.get("machine") or d.get("abi"), "cpu": d.get("cpu"),
            "board": d.get("board") or d.get("model"), "os": d.get("os") or (f"Android {d['android']}"
                                                                           if d.get("android") else None),
            "vector_path": isa.get("vector_path"), "features": isa.get("hwcap") or isa.get("cpuinfo_features"),
            "cpuinfo_features": isa.get("cpuinfo_features"), "emulated_cpu": isa.get("emulated_cpu"),
            "python": d.get("python")}


def _vs_host(host: Sequence[Mapping[str, np.ndarray]], dev: Sequence[Mapping[str, np.ndarray]],
             names: Sequence[str], inputs: Sequence[str]) -> dict[str, Any] | None:
    """Device outputs against the host runtime's on the same inputs: worst rel L2, top-1 equality, bit-equality."""
    if not host or not dev:  # no host runtime, or the device kept its outputs (onnx_test_runner)
        return None
    from mobiledeploy.exporters.parity import compare

    per = [compare([h[n] for n in names], [d[n] for n in names]) for h, d in zip(host, dev)]
    tops = [p["top1"] for p in per if p["top1"] is not None]
    return {"rel_l2": max(p["rel_l2"] for p in per), "max_abs": max(p["max_abs"] for p in per),
            "top1_agreement": float(np.mean(tops)) if tops else None,
            "bit_identical": all(np.array_equal(h[n], d[n]) for h, d in zip(host, dev) for n in names),
            "n_samples": len(per), "inputs": list(inputs)}


def device_record(res: Mapping[str, Any]) -> DeviceRecord:
    """The manifest's record of one device check (one per device URL and runtime)."""
    from mobiledeploy.manifest import DeviceRecord

    r, f, rt = res["device"]["report"], res["device"]["facts"], res["device"]["runtime"]
    vs = res.get("device_vs_host") or {}
    return DeviceRecord(
        device=res["device"]["url"], machine=f["machine"], cpu=f["cpu"], board=f["board"],
        vector_path=f["vector_path"], features=f["features"], emulated_cpu=f["emulated_cpu"],
        runtime={k: rt.get(k) for k in ("name", "package", "version", "delegate") if rt.get(k) is not None},
        verified=bool(r.passed and not res["device"].get("reason")), rel_l2=r.rel_l2, max_abs=r.max_abs,
        cosine=r.cosine, top1_agreement=r.top1_agreement, n_samples=r.n_samples, bar=r.tolerance,
        vs_host_rel_l2=vs.get("rel_l2"), sha256=res["manifest"].sha256,
        checked=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
