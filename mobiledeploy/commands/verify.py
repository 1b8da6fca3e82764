"""`mobiledeploy verify`: run an artifact on its runtime and compare it with the PyTorch model in its manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mobiledeploy.errors import UserError, VerificationError

if TYPE_CHECKING:
    from mobiledeploy.manifest import DeviceRecord


class NotVerifiedError(UserError):
    """Verification was asked for and could not run on this host."""

    exit_code = 4


@click.command("verify")
@click.argument("artifact", type=click.Path(exists=False))
@click.option("--random", "n_random", default=3, show_default=True, help="Seeded random inputs to use.")
@click.option("--no-photos", is_flag=True, help="Skip the scikit-image photos.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--device", default=None, metavar="ssh://user@host[:port] | adb://SERIAL",
              help="Also run the artifact on this board or phone (same inputs) and judge its outputs there.")
@click.option("--ssh-config", default=None, envvar="MOBILEDEPLOY_SSH_CONFIG", metavar="FILE",
              help="ssh -F FILE (default: your ~/.ssh/config).")
@click.option("--remote-python", default="python3", show_default=True, envvar="MOBILEDEPLOY_REMOTE_PYTHON",
              help="Python on the board; it needs numpy and the runtime.")
@click.option("--connect-timeout", type=int, default=10, show_default=True, help="SSH connect timeout, seconds.")
@click.option("--benchmark-binary", default=None, metavar="PATH",
              help="LiteRT benchmark_model for the phone (adb://, .tflite).")
@click.option("--executor-runner", default=None, metavar="PATH",
              help="ExecuTorch executor_runner for the phone (adb://, .pte); default: the phone's own.")
@click.option("--onnx-test-runner", default=None, metavar="PATH",
              help="onnxruntime onnx_test_runner for the phone (adb://, .onnx/.ort); default: the phone's own.")
@click.option("--adb", "adb_bin", default="adb", envvar="MOBILEDEPLOY_ADB", show_default=True, help="adb executable.")
def command(artifact: str, n_random: int, no_photos: bool, as_json: bool, device: str | None,
            ssh_config: str | None, remote_python: str, connect_timeout: int, benchmark_binary: str | None,
            executor_runner: str | None, onnx_test_runner: str | None, adb_bin: str) -> None:
    """Check ARTIFACT against PyTorch fp32; exit 0 only when it meets its precision's bar (on the device too)."""
    if device and Path(artifact).suffix == ".bpte":
        raise UserError("verify --device takes the .pte, not its bundled program", "pass the .pte file")
    if device:
        return _on_device(artifact, n_random, not no_photos, as_json, device, ssh_config, remote_python,
                          connect_timeout, benchmark_binary, executor_runner, onnx_test_runner, adb_bin)
    if Path(artifact).suffix == ".bpte":  # an ExecuTorch bundled program carries its inputs and expected outputs
        from mobiledeploy.exporters.executorch_bundled import verify_bundled

        m, report, reason = verify_bundled(Path(artifact))
    else:
        from mobiledeploy.pipeline import verify

        m, report, reason = verify(Path(artifact), n_random=n_random, photos=not no_photos)
    result = {"artifact": str(artifact), "target": m.target, "model": m.model.spec,
              "precision": m.precision, "verified": bool(report is not None and report.passed),
              "parity": report.as_dict() if report is not None else None, "not_verified_reason": reason}
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        if report is None:
            click.echo(f"{artifact}: not verified: {reason}")
        else:
            verdict = "verified" if report.passed else "FAILED"
            click.echo(f"{artifact}: {verdict} against {report.reference}: {report.summary()}")
    if report is None:
        # Verification was asked for and could not happen: never an exit status that reads as success.
        raise NotVerifiedError(f"{Path(artifact).name} was not verified: {reason}")
    if not report.passed:
        raise VerificationError(f"{Path(artifact).name} fails the {m.precision} parity check: {report.summary()}")


def _on_device(artifact: str, n_random: int, photos: bool, as_json: bool, device: str, ssh_config: str | None,
               remote_python: str, connect_timeout: int, benchmark_binary: str | None,
               executor_runner: str | None, onnx_test_runner: str | None, adb_bin: str) -> None:
    """verify --device: host and device side by side; the device's verdict decides the exit status."""
    from rich.console import Console

    from mobiledeploy import manifest as mf
    from mobiledeploy.devicebench.remote_verify import DeviceOptions, device_record, verify_on_device
    from mobiledeploy.devicebench.ssh import SSHOptions

    opts = DeviceOptions(ssh=SSHOptions(config=ssh_config, connect_timeout=connect_timeout,
                                        remote_python=remote_python),
                         adb_bin=adb_bin, benchmark_binary=benchmark_binary, executor_runner=executor_runner,
                         onnx_test_runner=onnx_test_runner)
    with Console(stderr=True).status("verifying…") as status:
        res = verify_on_device(Path(artifact), device, n_random=n_random, photos=photos, opts=opts,
                               progress=lambda msg: status.update(msg))
    m, dev = res["manifest"], res["device"]
    record = device_record(res)
    mf.record_device(mf.manifest_path(Path(res["artifact"])), record)
    if as_json:
        click.echo(json.dumps(_json(res, record), indent=2, default=float))
    else:
        click.echo(table(res))
    name = Path(res["artifact"]).name
    if dev.get("reason"):
        raise NotVerifiedError(f"{name} was not verified on {device}: {dev['reason']}")
    if not dev["report"].passed:
        raise VerificationError(f"{name} fails the {m.precision} parity check on {device}: "
                                f"{dev['report'].summary()}")
    host = res["host"]["report"]
    if host is not None and not host.passed:  # passing on the device does not excuse the host
        raise VerificationError(f"{name} passes on {device} but fails the {m.precision} parity check on this "
                                f"host: {host.summary()}")


def _json(res: dict[str, Any], record: DeviceRecord) -> dict[str, Any]:
    m, host, dev = res["manifest"], res["host"], res["device"]
    return {"artifact": res["artifact"], "target": m.target, "model": m.model.spec,
            "precision": m.precision, "device": dev["url"],
            # The exit status's verdict: the device passed, and the host did too where it could run it.
            "verified": bool(dev["report"].passed and not dev.get("reason")
                             and (host["report"] is None or host["report"].passed)),
            "host": {"verified": bool(host["report"] is not None and host["report"].passed),
                     "parity": host["report"].as_dict() if host["report"] is not None else None,
                     "not_verified_reason": host["reason"], "facts": host["facts"], "runtime": host["runtime"]},
            "on_device": {"parity": dev["report"].as_dict(), "not_verified_reason": dev.get("reason"),
                          "facts": dev["facts"], "runtime": dev["runtime"],
                          "seconds": dev["seconds"], "notes": dev["notes"]},
            "device_vs_host": res["device_vs_host"], "manifest_record": record.to_json()}


def _fmt(x: Any, spec: str = ".2e") -> str:
    return "n/a" if x is None else format(x, spec)


def _where(f: dict[str, Any], rt: dict[str, Any]) -> list[str]:
    emu = f" (emulated: qemu, QEMU_CPU={f['emulated_cpu']})" if f.get("emulated_cpu") else ""
    feats = f.get("features") or []
    shown = [x for x in feats if x in ("asimd", "asimddp", "asimdhp", "fphp", "i8mm", "bf16", "sve", "sve2", "sme",
                                       "sme2", "avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx_vnni")]
    return [f"{f.get('machine') or '?'}{emu}",
            f"{f.get('cpu') or '?'}" + (f" / {f['board']}" if f.get("board") else ""),
            " ".join(str(rt.get(k)) for k in ("package", "version") if rt.get(k)) or str(rt.get("name") or "?"),
            str(rt.get("delegate") or "-"),
            f"{f.get('vector_path') or '?'}" + (f" ({' '.join(shown)})" if shown else "")]


def table(res: dict[str, Any]) -> str:
    """Host and device figures side by side, with where each ran."""
    host, dev, vs = res["host"], res["device"], res["device_vs_host"]
    hr, dr = host["report"], dev["report"]
    rows = [("machine", "CPU / board", "runtime", "delegate", "ISA path (features)")]
    hw, dw = _where(host["facts"], host["runtime"]), _where(dev["facts"], dev["runtime"])

    def fig(r: Any, key: str, spec: str = ".2e") -> str:
        return "n/a" if r is None else _fmt(getattr(r, key), spec)

    lines = [("", "host", dev["url"])]
    lines += [(label, h, d) for label, h, d in zip(rows[0], hw, dw)]
    lines += [("rel_l2 (worst)", fig(hr, "rel_l2"), fig(dr, "rel_l2")),
              ("max_abs", fig(hr, "max_abs"), fig(dr, "max_abs")),
              ("cosine (min)", fig(hr, "cosine", ".7f"), fig(dr, "cosine", ".7f")),
              ("top-1 agreement", fig(hr, "top1_agreement", ".3f"), fig(dr, "top1_agreement", ".3f")),
              ("samples judged", fig(hr, "n_samples", "d"), fig(dr, "n_samples", "d")),
              ("verdict", ("verified" if hr.passed else "FAILED") if hr is not None
               else f"not verified: {host['reason']}",
               f"not verified: {dev['reason']}" if dev.get("reason") else "verified" if dr.passed else "FAILED")]
    w0 = max(len(a) for a, _, _ in lines)
    w1 = max(len(b) for _, b, _ in lines)
    out = [f"{res['artifact']} ({res['manifest'].precision}) against {dr.reference}; bar: "
           f"rel_l2 ≤ {dr.tolerance['rel_l2']:.2g}, top-1 ≥ {dr.tolerance['top1_agreement']:.2f}"]
    out += [f"  {a:<{w0}}  {b:<{w1}}  {c}" for a, b, c in lines]
    if vs:
        out.append(f"  device vs host runtime, same inputs: rel_l2 {_fmt(vs['rel_l2'])}, max_abs {_fmt(vs['max_abs'])}, "
                   f"top-1 agreement {_fmt(vs['top1_agreement'], '.3f')}, "
                   f"{'bit-identical' if vs['bit_identical'] else 'not bit-identical'} over {vs['n_samples']} inputs")
    elif dev["runtime"].get("name") == "onnxruntime onnx_test_runner":
        out.append("  device vs host runtime: not compared (onnx_test_runner judged on the phone; its outputs "
                   "stay there)")
    else:
        out.append("  device vs host runtime: not compared (no runtime for this artifact on the host)")
    out.append(f"  device run: {dev['seconds']:.1f} s for {dr.n_samples + (len(dr.informational['inputs']) if dr.informational else 0)}"
               " inputs (transfer and start-up included; not a latency figure)")
    for n in dev["notes"]:
        out.append(f"  note: {n}")
    return "\n".join(out)
