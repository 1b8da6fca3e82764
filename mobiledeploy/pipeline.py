"""The export pipeline: a request in, an artifact + manifest out; each stage a plain function.

    load_source → example_inputs → capture (torch.export) → rewrite → target.prepare → target.convert
        → target.finish → parity check on the target's runtime → finalize (manifest, rename)
        → target.extra_files, bundle

Nothing that looks complete appears until the end: the artifact is written under a temporary
name, checked, and only then renamed beside its manifest.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime as _dt
import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch

from mobiledeploy.exporters.options import TargetOptions
from mobiledeploy.models.random_init import DESCRIPTION as RANDOM_INIT
from mobiledeploy.models.random_init import randomize_batchnorm

from . import memory
from .errors import MissingExtraError, UserError, VerificationError, quiet_logger, require
from .fsio import move_into_place, remove

if TYPE_CHECKING:
    from .manifest import Manifest, Weights

Progress = Callable[[str], None]

PRECISIONS = ("fp32", "fp16", "int8")  # int8: converted at fp32, then quantized by the target's finish
INIT_SEED = 0  # models without --weights are built after torch.manual_seed(INIT_SEED), so verify can rebuild them


@dataclass
class ExportOptions:
    """What the user asked for (the CLI's flags); `options` holds the typed target options."""

    model: str
    target: str
    weights: str | None = None
    input_size: tuple[int, int] | None = None
    batch: int = 1
    precision: str = "fp32"
    out_dir: Path = Path("out")
    force: bool = False
    verify: bool = True
    strict: bool = False  # fail when the artifact cannot be verified on this host
    name: str | None = None  # artifact stem; default derived from model, size, batch, precision
    rewrites: tuple[str, ...] = ()  # extra passes after the generic and target ones
    skip_rewrites: tuple[str, ...] = ()  # e.g. all of them for a naive baseline
    n_random: int = 3
    photos: bool = True
    mean: tuple[float, ...] | None = None  # input normalisation (0-1 pixel units); None: the model's own
    std: tuple[float, ...] | None = None
    scale: int = 1  # --scale: 255 when --mean/--std were given in 0-255 pixel units (mean/std hold them /255)
    reparam: bool = True  # fold training-time branches before tracing (--no-reparam keeps them)
    options: TargetOptions = field(default_factory=TargetOptions)


@dataclass
class Source:
    """A loaded model: the eval-mode module (the parity reference) and everything the manifest says about it."""

    spec: str
    kind: str  # registry | timm | pt2
    name: str
    module: torch.nn.Module
    input_size: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_pct: float = 0.875
    num_classes: int | None = None
    family: str | None = None
    weights: dict[str, Any] | None = None
    program: torch.export.ExportedProgram | None = None  # the user's .pt2 as loaded
    notes: list[str] = field(default_factory=list)
    rewrites: list[dict[str, Any]] = field(default_factory=list)  # done to the module before tracing


@dataclass
class ExportOutcome:
    """What an export produced: the final paths, the manifest and the parity report."""

    artifact: Path
    manifest_path: Path
    manifest: Manifest
    parity: Any | None  # exporters.parity.ParityReport


# fn(request, result) -> result after the target's finish, before the parity check (tests inject failures here).
AFTER_CONVERT: list[Callable[[Any, Any], Any]] = []


# --- stage 1: the model -----------------------------------------------------------------------


def load_source(spec: str, weights: str | None = None, seed: int = INIT_SEED) -> Source:
    """Build the model named by a registry name, `timm:<name>` or a `.pt2` path, in eval mode."""
    if spec.endswith(".pt2") or (os.sep in spec and Path(spec).suffix):
        return _load_pt2(spec, weights)
    if spec.startswith("timm:"):
        return _load_timm(spec, weights, seed)
    return _load_registry(spec, weights, seed)


def with_normalization(source: Source, mean: tuple[float, ...] | None, std: tuple[float, ...] | None,
                       scale: int = 1) -> Source:
    """The source with the user's --mean/--std in place of the model's (a .pt2's assumed ImageNet ones);
    `scale` 255: they were given in 0-255 pixel units (and arrive here divided by 255)."""
    if mean is None and std is None:
        return source
    if len(source.input_size) == 3 and source.input_size[0] != 3:
        raise UserError(f"--mean/--std give three channels, {source.name} takes {source.input_size[0]}")
    notes = [n for n in source.notes if "ImageNet mean/std assumed" not in n]
    if mean is None or std is None:  # the other one stays what it was, said in the manifest
        notes.append(f"normalisation: --{'mean' if mean else 'std'} given, {'std' if mean else 'mean'} "
                     f"{'kept from the model' if source.kind != 'pt2' else 'assumed ImageNet'}")
    if scale == 255:
        notes.append("normalisation given in 0-255 pixel units (--scale 255): the model takes (pixel - "
                     f"{_units(mean, 255)}) / {_units(std, 255)}; mean/std are recorded in 0-1 units (/255)")
    return dataclasses.replace(source, mean=tuple(mean or source.mean), std=tuple(std or source.std), notes=notes)


def _units(values: tuple[float, ...] | None, scale: float) -> str:
    """Mean or std back in the units the user gave them, for a note."""
    return "(" + ", ".join(f"{v * scale:g}" for v in values or ()) + ")"


def _random_init(source: Source) -> str:
    """How the random weights of a model exported without --weights were drawn (for the manifest)."""
    from mobiledeploy.models.random_init import N_IMAGES

    return RANDOM_INIT.format(seed=INIT_SEED, images=N_IMAGES, size="x".join(map(str, source.input_size)))


def _weights_info(weights: str | None) -> dict[str, Any] | None:
    if weights is None:
        return None
    from .manifest import sha256

    p = Path(weights)
    if not p.is_file():
        raise UserError(f"weights file not found: {weights}", "check the path")
    return {"path": str(p.resolve()), "sha256": sha256(p)}


def _load_registry(name: str, weights: str | None, seed: int) -> Source:
    from mobiledeploy.models import create_model, get_cfg, resolve_name

    name = resolve_name(name)  # `ghostnetv2` stands for ghostnetv2_100
    cfg = get_cfg(name)  # unknown names raise with the closest registered ones
    info = _weights_info(weights)
    torch.manual_seed(seed)
    model = create_model(name, weights=weights, num_classes=_checkpoint_classes(weights, cfg.num_classes)).eval()
    if weights is None:
        randomize_batchnorm(model, tuple(cfg.input_size), seed)
    return Source(spec=name, kind="registry", name=name, module=model, input_size=tuple(cfg.input_size),
                  mean=tuple(cfg.mean), std=tuple(cfg.std), crop_pct=cfg.crop_pct,
                  num_classes=getattr(model, "num_classes", cfg.num_classes), family=cfg.family, weights=info)


def _checkpoint_classes(weights: str | None, default: int) -> int:
    """The class count of a checkpoint's classifier (a model trained on 10 digits stays a 10-class model)."""
    if weights is None:
        return default
    from mobiledeploy.models.checkpoint import read_state_dict

    sd = read_state_dict(weights)
    w = sd.get("classifier.weight", sd.get("head.weight", sd.get("fc.weight")))
    return int(w.shape[0]) if w is not None and w.dim() == 2 else default


def _load_timm(spec: str, weights: str | None, seed: int) -> Source:
    timm = require("timm", "timm")
    name = spec.split(":", 1)[1]
    known = timm.list_models()
    if name not in known:
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        raise UserError(f"unknown timm model {name!r}",
                        f"did you mean {', '.join('timm:' + c for c in close)}?" if close else "see timm.list_models()")
    info = _weights_info(weights)
    torch.manual_seed(seed)
    model = timm.create_model(name, pretrained=False)
    if weights is None:
        size = tuple((getattr(model, "pretrained_cfg", {}) or {}).get("input_size", (3, 224, 224)))
        randomize_batchnorm(model, size, seed)
    else:
        from mobiledeploy.models.checkpoint import apply_state_dict, read_state_dict

        model.model_name = name
        apply_state_dict(model, read_state_dict(weights), Path(weights).name)
    model.eval()
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    size = tuple(cfg.get("input_size", (3, 224, 224)))
    return Source(spec=spec, kind="timm", name=name, module=model, input_size=size,
                  mean=tuple(cfg.get("mean", (0.485, 0.456, 0.406))), std=tuple(cfg.get("std", (0.229, 0.224, 0.225))),
                  crop_pct=float(cfg.get("crop_pct", 0.875)), num_classes=getattr(model, "num_classes", None),
                  family="timm", weights=info)


def _load_pt2(spec: str, weights: str | None) -> Source:
    p = Path(spec)
    if not p.is_file():
        raise UserError(f"no such .pt2 file: {spec}", "save one with torch.export.save(program, 'model.pt2')")
    if weights is not None:
        raise UserError("--weights does not apply to a .pt2 file", "its weights are inside the program")
    try:
        prog = torch.export.load(str(p))
    except Exception as e:  # a foreign or corrupt archive
        raise UserError(f"cannot load {p.name} as a torch.export program: {str(e).splitlines()[0][:200]}") from None
    from mobiledeploy.exporters.eval_mode import require_eval_mode

    require_eval_mode(prog, p.name)  # a training-mode graph can never pass parity: say why, in one line
    shapes = [n.meta["val"].shape for n in prog.graph.nodes
              if n.op == "placeholder" and n.name in prog.graph_signature.user_inputs]
    shape = tuple(int(d) if isinstance(d, int) else -1 for d in shapes[0]) if shapes else (3, 224, 224)
    size = shape[1:] if len(shape) == 4 else shape
    return Source(spec=str(p.resolve()), kind="pt2", name=p.stem, module=prog.module(), input_size=tuple(size),
                  mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), program=prog,
                  weights={"path": str(p.resolve()), "sha256": _weights_info(str(p))["sha256"]},
                  notes=["normalisation not recorded in the .pt2; ImageNet mean/std assumed"])


# --- stage 2: inputs and capture --------------------------------------------------------------


def example_inputs(source: Source, input_size: tuple[int, int] | None, batch: int = 1) -> tuple[torch.Tensor, ...]:
    """The static example input: batch × channels × H × W (the model's default size unless given)."""
    if batch < 1:
        raise UserError(f"--batch must be ≥ 1, got {batch}")
    if source.program is not None:
        return _pt2_inputs(source, input_size, batch)
    c, h, w = source.input_size
    if input_size is not None:
        h, w = input_size
    if h < 8 or w < 8:
        raise UserError(f"input size {h}x{w} is too small", "use at least 32x32")
    shape = (batch, c, h, w)
    memory.check_fits("tensor (the input)", memory.input_bytes(shape), "x".join(map(str, shape)),
                      memory.INPUT_HEADROOM, "use a smaller --input-size or --batch")
    gen = torch.Generator().manual_seed(0)
    return (torch.randn(*shape, generator=gen),)


def _hw(shape) -> str:
    """'H×W' of an NCHW shape, a symbolic (dynamic) dimension as '?'."""
    return "×".join(str(d) if isinstance(d, int) else "?" for d in shape[2:4])


def _pt2_inputs(source: Source, input_size: tuple[int, int] | None, batch: int) -> tuple[torch.Tensor, ...]:
    prog, name = source.program, Path(source.spec).name
    vals = [n.meta["val"] for n in prog.graph.nodes if n.op == "placeholder" and n.name in prog.graph_signature.user_inputs]
    gen = torch.Generator().manual_seed(0)
    out = []
    for k, v in enumerate(vals):
        shape = list(v.shape)
        if k == 0 and len(shape) == 4:
            want = [batch, shape[1], *(input_size or shape[2:])]
            for i, (have, w) in enumerate(zip(shape, want)):
                if isinstance(have, int) and int(w) != have:
                    if i == 0:
                        what, flag = f"a fixed batch of {have}, not {int(w)}", "--batch"
                    else:
                        what, flag = f"a fixed {_hw(shape)} input, not {_hw(want)}", "--input-size"
                    raise UserError(f"{name} was exported with {what}",
                                    f"export the .pt2 with dynamic_shapes, or change {flag}")
                if not isinstance(w, int) and not isinstance(have, int):
                    raise UserError(f"{name} has a dynamic image size", "pass --input-size")
            shape = want
        elif not all(isinstance(d, int) for d in shape):
            raise UserError(f"input {k} of {name} has dynamic dimensions mobiledeploy cannot choose")
        shape = [int(d) for d in shape]
        out.append(torch.randn(shape, generator=gen, dtype=v.dtype) if v.dtype.is_floating_point
                   else torch.zeros(shape, dtype=v.dtype))
    return tuple(out)


def smallest_side(module: torch.nn.Module, x: torch.Tensor, limit: int = 1024, probes: int = 256) -> int | None:
    """The least s for which the model runs with both image sides raised to ≥ s (None if none of the next
    `probes` sizes up to `limit` does): the fix to offer when an input is too small for the model's pooling.

    Probed on fake tensors (shapes only, no arithmetic), as torch.export traces: each probe costs
    milliseconds, and a fixed number of probes, not a time budget, bounds the search, so a slow or loaded
    machine finds the same answer as a fast one."""
    import logging

    from torch._subclasses.fake_tensor import FakeTensorMode

    h, w = int(x.shape[-2]), int(x.shape[-1])
    first = min(h, w) + 1
    # A failing fake kernel logs the error itself before raising; here a failure only means "still too small".
    with torch.no_grad(), quiet_logger("torch._subclasses.fake_tensor", logging.CRITICAL), \
            FakeTensorMode(allow_non_fake_inputs=True):
        for s in range(first, min(limit, first + probes - 1) + 1):
            try:
                module(torch.zeros(*x.shape[:-2], max(h, s), max(w, s), dtype=x.dtype))
                return s
            except Exception:  # noqa: BLE001 - any failure means: still too small
                continue
    return None


def capture(source: Source, inputs: tuple[torch.Tensor, ...], reparam: bool = True) -> torch.export.ExportedProgram:
    """torch.export the model at the static example inputs (a .pt2 is used as loaded)."""
    if source.program is not None:
        return source.program
    import logging

    try:
        # A failing fake kernel makes torch log the error on its own before raising it; our one-line error
        # below says the same with the fix, so that log line is noise in the user's output.
        with quiet_logger("torch._subclasses.fake_tensor", logging.CRITICAL):
            return torch.export.export(_traced_module(source, reparam), inputs, strict=False)
    except Exception as e:  # tracing failures are about the model or the size the user chose
        first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        shape = "x".join(str(d) for d in inputs[0].shape)
        ours = _user_error_in(e)
        if ours is not None:  # the model itself refused the input (e.g. KAT at another size): its hint is the fix
            raise UserError(f"cannot export {source.name} at input {shape}: {ours.message}", ours.hint) from e
        small = "too small" in first.lower()  # a pooling or conv left an empty map
        least = smallest_side(source.module, inputs[0]) if small else None
        if least:
            h, w = (max(int(d), least) for d in inputs[0].shape[-2:])
            hint = f"{source.name} needs each image side ≥ {least}: use e.g. --input-size {h if h == w else f'{h}x{w}'}"
        else:
            hint = "check --input-size" + (" (very small inputs break pooling)" if small else "")
        raise UserError(f"torch.export cannot trace {source.name} at input {shape}: {first}",
                        hint + "; --debug shows the traceback") from e


def _traced_module(source: Source, reparam: bool) -> torch.nn.Module:
    """The module to trace: a re-parameterised copy when the model supports it (source.module stays the reference)."""
    from mobiledeploy.exporters.reparam import reparameterize

    folded = reparameterize(source.module) if reparam else None
    source.rewrites = [r for r in [folded and folded.record()] if r]
    return folded.module if folded else source.module


def _user_error_in(e: BaseException) -> UserError | None:
    """The UserError a model raised, if torch.export's exception wraps one (directly or in its chain)."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, UserError):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


# --- stage 3: rewrites ------------------------------------------------------------------------


def rewrite(program: torch.export.ExportedProgram, target: Any, opts: ExportOptions,
            inputs: tuple[torch.Tensor, ...]) -> tuple[torch.export.ExportedProgram, list[dict[str, Any]]]:
    """Run the generic passes, the target's and the user's extra ones on a copy of the program."""
    from mobiledeploy.exporters.rewrites import GENERIC, RewriteContext, apply_rewrites, list_rewrites

    names = [n for n in (*GENERIC, *target.rewrites, *opts.rewrites) if n not in opts.skip_rewrites]
    unknown = [n for n in names if n not in list_rewrites()]
    if unknown:
        raise UserError(f"unknown rewrite(s): {', '.join(unknown)}", f"registered: {', '.join(list_rewrites())}")
    ctx = RewriteContext(example_inputs=inputs, target=target.name)
    return apply_rewrites(copy.deepcopy(program), names, ctx)


# --- stage 4: paths -------------------------------------------------------------------------


def artifact_stem(source: Source, inputs: tuple[torch.Tensor, ...], opts: ExportOptions) -> str:
    """Default artifact name: model, then size/batch/precision when they differ from the defaults."""
    if opts.name:
        if opts.name in (".", "..") or any(c in opts.name for c in "/\\") or opts.name != opts.name.strip():
            raise UserError(f"--name must be a plain file name, got {opts.name!r}", "give the folder with --out")
        return opts.name
    stem = source.name.replace("/", "_")
    x = inputs[0]
    if x.dim() == 4 and tuple(x.shape[2:]) != tuple(source.input_size[1:]):
        h, w = x.shape[2:]
        stem += f"_{h}" if h == w else f"_{h}x{w}"
    if x.shape[0] != 1:
        stem += f"_b{x.shape[0]}"
    if opts.precision != "fp32":
        stem += f"_{opts.precision}"
    return stem


def _bundle_dirs(final: Path, target: Any, opts: ExportOptions) -> tuple[Path, ...]:
    """The bundle folder this export will write, if any (checked up front like the artifact)."""
    from mobiledeploy.exporters.app import bundle_dest

    dest = bundle_dest(final, target, opts.options.bundle)
    return () if dest is None else (dest,)


def prepare_out(out_dir: Path, final: Path, force: bool, also: tuple[Path, ...] = ()) -> None:
    """Make the folder, refuse to overwrite without --force (the artifact, its manifest, and `also`:
    e.g. its bundle folder), and check that we can write there."""
    from .manifest import manifest_path

    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir} is not a folder", "choose another --out")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create output folder {out_dir}: {e.strerror}", "choose another --out") from None
    existing = [p for p in (final, manifest_path(final), *also) if p.exists()]
    if existing and not force:
        raise UserError(f"{existing[0]} already exists", "pass --force to overwrite it")
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise UserError(f"output folder {out_dir} is not writable", "choose another --out")
    probe = out_dir / f".mobiledeploy-probe-{os.getpid()}"
    try:
        probe.write_bytes(b"")
    except OSError as e:
        raise UserError(f"output folder {out_dir} is not writable: {e.strerror}", "choose another --out") from None
    finally:
        probe.unlink(missing_ok=True)


# --- stage 5: parity --------------------------------------------------------------------------


def compared_outputs(outputs: list[dict[str, Any]], target_info: dict[str, Any] | None) -> list[str]:
    """Artifact outputs that mirror the PyTorch outputs: the one a target names, else every numeric one."""
    named = (target_info or {}).get("reference_output")
    if named:
        return [named] if isinstance(named, str) else list(named)
    return [o["name"] for o in outputs if o.get("kind") in (None, "tensor")
            and str(o.get("dtype", "float32")).startswith(("float", "int", "uint"))]


def parity_check(artifact: Path, reference: torch.nn.Module, result_inputs: list[dict],
                 result_outputs: list[dict], input_shapes: list[list[int]], mean: tuple, std: tuple,
                 precision: str, crop_pct: float = 0.875, n_random: int = 3, photos: bool = True,
                 target_info: dict[str, Any] | None = None
                 ) -> tuple[Any | None, str | None, dict[str, Any] | None]:
    """(report, None, runtime info) after running the artifact on this host's runtime for it (devicebench's
    registry), or (None, reason, None) when this host has none."""
    from mobiledeploy.devicebench.runners import get_runner, host_runner_class, load_runner
    from mobiledeploy.exporters import parity

    named = (target_info or {}).get("host_runner")  # a reference runner the target chose (Core ML in a .pte)
    if named:
        cls = get_runner(named)
        if not cls.available():
            return None, f"this host lacks {cls.name} for its {target_info.get('delegate')} delegate", None
    elif (target_info or {}).get("verified_here") is False:
        return None, f"this host has no runtime for its {target_info.get('delegate')} delegate", None
    else:
        cls = host_runner_class(artifact)
    if cls is None:
        return None, f"no runtime for {Path(artifact).suffix} files on this host", None
    runner = load_runner(artifact, threads=1, cls=cls)
    runner.name_outputs([o["name"] for o in result_outputs])  # a .pte names none: the export's names, in order
    batch = parity.samples(input_shapes, mean, std, n_random=n_random, photos=photos, crop_pct=crop_pct,
                           specs=result_inputs, precision=precision, target_info=target_info)
    report = parity.check(reference, lambda _path, feeds: runner.run(feeds), artifact,
                          [i["name"] for i in result_inputs], compared_outputs(result_outputs, target_info), batch,
                          precision=precision, reference_name=f"PyTorch fp32 (torch {torch.__version__}), eval mode",
                          target_info=target_info)
    if report.vacuous:  # agreement with a model that ignores its input proves nothing: say so, never "verified"
        return None, (f"the model's outputs barely depend on its input (sensitivity {report.input_sensitivity:.1e}; "
                      f"random weights?), so parity cannot tell a wrong artifact from a right one: pass --weights"
                      ), _runtime_facts(runner)
    return report, None, _runtime_facts(runner)


def _runtime_facts(runner: Any) -> dict[str, Any]:
    """What the manifest records of the runtime that checked an artifact."""
    info = runner.info()
    facts = {k: info[k] for k in ("name", "version", "delegate") if info.get(k) is not None}
    if info.get("package"):  # the distribution an app installs (ai-edge-litert), not the runner's short name
        facts["name"] = info["package"]
    return facts


# --- the whole pipeline -----------------------------------------------------------------------


def export(opts: ExportOptions, progress: Progress | None = None,
           cache: dict[Any, Any] | None = None) -> ExportOutcome:
    """Run every stage for one target; `cache` shares loaded models and captured programs between calls."""
    from mobiledeploy.exporters.targets import ExportRequest, get_target, output_names

    from . import manifest as mf

    say = progress or (lambda msg: None)
    target = get_target(opts.target)
    check_extras(target)
    if opts.precision not in PRECISIONS:
        raise UserError(f"unknown precision {opts.precision!r}", f"choose one of: {', '.join(PRECISIONS)}")
    out_dir = Path(opts.out_dir)

    key = (opts.model, opts.weights, opts.input_size, opts.batch, opts.mean, opts.std, opts.scale)
    if cache is not None and key in cache:
        source, inputs, program = cache[key]
    else:
        say(f"loading {opts.model}")
        with model_wide():
            source = with_normalization(load_source(opts.model, opts.weights), opts.mean, opts.std, opts.scale)
            inputs = example_inputs(source, opts.input_size, opts.batch)
        program = None
    with model_wide():
        check_labels(source, opts.options.labels)
    labels = list(opts.options.labels) if opts.options.labels else _labels(source)  # resolved once, here
    stem = artifact_stem(source, inputs, opts)
    final = out_dir / f"{stem}{target.suffix}"
    prepare_out(out_dir, final, opts.force, _bundle_dirs(final, target, opts))
    if program is None:
        say(f"torch.export {source.name} at {'x'.join(map(str, inputs[0].shape))}")
        with model_wide():
            program = capture(source, inputs, opts.reparam)
        if cache is not None:
            cache[key] = (source, inputs, program)

    if opts.verify:  # the parity run holds two models' activations; fail now, not by the OOM killer later
        with model_wide():
            memory.check_fits("activation", memory.largest_activation(program), "x".join(map(str, inputs[0].shape)),
                              memory.PARITY_HEADROOM, "use a smaller --input-size or --batch, or --no-verify")
    say(f"rewriting for {target.name}")
    program, applied = rewrite(program, target, opts, inputs)
    applied = source.rewrites + applied
    tmp = out_dir / f".{stem}.partial-{os.getpid()}{target.suffix}"
    manifest_final = mf.manifest_path(final)
    try:
        say(f"converting to {target.name} ({opts.precision})")
        req = ExportRequest(model_name=source.name, program=program, module=source.module,
                            example_inputs=inputs, out_path=tmp, precision=opts.precision, mean=source.mean,
                            std=source.std, labels=labels, options=opts.options,
                            weights=Path(opts.weights) if opts.weights else None,
                            output_names=output_names(program))
        req = target.prepare(req)
        try:
            result = target.finish(req, target.convert(req))
        except UserError:
            raise
        except Exception as e:  # a converter's own failure is this target's, in one line: the others go on
            from mobiledeploy.exporters.diagnose import conversion_error

            raise conversion_error(req.program, e, target.name) from e
        if req.output_names:  # the model's order on every target, whatever order a converter lists them in
            rank = {n: i for i, n in enumerate(req.output_names)}
            result.outputs.sort(key=lambda o: rank.get(o["name"], len(rank)))
        for hook in AFTER_CONVERT:
            result = hook(req, result)
        applied += list(result.extra.get("flatbuffer_passes", []))

        parity_report, reason, runtime = None, "skipped (--no-verify)", None
        if opts.verify:
            say(f"checking parity on the {target.name} runtime")
            parity_report, reason, runtime = parity_check(
                Path(result.artifact), source.module, result.inputs, result.outputs,
                [list(t.shape) for t in inputs], source.mean, source.std, opts.precision, source.crop_pct,
                opts.n_random, opts.photos, result.extra)
            if parity_report is not None and not parity_report.passed:
                raise VerificationError(f"{target.name} artifact of {source.name} fails the {opts.precision} parity "
                                        f"check: {parity_report.summary()}",
                                        "nothing was written; --debug shows the traceback")
            if parity_report is None and opts.strict:
                raise VerificationError(f"cannot verify the {target.name} artifact: {reason}",
                                        "drop --strict to export it unverified")

        manifest = _manifest(source, opts, target, result, inputs, applied, parity_report, reason, final, labels,
                             runtime)
        from .interrupts import deferred_interrupt

        with deferred_interrupt():  # the artifact and its manifest appear together, or neither does
            move_into_place(Path(result.artifact), final)
            mf.write(manifest_final, manifest)
    finally:
        remove(tmp)  # a failure or Ctrl-C at any stage leaves nothing that looks complete
    outcome = ExportOutcome(final, manifest_final, manifest, parity_report)
    _after_export(outcome, target, opts)
    return outcome


def _after_export(outcome: ExportOutcome, target: Any, opts: ExportOptions) -> None:
    """The target's files beside the artifact, then the bundle folder when asked."""
    from mobiledeploy.exporters.app import bundle_dest

    extra_files = target.extra_files(outcome.artifact, outcome.manifest.target_info)
    dest = bundle_dest(outcome.artifact, target, opts.options.bundle)
    if dest is not None:
        from mobiledeploy.exporters.bundle import write_bundle

        outcome.bundle = write_bundle(dest, outcome.artifact, outcome.manifest, outcome.manifest.labels,
                                      tuple(extra_files))


@contextlib.contextmanager
def model_wide():
    """Mark a UserError raised inside as the model's (loading, tracing, its memory), not one target's: every
    target would fail the same way, so a several-target export stops at it (`error.model_wide`)."""
    try:
        yield
    except UserError as e:
        e.model_wide = True
        raise


def check_extras(target: Any) -> None:
    """Import what a target's module declares in REQUIRES, so a missing extra fails before any tracing."""
    import importlib.util
    import sys

    for name in target.requires:
        top = name.split(".")[0]
        missing = sys.modules[top] is None if top in sys.modules else importlib.util.find_spec(top) is None
        if missing:
            raise MissingExtraError(name, target.extra)


def check_labels(source: Source, labels: list[str] | None) -> None:
    """A --labels file must name every class of the model, no more and no fewer."""
    if labels is not None and source.num_classes and len(labels) != source.num_classes:
        raise UserError(f"the labels file has {len(labels)} names but {source.name} has {source.num_classes} classes",
                        "give one name per class, in class order")


def _labels(source: Source) -> list[str] | None:
    """ImageNet-1k class names for 1000-class models, else None.

    The shipped file (scripts/gen_imagenet_labels.py), not timm's table: timm names two classes "crane",
    and a Core ML classifier's class→probability dictionary would merge them.
    """
    if source.num_classes != 1000:
        return None
    from mobiledeploy.exporters.labels import read_labels

    return read_labels()


def _manifest(source: Source, opts: ExportOptions, target: Any, result: Any, inputs: tuple[torch.Tensor, ...],
              applied: list[dict], report: Any, reason: str | None, final: Path, labels: list[str] | None,
              runtime: dict[str, Any] | None) -> Manifest:
    from mobiledeploy import __version__

    from . import manifest as mf

    ins = []
    for i, spec in enumerate(result.inputs):
        d = dict(spec)
        d.setdefault("layout", "NCHW" if len(d.get("shape", [])) == 4 else None)
        if i == 0 and len(inputs[0].shape) == 4 and inputs[0].shape[1] == len(source.mean):
            d.setdefault("normalization", {"mean": list(source.mean), "std": list(source.std)})
            # Pixels are scaled to [0, 1] before (x - mean) / std, as in timm and torchvision.
            d.setdefault("value_range", [0.0, 1.0])
        ins.append(d)
    model = mf.ModelInfo(name=source.name, spec=source.spec, source=source.kind, family=source.family,
                         num_classes=source.num_classes,
                         weights=mf.Weights.from_json(source.weights) if source.weights else None,
                         init=None if source.weights or source.kind == "pt2" else _random_init(source),
                         input_size=list(inputs[0].shape[1:]), batch=int(inputs[0].shape[0]),
                         crop_pct=source.crop_pct, notes=list(source.notes))
    return mf.Manifest(
        model=model,
        target=target.name,
        artifact=final.name,
        sha256=mf.sha256(Path(result.artifact)),
        size_bytes=mf.size_bytes(Path(result.artifact)),
        precision=opts.precision,
        inputs=[mf.TensorEntry.from_json(d) for d in ins],
        outputs=[mf.TensorEntry.from_json(o) for o in result.outputs],
        labels=labels,
        rewrites=[{**r, "stage": r.get("stage", "torch.export graph")} for r in applied],
        parity=mf.Parity.from_json(report.as_dict()) if report is not None else None,
        versions=mf.Versions(mobiledeploy=__version__, torch=torch.__version__,
                             converter=mf.Component(name=result.converter, version=result.converter_version),
                             runtime=mf.Component.from_json(runtime) if runtime is not None else None),
        verified=bool(report is not None and report.passed),
        not_verified_reason=None if report is not None else reason,
        target_info=dict(result.extra),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )


# --- verify an existing artifact --------------------------------------------------------------


def verify(artifact: Path, n_random: int = 3, photos: bool = True, progress: Progress | None = None
           ) -> tuple[Manifest, Any | None, str | None]:
    """Re-run an artifact's parity check against the PyTorch model its manifest names.

    Returns (manifest, report, reason); report is None with the reason when this host cannot run it.
    """
    from . import manifest as mf

    if n_random < 0:
        raise UserError(f"--random must be 0 or more, got {n_random}", "pass e.g. --random 3")
    if n_random == 0 and not photos:
        raise UserError("--random 0 with --no-photos leaves no input to compare on",
                        "keep the photos or pass --random 1 or more")
    say = progress or (lambda msg: None)
    given, artifact = str(artifact), Path(artifact)
    if artifact.is_dir() and artifact.suffix != ".mlpackage" or not artifact.name:  # "", ".", "out", …
        raise UserError(f"{given!r} is a folder, not an artifact",
                        "pass the artifact file, e.g. out/ghostnetv2_100.onnx")
    if artifact.name.endswith(".json"):  # the manifest was named instead of the artifact
        man_path, artifact = artifact, artifact.with_name(artifact.name[: -len(".json")])
    else:
        man_path = mf.manifest_path(artifact)
    if not artifact.exists():
        raise UserError(f"no artifact at {artifact}", "check the path")
    m = mf.read(man_path)
    digest = mf.sha256(artifact)
    if digest != m.sha256:
        raise VerificationError(f"{artifact.name} changed since export (sha256 {digest[:12]}… vs manifest "
                                f"{m.sha256[:12]}…)", "re-export it")
    model = m.model
    weights = reference_weights(m)
    if weights:
        p = Path(weights.path)
        if not p.is_file():
            raise UserError(f"the weights the artifact was exported from are gone: {p}",
                            "restore the file or re-export")
        if mf.sha256(p) != weights.sha256:
            raise VerificationError(f"weights file {p.name} changed since export", "re-export the artifact")
    say(f"loading the reference {model.spec}")
    source = load_source(model.spec, weights.path if weights else None)
    if model.init and model.init != _random_init(source):
        # Random weights drawn another way (an older mobiledeploy): comparing with today's draw would
        # report a mismatch that says nothing about the artifact.
        raise UserError(f"{artifact.name} was exported with random weights drawn as \"{model.init}\"; this "
                        f"mobiledeploy draws them otherwise", "re-export the artifact (or export with --weights)")
    shapes = [list(t.shape) for t in example_inputs(source, tuple(model.input_size[1:]), model.batch)]
    say(f"running the {m.target} artifact")
    report, reason, _ = parity_check(artifact, source.module, [i.spec() for i in m.inputs],
                                     [o.spec() for o in m.outputs], shapes,
                                     tuple(model_mean(m)), tuple(model_std(m)), m.precision,
                                     model_crop(m), n_random, photos, m.target_info)
    return m, report, reason


def reference_weights(m: Manifest) -> Weights | None:
    """The checkpoint `verify` reloads or None: random weights, or a .pt2 that holds its own."""
    return m.model.weights if m.model.weights and m.model.source != "pt2" else None


def model_crop(m: Manifest) -> float:
    """The evaluation crop recorded in a manifest (timm's 0.875 when absent)."""
    return 0.875 if m.model.crop_pct is None else m.model.crop_pct


def model_mean(m: Manifest) -> list[float]:
    """The input normalisation mean recorded in a manifest (ImageNet's when absent)."""
    norm = m.inputs[0].normalization if m.inputs else None
    return norm.mean if norm is not None and norm.mean is not None else [0.485, 0.456, 0.406]


def model_std(m: Manifest) -> list[float]:
    """The input normalisation std recorded in a manifest (ImageNet's when absent)."""
    norm = m.inputs[0].normalization if m.inputs else None
    return norm.std if norm is not None and norm.std is not None else [0.229, 0.224, 0.225]
