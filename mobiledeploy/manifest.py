"""The manifest written next to every artifact (`<artifact>.json`): what it is, how it was made, how exact it is.

`Manifest` is the typed form every reader uses; its JSON (`to_json` / `from_json`) is what apps see. This
module runs on ARM boards too (the bench agent ships it): standard library only, Python 3.9 syntax.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .errors import UserError

SCHEMA = "mobiledeploy.manifest/2"
# Schema /1 has the same field names and layout. What /2 adds: every top-level field below is written
# (null where it does not apply), while a /1 file may lack size_bytes, not_verified_reason, target_info and
# created (build() required only REQUIRED_V1). A /1 file is read with those as None / {}; record_device
# writes it back as /2.
SCHEMA_V1 = "mobiledeploy.manifest/1"
READABLE = (SCHEMA, SCHEMA_V1)
REQUIRED_V1 = ("schema", "model", "target", "artifact", "sha256", "precision", "inputs", "outputs", "labels",
               "rewrites", "parity", "versions", "verified")
REQUIRED = REQUIRED_V1 + ("size_bytes", "not_verified_reason", "target_info", "created")


class ManifestFormatError(ValueError):
    """A manifest whose JSON has the wrong shape (a list where an object belongs, …)."""


def _opt(omit: str | None = None, of: type | None = None, many: bool = False, **kw: Any) -> Any:
    """A field: `omit` "none" leaves it out of the JSON when None, "empty" also when [] / {}; `of` a nested
    record type (a list of them with `many`)."""
    if "default" not in kw and "default_factory" not in kw:
        kw["default"] = None
    return field(metadata={"omit": omit, "of": of, "many": many}, **kw)


class Record:
    """JSON in field order, then the keys this version does not know (kept in `extra`, so nothing is lost)."""

    extra: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """Plain JSON: nested records as objects; fields marked `omit` left out when None (or empty)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == "extra":
                continue
            v = getattr(self, f.name)
            omit = f.metadata.get("omit")
            if v is None and omit or omit == "empty" and isinstance(v, (list, dict)) and not v:
                continue
            out[f.name] = _dump(v)
        out.update(_dump(self.extra))
        return out

    @classmethod
    def from_json(cls, d: Any) -> Any:
        """The record from its JSON; absent fields take their defaults, unknown keys go to `extra`."""
        if not isinstance(d, Mapping):
            raise ManifestFormatError(f"{cls.__name__}: expected a JSON object, got {type(d).__name__}")
        kw: dict[str, Any] = {}
        names = set()
        for f in dataclasses.fields(cls):
            if f.name == "extra":
                continue
            names.add(f.name)
            if f.name not in d:
                continue
            v, of = d[f.name], f.metadata.get("of")
            if v is None and f.default_factory is not dataclasses.MISSING:  # null read as empty
                continue
            if of is not None and v is not None:
                if f.metadata.get("many"):
                    if not isinstance(v, list):
                        raise ManifestFormatError(f"{cls.__name__}.{f.name}: expected a list")
                    v = [of.from_json(x) for x in v]
                else:
                    v = of.from_json(v)
            kw[f.name] = v
        return cls(**kw, extra={k: v for k, v in d.items() if k not in names})  # type: ignore[call-arg]


def _dump(v: Any) -> Any:
    if isinstance(v, Record):
        return v.to_json()
    if isinstance(v, list):
        return [_dump(x) for x in v]
    if isinstance(v, tuple):
        return [_dump(x) for x in v]
    if isinstance(v, dict):
        return {k: _dump(x) for k, x in v.items()}
    return v


@dataclass
class Normalization(Record):
    """How pixels become the model's input: (pixel/255 - mean) / std; `in_graph`/`folded`: the artifact does it."""

    mean: list[float] | None = None
    std: list[float] | None = None
    in_graph: bool | None = _opt("none")
    folded: bool | None = _opt("none")
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class TensorEntry(Record):
    """One input or output as the artifact names it. Targets add their own keys (color, quantization,
    swift_type, …): those stay in `extra`."""

    name: str = ""
    shape: list[Any] | None = _opt("none")  # ints; a converter may leave a symbolic dim as a string
    dtype: str | None = _opt("none")
    layout: str | None = _opt("none")  # NCHW / NHWC for image inputs
    kind: str | None = _opt("none")  # image, tensor, label, probabilities (Core ML)
    normalization: Normalization | None = _opt("none", Normalization)
    value_range: Any = _opt("none")  # [lo, hi], or a sentence for a normalised tensor
    extra: dict[str, Any] = field(default_factory=dict)

    def spec(self) -> dict[str, Any]:
        """The plain dict the exporters' parity code takes (the JSON form)."""
        return self.to_json()


@dataclass
class Weights(Record):
    """The checkpoint an artifact was exported from."""

    path: str = ""
    sha256: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelInfo(Record):
    """The PyTorch model: what `verify` reloads as its reference."""

    name: str = ""
    spec: str = ""  # what `export` was given: a registry name, timm:…, a .pt2 path
    source: str = ""  # registry | timm | pt2
    family: str | None = None
    num_classes: int | None = None
    weights: Weights | None = _opt(None, Weights)
    init: str | None = None  # how random weights were drawn (no --weights)
    input_size: list[int] = field(default_factory=list)  # C, H, W
    batch: int = 1
    crop_pct: float | None = None
    notes: list[str] = _opt("empty", default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Parity(Record):
    """The parity check's figures (exporters.parity.ParityReport.as_dict)."""

    reference: str = ""
    max_abs: float | None = None
    rel_l2: float | None = None
    cosine: float | None = None
    top1_agreement: float | None = None
    n_samples: int = 0
    inputs: list[str] = field(default_factory=list)
    tolerance: dict[str, float] = field(default_factory=dict)
    passed: bool = False
    per_sample: list[dict[str, Any]] = field(default_factory=list)
    informational: dict[str, Any] | None = None
    outputs: dict[str, dict[str, float]] | None = None  # several outputs: each one's worst figures
    input_sensitivity: float | None = None
    # Judged against float64 where PyTorch fp32 itself is far from it (exporters.parity.FLOAT64_FACTOR).
    float64: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Component(Record):
    """A converter or runtime: name, version, delegate where one applies."""

    name: str | None = None
    version: str | None = None
    delegate: str | None = _opt("none")
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Versions(Record):
    """What made and checked the artifact."""

    mobiledeploy: str | None = None
    torch: str | None = None
    converter: Component | None = _opt(None, Component)
    runtime: Component | None = _opt(None, Component)  # None: nothing on the host ran it
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class DeviceRecord(Record):
    """One on-device check (`verify --device`); one per device URL and runtime name."""

    device: str = ""
    machine: str | None = None
    cpu: str | None = None
    board: str | None = None
    vector_path: str | None = None
    features: list[str] | None = None
    emulated_cpu: str | None = None
    runtime: dict[str, Any] = field(default_factory=dict)  # name, package, version, delegate
    verified: bool = False
    rel_l2: float | None = None
    max_abs: float | None = None
    cosine: float | None = None
    top1_agreement: float | None = None
    n_samples: int = 0
    bar: dict[str, float] = field(default_factory=dict)
    vs_host_rel_l2: float | None = None
    sha256: str | None = None  # the artifact's, when it was checked
    checked: str | None = None  # UTC, ISO 8601
    extra: dict[str, Any] = field(default_factory=dict)

    def key(self) -> tuple[str, Any]:
        """What makes two records the same check: the device URL and the runtime's name."""
        return self.device, (self.runtime or {}).get("name")


@dataclass
class Manifest(Record):
    """An artifact's manifest. `target_info` is the target's own facts (opset, delegation, quantization, …),
    whose shape differs per target, so it stays a dict."""

    model: ModelInfo = _opt(None, ModelInfo, default_factory=ModelInfo)
    target: str = ""
    artifact: str = ""
    sha256: str = ""
    precision: str = "fp32"
    inputs: list[TensorEntry] = _opt(None, TensorEntry, True, default_factory=list)
    outputs: list[TensorEntry] = _opt(None, TensorEntry, True, default_factory=list)
    labels: list[str] | None = None
    rewrites: list[dict[str, Any]] = field(default_factory=list)  # name, changed, what, stage
    parity: Parity | None = _opt(None, Parity)
    versions: Versions = _opt(None, Versions, default_factory=Versions)
    verified: bool = False
    size_bytes: int | None = None
    not_verified_reason: str | None = None
    target_info: dict[str, Any] = field(default_factory=dict)
    created: str | None = None
    devices: list[DeviceRecord] = _opt("empty", DeviceRecord, True, default_factory=list)
    bundle: dict[str, Any] | None = _opt("none")  # the copy in a --bundle folder: what the folder holds
    extra: dict[str, Any] = field(default_factory=dict)
    schema: str = field(default=SCHEMA, repr=False, metadata={"omit": None})

    def to_json(self) -> dict[str, Any]:
        """The JSON apps read, `schema` first (always this version's: writing converts an old file)."""
        out = super().to_json()
        out.pop("schema", None)
        return {"schema": SCHEMA, **out}

    @classmethod
    def from_json(cls, d: Any) -> "Manifest":
        """The typed manifest from its JSON, without checks (read() checks the schema and the fields)."""
        return super().from_json(d)

    def record_device(self, record: DeviceRecord) -> None:
        """Add an on-device check, replacing an earlier one of the same device URL and runtime name."""
        self.devices = [d for d in self.devices if d.key() != record.key()] + [record]


def manifest_path(artifact: Path) -> Path:
    """Where the manifest of an artifact lives: the artifact's name plus '.json'."""
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + ".json")


def sha256(path: Path) -> str:
    """SHA-256 of a file, or of a folder (.mlpackage) as its sorted relative paths and contents."""
    path = Path(path)
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        if f is not path:
            h.update(f.relative_to(path).as_posix().encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def size_bytes(path: Path) -> int:
    """Size of a file, or the total of a folder's files."""
    path = Path(path)
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def write(path: Path, manifest: Manifest) -> None:
    """Write the manifest's JSON atomically: a temporary name in the same folder, then a rename."""
    from .fsio import write_json  # here, not at the top: the board's copy of this module has no fsio

    write_json(path, manifest.to_json())


def read(path: Path) -> Manifest:
    """Read and check a manifest (schema /2, or /1 converted); a missing or foreign file is the user's error."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"no manifest at {path}", "export the artifact with `mobiledeploy export` first")
    try:
        m = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path.name} is not valid JSON: {e}",
                        "re-export the artifact with --force to write its manifest again") from None
    if not isinstance(m, dict) or m.get("schema") not in READABLE:
        raise UserError(f"{path.name} is not a mobiledeploy manifest (schema {m.get('schema') if isinstance(m, dict) else None!r})",
                        f"expected schema {SCHEMA}; re-export the artifact with --force")
    missing = [k for k in (REQUIRED if m["schema"] == SCHEMA else REQUIRED_V1) if k not in m]
    if missing:
        raise UserError(f"{path.name} lacks field(s): {', '.join(missing)}", "re-export the artifact with --force")
    try:
        return Manifest.from_json(m)
    except (ManifestFormatError, TypeError) as e:
        raise UserError(f"{path.name} is malformed: {e}", "re-export the artifact with --force") from None


def record_device(path: Path, record: DeviceRecord) -> Manifest:
    """Add or replace (same `device` URL and runtime name) one on-device check under `devices`; write atomically."""
    m = read(path)
    m.record_device(record)
    write(path, m)
    return m
