"""`mobiledeploy export`: one model to one target, rewritten, converted, checked against PyTorch."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import click

from mobiledeploy.errors import UserError

if TYPE_CHECKING:
    from mobiledeploy.manifest import Manifest


def parse_size(value: str | None) -> tuple[int, int] | None:
    """'224' → (224, 224); '256x192' → (256, 192) as height × width."""
    if value is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*(?:[x×,]\s*(\d+))?\s*", value)
    if not m:
        raise UserError(f"bad --input-size {value!r}", "use N or HxW, e.g. 224 or 256x192")
    h = int(m.group(1))
    w = int(m.group(2)) if m.group(2) else h
    if h <= 0 or w <= 0:
        raise UserError(f"bad --input-size {value!r}", "sizes must be positive")
    return h, w


class _Choice(click.Choice):
    """A choice list (shown as [a|b|c] in --help) whose refusal is the CLI's usual one line."""

    def __init__(self, what: str, choices: tuple[str, ...]) -> None:
        super().__init__(choices)
        self.what = what

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if value in self.choices:
            return value
        raise UserError(f"unknown {self.what} {value!r}", f"choose one of: {', '.join(self.choices)}")


@click.command("export")
@click.argument("model")
@click.option("--target", "-t", "targets", required=True, multiple=True,
              help="onnx, ort, tflite, coreml or executorch; repeat it (or use commas) for several, traced once.")
@click.option("--weights", type=click.Path(dir_okay=False), default=None, help="Checkpoint to load (any supported layout).")
@click.option("--input-size", default=None, help="N or HxW (default: the model's).")
@click.option("--batch", default=1, show_default=True, type=int, help="Static batch size.")
@click.option("--precision", type=_Choice("precision", ("fp32", "fp16", "int8")), default=None,
              help="fp32, fp16 or int8 (quantized after an fp32 export); default fp32, fp16 for a Core ML --bundle.")
@click.option("--layout", type=click.Choice(["nchw", "nhwc"]), default=None,
              help="TFLite/ONNX/ORT input: RGB pixels 0-255 in this layout, normalisation inside (nhwc with --bundle).")
@click.option("--calibration", type=click.Path(exists=True, file_okay=False), default=None,
              help="Folder of images for int8 calibration (default: scikit-image photos + augmentations).")
@click.option("--labels", "labels_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Class names, one per line, for metadata, manifest and bundle.")
@click.option("--bundle", is_flag=True, help="Also write <name>_<target>_bundle/: artifact, labels.txt, manifest, README with snippets.")
@click.option("--min-target", default=None,
              help="Core ML: minimum deployment target, e.g. iOS16 (default), iOS17, macOS13.")
@click.option("--tensor-input", is_flag=True,
              help="Core ML: take the normalised NCHW tensor instead of an RGB image (needed for batch > 1).")
@click.option("--out", "out_dir", default="out", show_default=True, help="Output folder.")
@click.option("--name", default=None, help="Artifact file name without suffix.")
@click.option("--force", is_flag=True, help="Overwrite an existing artifact and manifest.")
@click.option("--no-verify", is_flag=True, help="Skip the parity check (the manifest says verified: false).")
@click.option("--no-reparam", is_flag=True,
              help="Trace the model as built: do not fold re-parameterisable branches (MobileOne, RepViT, …).")
@click.option("--delegate", type=click.Choice(["xnnpack", "coreml"]), default=None,
              help="ExecuTorch: the backend to lower to (xnnpack: default, runs everywhere; coreml: Apple only).")
@click.option("--bundled-io", is_flag=True,
              help="ExecuTorch: also write <name>.bpte, the program with the parity inputs and PyTorch's outputs.")
@click.option("--mean", default=None, metavar="R,G,B",
              help="Input normalisation mean in 0-1 pixel units (x = (pixel/255 - mean) / std); default: the "
                   "model's, ImageNet's for a .pt2.")
@click.option("--std", default=None, metavar="R,G,B", help="Input normalisation std (see --mean).")
@click.option("--scale", type=click.Choice(["1", "255"]), default=None,
              help="The pixel range the model's normalisation starts from, and --mean/--std's units: 1 = "
                   "pixel/255 in 0-1 (timm, torchvision; the default), 255 = pixels 0-255 as they are "
                   "(x = (pixel - mean) / std; without --mean/--std the model takes raw pixels).")
@click.option("--strict", is_flag=True, help="Fail when this host has no runtime to verify the artifact.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON (a list for several targets).")
def command(model: str, targets: tuple[str, ...], weights: str | None, input_size: str | None, batch: int,
            precision: str | None, out_dir: str, name: str | None, force: bool, no_verify: bool, strict: bool,
            as_json: bool, layout: str | None = None, calibration: str | None = None, labels_file: str | None = None,
            bundle: bool = False, min_target: str | None = None, tensor_input: bool = False,
            no_reparam: bool = False, mean: str | None = None, std: str | None = None,
            delegate: str | None = None, bundled_io: bool = False, scale: str | None = None) -> None:
    """Export MODEL (registry name, timm:<name>, or a .pt2 file) to --target, verified against PyTorch."""
    # Arguments are checked against a precomputed table before torch loads (seconds, tens of them on a busy
    # machine): a typo must fail at once.
    from . import _catalog

    names = list(dict.fromkeys(t.strip() for spec in targets for t in spec.split(",") if t.strip()))
    if not names:  # `-t ""` or `-t ,`: exporting nothing and exiting 0 would read as success
        raise UserError(f"no target in --target {','.join(targets)!r}",
                        f"name one or more of: {', '.join(_catalog.target_names())}")
    _catalog.check_targets(names)  # an unknown target fails before any work, listing the known ones
    size = parse_size(input_size)
    _catalog.check_model(model)
    if layout and set(names) == {"coreml"}:
        # Core ML takes an image (CVPixelBuffer) whatever the layout; saying nothing would let a user
        # believe the .mlpackage takes an NHWC tensor.
        raise UserError("--layout applies to tflite, onnx and ort inputs; a Core ML model takes an image",
                        "drop --layout (use --tensor-input for a normalised NCHW tensor instead)")
    if (min_target or tensor_input) and "coreml" not in names:
        raise UserError("--min-target and --tensor-input are Core ML options", "add --target coreml or drop them")
    if delegate and "executorch" not in names:
        raise UserError("--delegate is an ExecuTorch option", "add --target executorch or drop it")
    if bundled_io and "executorch" not in names:
        raise UserError("--bundled-io is an ExecuTorch option", "add --target executorch or drop it")
    options = _target_options(layout, calibration, labels_file, bundle, min_target, tensor_input, delegate,
                              bundled_io)
    norm = (parse_triple("--mean", mean), parse_triple("--std", std, positive=True))
    if scale == "255":  # kept in 0-1 units inside: (pixel/255 - mean/255) / (std/255) = (pixel - mean) / std
        norm = (tuple(v / 255.0 for v in norm[0] or (0.0, 0.0, 0.0)),
                tuple(v / 255.0 for v in norm[1] or (1.0, 1.0, 1.0)))

    from mobiledeploy.pipeline import ExportOptions

    def opts(t: str) -> ExportOptions:
        # An app-ready Core ML bundle defaults to fp16 (what the Neural Engine runs); everything else to fp32.
        prec = precision or ("fp16" if bundle and t == "coreml" else "fp32")
        return ExportOptions(model=model, target=t, weights=weights, input_size=size, batch=batch,
                             precision=prec, out_dir=Path(out_dir), force=force, verify=not no_verify,
                             strict=strict, name=name, reparam=not no_reparam, options=options,
                             mean=norm[0], std=norm[1], scale=int(scale or 1))

    from mobiledeploy.interrupts import InterruptGuard

    cache: dict = {}  # one torch.export shared by all targets
    if as_json:
        with InterruptGuard() as guard:
            outcomes, failed = _export_each(names, opts, cache, guard)
        shown = []
        for o in outcomes:
            bundle_dir = getattr(o, "bundle", None)
            shown.append(_brief(o.manifest, o.artifact) | ({"bundle_path": str(bundle_dir)} if bundle_dir else {}))
        if shown:
            click.echo(json.dumps(shown[0] if len(names) == 1 else shown, indent=2))
        _say_notes(outcomes)
        _raise_failures(failed)
        return
    from rich.console import Console

    console = Console(stderr=True)
    with console.status(f"exporting {model}") as status, InterruptGuard() as guard:
        outcomes, failed = _export_each(names, opts, cache, guard,
                                        lambda t: lambda msg: status.update(f"[{t}] {msg}"))
    if outcomes:
        out = Console(width=None if Console().is_terminal else 132)
        print_result(out, [o.manifest for o in outcomes], [o.artifact for o in outcomes])
        for o in outcomes:
            if getattr(o, "bundle", None):
                out.print(f"bundle: {o.bundle}", highlight=False)
    _say_notes(outcomes)
    _raise_failures(failed)


def _export_each(names: list[str], opts: Callable[[str], Any], cache: dict, guard: Any,
                 progress: Callable[[str], Callable[[str], None]] | None = None) -> tuple[list, list[UserError]]:
    """Export every target; one target's failure (existing file, converter, parity) does not stop the
    others. A failure of the model itself (loading, tracing: `model_wide`) would repeat for every target,
    so it stops here. Ctrl-C stops everything, even when a converter swallowed its KeyboardInterrupt:
    `guard` remembers it and is checked at every stage (the progress calls) and between targets."""
    from mobiledeploy.pipeline import export

    def stage(t: str) -> Callable[[str], None]:
        show = progress(t) if progress else None

        def say(msg: str) -> None:
            guard.check()  # raises KeyboardInterrupt: the pipeline removes its partial file on the way out
            if show:
                show(msg)

        return say

    outcomes, failed = [], []
    for t in names:
        try:
            outcomes.append(export(opts(t), progress=stage(t), cache=cache))
        except UserError as e:
            # A converter that caught the KeyboardInterrupt (a bare except) fails with some other error.
            guard.check()
            if len(names) == 1 or getattr(e, "model_wide", False):
                raise
            failed.append(e)
        guard.check()
    return outcomes, failed


def parse_triple(flag: str, value: str | None, positive: bool = False) -> tuple[float, float, float] | None:
    """'0.5,0.5,0.5' → (0.5, 0.5, 0.5); one number stands for all three channels."""
    if value is None:
        return None
    try:
        vals = tuple(float(v) for v in value.replace(" ", "").split(","))
    except ValueError:
        raise UserError(f"bad {flag} {value!r}", f"give three numbers R,G,B, e.g. {flag} 0.5,0.5,0.5") from None
    if len(vals) == 1:
        vals = vals * 3
    if len(vals) != 3 or (positive and min(vals) <= 0):
        raise UserError(f"bad {flag} {value!r}", f"give three{' positive' if positive else ''} numbers R,G,B")
    return vals


def _say_notes(outcomes: list) -> None:
    """What the user must know about the model whatever the output format: random weights, assumptions."""
    said: set[str] = set()
    for o in outcomes:
        model = o.manifest.model
        lines = list(model.notes)
        if model.init:
            lines.insert(0, f"{model.name} has random weights (no --weights): the artifact computes what "
                            "PyTorch computes, but it classifies nothing; pass --weights CHECKPOINT for a real model")
        for line in lines:
            if line not in said:
                said.add(line)
                click.echo(f"note: {line}", err=True)


def _raise_failures(failed: list[UserError]) -> None:
    """Every failed target gets its own error line; the exit status is the last one's."""
    for e in failed[:-1]:
        click.echo(f"error: {e}", err=True)
    if failed:
        raise failed[-1]


def _target_options(layout: str | None, calibration: str | None, labels_file: str | None, bundle: bool,
                    min_target: str | None, tensor_input: bool, delegate: str | None = None,
                    bundled_io: bool = False) -> Any:
    """The typed options every target reads, built once (labels read once here)."""
    from mobiledeploy.exporters.labels import read_labels
    from mobiledeploy.exporters.options import CoreMLOptions, ExecuTorchOptions, QuantOptions, TargetOptions

    return TargetOptions(layout=layout, bundle=bundle,
                         labels=tuple(read_labels(labels_file)) if labels_file else None,
                         quant=QuantOptions(calibration=Path(calibration) if calibration else None),
                         coreml=CoreMLOptions(min_target=min_target, tensor_input=tensor_input),
                         executorch=ExecuTorchOptions(delegate=delegate or "xnnpack", bundled_io=bundled_io))


def _brief(m: Manifest, artifact: Path) -> dict:
    """The manifest's JSON with the label list shortened, plus where the files are."""
    out = m.to_json()
    if m.labels is not None:
        out["labels"] = f"{len(m.labels)} labels (see the manifest)"
    out["artifact_path"] = str(artifact)
    return out


def format_size(n: int) -> str:
    """Bytes for the table: KB under 1 MB (a 0.2 MB int8 model must not read as "0.2 MB" next to "0.0 MB")."""
    return f"{n / 1e3:.0f} KB" if n < 1e6 else f"{n / 1e6:.1f} MB"


def print_result(console, manifests: list[Manifest], artifacts: list[Path]) -> None:
    """A short table (artifact, size, parity figures, verdict), then the rewrites applied to each."""
    from rich.table import Table

    t = Table(title="mobiledeploy export")
    for col in ("artifact", "target", "prec.", "size", "rel L2", "max abs", "cosine", "top-1", "verdict"):
        t.add_column(col, justify="left" if col in ("artifact", "target", "prec.", "verdict") else "right",
                     no_wrap=col != "verdict")
    notes = []
    for m, a in zip(manifests, artifacts):
        p = m.parity
        if p:
            verdict = "[green]verified[/]" if m.verified else "[red]FAILED[/]"
            nums = (f"{p.rel_l2:.1e}", f"{p.max_abs:.1e}", f"{p.cosine:.7f}",
                    "n/a" if p.top1_agreement is None else f"{p.top1_agreement:.2f}")
        else:
            verdict = f"[yellow]not verified[/] ({m.not_verified_reason})"
            nums = ("-",) * 4
        t.add_row(Path(a).name, m.target, m.precision, format_size(m.size_bytes or 0), *nums, verdict)
        rewrites = ", ".join(f"{r['name']}×{r['changed']}" for r in m.rewrites) or "none"
        line = f"{Path(a).name}: rewrites {rewrites}"
        info = m.target_info
        if "partitions" in info:
            line += (f"; {info.get('delegate') or 'XNNPACK'} runs {info['delegated_nodes']}/{info['total_nodes']} nodes in "
                     f"{info['partitions']} partition(s)")
        if "opset" in info:
            line += f"; opset {info['opset']}"
        if info.get("host_runner") and m.versions.runtime and m.versions.runtime.name:
            line += f"; checked on {m.versions.runtime.name}"  # a reference, not the device runtime
        notes.append(line)
        if p and p.float64:  # the row's figures are against float64: say why and what PyTorch fp32 gave
            f = p.float64
            notes.append(f"{Path(a).name}: judged against the model in float64: PyTorch fp32 itself is "
                         f"{f['torch_fp32_rel_l2']:.1e} from it (bar {f['factor']:g}× that, 1e-05 at least); "
                         f"the artifact is {f['rel_l2_vs_fp32']:.1e} from PyTorch fp32")
        if p and p.outputs:  # several outputs: each one's own figures (the row shows the worst)
            notes.append(f"{Path(a).name}: " + ", ".join(f"{n} rel L2 {f['rel_l2']:.1e} max abs {f['max_abs']:.1e}"
                                                        for n, f in p.outputs.items()))
    console.print(t)
    for line in notes:
        console.print(line, highlight=False, soft_wrap=True)
