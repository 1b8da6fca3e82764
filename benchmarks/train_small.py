"""Train a small registered model on a real image dataset that installs offline (scikit-learn's digits).

Accuracy figures for quantized artifacts mean nothing on random weights, and no weights may be
downloaded here, so this trains `mobilenetv2_035` on the 1,797 8×8 handwritten digits shipped
inside scikit-learn, upscaled to RGB at a small input size, with a stratified held-out split.

Tests do not train: a model trained on another CPU is another model (float rounding differs from
one CPU to the next and SGD amplifies it), so the trained checkpoint and its split are shipped as
test data (tests/data/digits_mobilenetv2_035.*, 1.7 MB) and read by `load_shipped`. Regenerate them with

    python benchmarks/train_small.py --out out/digits --write-test-data tests/data   # ~2-10 CPU minutes
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

LABELS = [str(d) for d in range(10)]
MEAN = (0.485, 0.456, 0.406)  # the registered model's ImageNet normalisation, kept so exports stay generic
STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines the trained weights (and so the cache key)."""

    model: str = "mobilenetv2_035"
    size: int = 32
    epochs: int = 30  # 98.9 % held-out with the fan-out-per-group init (20 epochs: 96.9 %)
    batch: int = 64
    lr: float = 0.05
    test_fraction: float = 0.2
    seed: int = 0

    def key(self) -> str:
        """A short hash of the config, the torch version and the model code (the cache key)."""
        import mobiledeploy.models._layers as layers
        from mobiledeploy.models import create_model

        # The model's code (its init included) decides the trained weights as much as the config does.
        code = "".join(Path(m.__file__).read_text() for m in
                       (layers, sys.modules[type(create_model(self.model)).__module__]))
        blob = json.dumps(asdict(self), sort_keys=True) + torch.__version__ + code
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


@dataclass
class TrainedModel:
    """A trained checkpoint and what an exporter or test needs to use it."""

    checkpoint: Path
    model: str
    size: int
    num_classes: int
    labels: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    test_accuracy: float
    train_seconds: float
    config: dict = field(default_factory=dict)
    split: dict | None = None  # {"train": [...], "test": [...]} indices into load_digits(); None: recompute

    def create(self) -> torch.nn.Module:
        """The trained model in eval mode."""
        from mobiledeploy.models import create_model

        return create_model(self.model, weights=str(self.checkpoint), num_classes=self.num_classes).eval()


def split_indices(test_fraction: float = 0.2, seed: int = 0) -> dict[str, list[int]]:
    """The stratified held-out split, as indices into sklearn's load_digits() (what the shipped data records)."""
    from mobiledeploy.errors import require

    datasets = require("sklearn.datasets", "train")
    model_selection = require("sklearn.model_selection", "train")
    target = datasets.load_digits().target
    idx_train, idx_test = model_selection.train_test_split(
        np.arange(len(target)), test_size=test_fraction, random_state=seed, stratify=target)
    return {"train": [int(i) for i in idx_train], "test": [int(i) for i in idx_test]}


def digits_split(size: int = 32, test_fraction: float = 0.2, seed: int = 0, indices: dict | None = None):
    """Digits as float RGB images in [0, 1] of size×size: (x_train, y_train, x_test, y_test).

    `indices` (from the shipped test data) fixes the split; without it the split is computed."""
    from mobiledeploy.errors import require

    datasets = require("sklearn.datasets", "train")
    d = datasets.load_digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0)[:, None]  # (N, 1, 8, 8), ink = 1
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    x = x.expand(-1, 3, -1, -1).contiguous()
    y = torch.from_numpy(d.target.astype(np.int64))
    idx = indices or split_indices(test_fraction, seed)
    idx_train, idx_test = np.asarray(idx["train"]), np.asarray(idx["test"])
    return x[idx_train], y[idx_train], x[idx_test], y[idx_test]


def normalize(x: torch.Tensor, mean=MEAN, std=STD) -> torch.Tensor:
    """[0, 1] RGB (N, 3, H, W) → the model's normalised input."""
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    return (x - m) / s


def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Small random shifts, scales and rotations: digits vary in position and slant."""
    n = x.shape[0]
    ang = (torch.rand(n, generator=g) - 0.5) * 0.4  # ±0.2 rad
    scale = 1 + (torch.rand(n, generator=g) - 0.5) * 0.2
    shift = (torch.rand(n, 2, generator=g) - 0.5) * 0.2
    cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")


@torch.no_grad()
def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy of model on [0, 1] images x."""
    model.eval()
    pred = torch.cat([model(normalize(xb)).argmax(1) for xb in x.split(256)])
    return float((pred == y).float().mean())


def train(cfg: TrainConfig, out: Path, log=print) -> TrainedModel:
    """Train cfg.model on digits and write `<out>/model.safetensors` + `<out>/train.json`."""
    from safetensors.torch import save_file

    from mobiledeploy.models import create_model

    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    x_tr, y_tr, x_te, y_te = digits_split(cfg.size, cfg.test_fraction, cfg.seed)
    model = create_model(cfg.model, num_classes=len(LABELS))
    steps = cfg.epochs * ((len(y_tr) + cfg.batch - 1) // cfg.batch)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, weight_decay=4e-5, nesterov=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps, pct_start=0.15)
    t0 = time.perf_counter()
    for epoch in range(cfg.epochs):
        model.train()
        perm = torch.randperm(len(y_tr), generator=g)
        for i in range(0, len(perm), cfg.batch):
            j = perm[i:i + cfg.batch]
            if len(j) < 2:
                continue  # BatchNorm needs more than one sample
            loss = F.cross_entropy(model(normalize(_augment(x_tr[j], g))), y_tr[j], label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        if (epoch + 1) % 10 == 0 or epoch + 1 == cfg.epochs:
            log(f"epoch {epoch + 1}/{cfg.epochs}  loss {loss.item():.3f}  held-out top-1 "
                f"{accuracy(model, x_te, y_te):.4f}  ({time.perf_counter() - t0:.0f} s)")
    seconds = time.perf_counter() - t0
    acc = accuracy(model, x_te, y_te)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "model.safetensors.tmp"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    tmp.replace(out / "model.safetensors")
    result = TrainedModel(out / "model.safetensors", cfg.model, cfg.size, len(LABELS), LABELS, MEAN, STD,
                          acc, seconds, asdict(cfg))
    meta = asdict(result) | {"checkpoint": "model.safetensors", "key": cfg.key(),
                             "n_train": len(y_tr), "n_test": len(y_te), "torch": torch.__version__}
    (out / "train.json.tmp").write_text(json.dumps(meta, indent=2))
    (out / "train.json.tmp").replace(out / "train.json")  # written last: its presence means complete
    return result


def load_or_train(out: Path, cfg: TrainConfig = TrainConfig(), log=print) -> TrainedModel:
    """The trained model cached in `out` when its config matches, else train it there."""
    meta_path = out / "train.json"
    if meta_path.exists() and (out / "model.safetensors").exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("key") == cfg.key():
            return TrainedModel(out / "model.safetensors", meta["model"], meta["size"], meta["num_classes"],
                                meta["labels"], tuple(meta["mean"]), tuple(meta["std"]),
                                meta["test_accuracy"], meta["train_seconds"], meta["config"])
    return train(cfg, out, log)


SHIPPED = "digits_mobilenetv2_035"  # tests/data/<SHIPPED>.safetensors + <SHIPPED>.json


def write_test_data(tm: TrainedModel, data_dir: Path) -> Path:
    """Ship a trained model as test data: the checkpoint and a JSON with its facts and held-out split."""
    import shutil

    from mobiledeploy.errors import require

    data_dir.mkdir(parents=True, exist_ok=True)
    ckpt = data_dir / f"{SHIPPED}.safetensors"
    shutil.copyfile(tm.checkpoint, ckpt)
    ckpt.chmod(0o644)
    cfg = TrainConfig(**tm.config)
    meta = {"model": tm.model, "size": tm.size, "num_classes": tm.num_classes, "labels": tm.labels,
            "mean": list(tm.mean), "std": list(tm.std), "test_accuracy": tm.test_accuracy,
            "trained_with": {"config": tm.config, "torch": torch.__version__,
                             "scikit-learn": require("sklearn", "train").__version__, "cpu": _cpu_name()},
            "sha256": hashlib.sha256(ckpt.read_bytes()).hexdigest(),
            "split": {"source": "sklearn.datasets.load_digits()", **split_indices(cfg.test_fraction, cfg.seed)}}
    (data_dir / f"{SHIPPED}.json").write_text(json.dumps(meta, indent=1) + "\n")
    return ckpt


def load_shipped(data_dir: Path) -> TrainedModel:
    """The trained digits model shipped as test data (checked against its recorded sha256)."""
    meta = json.loads((data_dir / f"{SHIPPED}.json").read_text())
    ckpt = data_dir / f"{SHIPPED}.safetensors"
    digest = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    if digest != meta["sha256"]:
        raise ValueError(f"{ckpt} is not the checkpoint its JSON describes (sha256 {digest[:12]}…)")
    split = {k: meta["split"][k] for k in ("train", "test")}
    return TrainedModel(ckpt, meta["model"], meta["size"], meta["num_classes"], meta["labels"],
                        tuple(meta["mean"]), tuple(meta["std"]), meta["test_accuracy"], 0.0,
                        meta["trained_with"]["config"], split)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "unknown")
    except OSError:
        return "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("out/digits"))
    ap.add_argument("--model", default=TrainConfig.model)
    ap.add_argument("--size", type=int, default=TrainConfig.size)
    ap.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--write-test-data", type=Path, default=None, metavar="DIR",
                    help="also ship the result as test data there (tests/data)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    r = train(TrainConfig(model=a.model, size=a.size, epochs=a.epochs), a.out)
    print(f"{r.model} on digits at {r.size}×{r.size}: held-out top-1 {r.test_accuracy:.4f} "
          f"after {r.train_seconds:.0f} s → {r.checkpoint}")
    if a.write_test_data:
        print(f"test data: {write_test_data(r, a.write_test_data)}")


if __name__ == "__main__":
    main()
