"""GR-KAN Triton kernels: choose a kernel generation, build a launch plan once per shape, launch.

Two generations, one file each, every kernel beside its launcher:
- grouped_kernels.py: tiles inside one channel group (the default backward);
- persistent_kernels.py: row-spanning tiles, a few programs per SM (the default forward).
Measured on an H200 (BENCHMARKS.md): the persistent forward reaches 80-96 % of copy bandwidth against
the grouped one's 62-94 %, while the grouped backward is faster.

A launch plan (grid, block sizes, configuration, the backward's partials buffer) is built on the first
call for a (shape, dtypes, device) and cached, so a call is one dictionary lookup, the output
allocations and the launches: no environment reads, no `triton.cdiv`, no tuning. Tuning (timing a few
configurations once per shape bucket on a GPU) happens only while a plan is built outside CUDA-graph
capture; a plan built during capture uses the default configuration and is not kept.

Import this module only after TRITON_INTERPRET is set the way you want: triton.jit decides at
decoration time whether a kernel is compiled or interpreted.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

import torch

from . import grouped_kernels, persistent_kernels

INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
GENERATIONS = ("grouped", "persistent")
DEFAULT_GENERATION = {"forward": "persistent", "backward": "grouped"}
KERNEL_ENV = "MOBILEDEPLOY_GRKAN_KERNEL"  # grouped | persistent: both directions
TUNE_ENV = "MOBILEDEPLOY_GRKAN_TUNE"  # 0: the first candidate configuration, no timing
_EARLIER_NAMES = {"v1": "grouped", "v2": "persistent"}  # what results before the split call them

GENERATION: str | None = None  # process-wide override ahead of $MOBILEDEPLOY_GRKAN_KERNEL: set_generation()
_MODULES = {"grouped": grouped_kernels, "persistent": persistent_kernels}
_env_generation: dict[str, str] | None = None  # $MOBILEDEPLOY_GRKAN_KERNEL, read once
_forced: dict[str, object] = {}  # "grouped_forward" → configuration (sweeps, tests); see configured()
_plans: dict[tuple, Callable[..., None]] = {}
_call_plans: dict[tuple, CallPlan] = {}
_tuned: dict[tuple, object] = {}


def read_environment() -> dict[str, str]:
    """(Re)read $MOBILEDEPLOY_GRKAN_KERNEL: the generation per direction; drops the cached plans."""
    global _env_generation
    value = os.environ.get(KERNEL_ENV)
    chosen = dict(DEFAULT_GENERATION)
    if value:
        name = _EARLIER_NAMES.get(value, value)
        if name not in GENERATIONS:
            from mobiledeploy.errors import UserError

            raise UserError(f"unknown GR-KAN kernel generation {value!r}",
                            f"set ${KERNEL_ENV} to one of {', '.join(GENERATIONS)}")
        chosen = {"forward": name, "backward": name}
    _env_generation = chosen
    clear_plans()
    return chosen


def generation(direction: str, version: str | None = None) -> str:
    """The generation to run: the argument, else GENERATION, else $MOBILEDEPLOY_GRKAN_KERNEL, else the default."""
    name = version or GENERATION
    if name is None:
        return (_env_generation or read_environment())[direction]
    name = _EARLIER_NAMES.get(name, name)
    if name not in GENERATIONS:
        from mobiledeploy.errors import UserError

        raise UserError(f"unknown GR-KAN kernel generation {name!r}", f"use one of {', '.join(GENERATIONS)}")
    return name


def set_generation(name: str | None) -> None:
    """Pin one generation for both directions (None: $MOBILEDEPLOY_GRKAN_KERNEL or the defaults again)."""
    global GENERATION
    GENERATION = None if name is None else generation("forward", name)
    clear_plans()


def clear_plans() -> None:
    """Forget every launch plan (they hold the kernel objects and configurations they were built with)."""
    _plans.clear()
    for plan in _call_plans.values():
        plan.valid = False  # callers that kept a plan (GRKAN modules) must get a new one
    _call_plans.clear()


@contextlib.contextmanager
def configured(**configs: object) -> Iterator[None]:
    """Force launch configurations while inside, e.g. configured(grouped_backward=GroupedConfig(2, 4, 2))."""
    unknown = set(configs) - {f"{g}_{d}" for g in GENERATIONS for d in ("forward", "backward")}
    if unknown:
        raise ValueError(f"unknown configuration keys: {sorted(unknown)}")
    saved = dict(_forced)
    _forced.update(configs)
    clear_plans()
    try:
        yield
    finally:
        _forced.clear()
        _forced.update(saved)
        clear_plans()


def forward(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, version: str | None = None,
            out_dtype: torch.dtype | None = None) -> torch.Tensor:
    """y = P(x)/Q(x) over the last dim of x (any leading dims), written in out_dtype (default x's dtype)."""
    gen = version or GENERATION or (_env_generation or read_environment())["forward"]
    # Every kernel indexes flat, row-major memory.
    if not x.is_contiguous():
        x = x.contiguous()
    if not a.is_contiguous():
        a = a.contiguous()
    if not b.is_contiguous():
        b = b.contiguous()
    y = torch.empty_like(x, dtype=out_dtype)
    key = (gen, x.shape, x.dtype, y.dtype, x.device, b.shape[0])
    launch = _plans.get(key)
    if launch is None:
        if x.numel() == 0:
            return y
        launch = _forward_plan(key, x, y, a, b)
    launch(x, y, a, b)
    return y


def backward(dy: torch.Tensor, x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, deterministic: bool = True,
             version: str | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dx, da, db): dx in x's dtype (dy may have another dtype: y's), da/db in the coefficients' dtypes,
    sums in fp32 with fp64 folds."""
    gen = version or GENERATION or (_env_generation or read_environment())["backward"]
    if not x.is_contiguous():
        x = x.contiguous()
    if not dy.is_contiguous():
        dy = dy.contiguous()
    if not a.is_contiguous():
        a = a.contiguous()
    if not b.is_contiguous():
        b = b.contiguous()
    dx = torch.empty_like(x)
    # fp32 coefficient grads; for fp32 parameters these are returned as they are (no copy).
    da = torch.empty(a.shape, dtype=torch.float32, device=a.device)
    db = torch.empty(b.shape, dtype=torch.float32, device=b.device)
    key = (gen, x.shape, x.dtype, dy.dtype, x.device, b.shape[0], deterministic)
    launch = _plans.get(key)
    if launch is None:
        if x.numel() == 0:
            return dx, torch.zeros_like(a), torch.zeros_like(b)
        launch = _backward_plan(key, x, dy, dx, a, b, da, db, deterministic)
    if not deterministic:
        da.zero_()
        db.zero_()
    launch(x, dy, dx, a, b, da, db)
    return dx, (da if a.dtype == torch.float32 else da.to(a.dtype)), (db if b.dtype == torch.float32 else
                                                                      db.to(b.dtype))


class CallPlan:
    """The eager autograd path's launches for one (shape, dtype, device, output dtype, reduction mode).

    Everything a call would otherwise decide (generation, configuration, grid, buffers) is decided when
    the plan first runs; forward() and backward() then allocate the outputs and launch.
    """

    __slots__ = ("out_dtype", "deterministic", "generations", "valid", "_forward", "_backward", "_backward_dtype")

    def __init__(self, out_dtype: torch.dtype | None, deterministic: bool) -> None:
        self.valid = False  # True while kept in the plan cache: clear_plans() ends it
        self.out_dtype = out_dtype
        self.deterministic = deterministic
        self.generations = (generation("forward"), generation("backward"))
        self._forward: Callable[..., None] | None = None
        self._backward: Callable[..., None] | None = None
        self._backward_dtype: torch.dtype | None = None

    def forward(self, x: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """y = P(x)/Q(x) in out_dtype."""
        if not x.is_contiguous():
            x = x.contiguous()
        y = torch.empty_like(x, dtype=self.out_dtype)
        launch = self._forward
        if launch is None:
            if x.numel() == 0:
                return y
            launch = _forward_plan((self.generations[0], x.shape, x.dtype, y.dtype, x.device, b.shape[0]), x, y,
                                   a.contiguous(), b.contiguous())
            if not _capturing(x):
                self._forward = launch
        launch(x, y, a if a.is_contiguous() else a.contiguous(), b if b.is_contiguous() else b.contiguous())
        return y

    def backward(self, dy: torch.Tensor, x: torch.Tensor, a: torch.Tensor,
                 b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(dx, da, db) as backward() returns them."""
        if not dy.is_contiguous():
            dy = dy.contiguous()
        if not x.is_contiguous():
            x = x.contiguous()
        if not a.is_contiguous():
            a = a.contiguous()
        if not b.is_contiguous():
            b = b.contiguous()
        dx = torch.empty_like(x)
        da = torch.empty_like(a, dtype=torch.float32)
        db = torch.empty_like(b, dtype=torch.float32)
        launch = self._backward
        if launch is None or self._backward_dtype is not dy.dtype:
            if x.numel() == 0:
                return dx, torch.zeros_like(a), torch.zeros_like(b)
            key = (self.generations[1], x.shape, x.dtype, dy.dtype, x.device, b.shape[0], self.deterministic)
            launch = _plans.get(key) or _backward_plan(key, x, dy, dx, a, b, da, db, self.deterministic)
            if not _capturing(x):
                self._backward, self._backward_dtype = launch, dy.dtype
        if not self.deterministic:
            da.zero_()
            db.zero_()
        launch(x, dy, dx, a, b, da, db)
        return dx, (da if a.dtype is torch.float32 else da.to(a.dtype)), (db if b.dtype is torch.float32 else
                                                                          db.to(b.dtype))


def call_plan(x: torch.Tensor, b: torch.Tensor, out_dtype: torch.dtype | None, deterministic: bool) -> CallPlan:
    """The plan for x's shape, dtype and device (one dictionary lookup once built)."""
    key = (x.shape, x.dtype, x.device, b.shape[0], out_dtype, deterministic, GENERATION)
    plan = _call_plans.get(key)
    if plan is None:
        plan = CallPlan(out_dtype, deterministic)
        if not _capturing(x):
            _call_plans[key] = plan
            plan.valid = True
    return plan


# ---------------------------------------------------------------------------------------------
# Plans: built once per key, outside the per-call path


def _capturing(x: torch.Tensor) -> bool:
    return x.is_cuda and torch.cuda.is_current_stream_capturing()


def _forward_plan(key: tuple, x, y, a, b) -> Callable[..., None]:
    gen = key[0]
    C, G = x.shape[-1], b.shape[0]
    M = x.numel() // C

    def build(cfg) -> Callable[..., None]:
        if gen == "grouped":
            return grouped_kernels.forward_launcher(M, C, G, x.numel(), cfg)
        return persistent_kernels.forward_launcher(M, C, G, cfg, x.device)

    cfg = _choose(gen, "forward", x, y.dtype, M, C, G, lambda cfg: build(cfg)(x, y, a, b))
    return _keep(key, x, build(cfg))


def _backward_plan(key: tuple, x, dy, dx, a, b, da, db, deterministic: bool) -> Callable[..., None]:
    gen = key[0]
    C, G = x.shape[-1], b.shape[0]
    M = x.numel() // C

    def build(cfg, det: bool) -> Callable[..., None]:
        if gen == "grouped":
            return grouped_kernels.backward_launcher(M, C, G, x.numel(), cfg, x.device, det)
        inner = cfg.inner or (persistent_kernels.INNER_INTERPRETED if INTERPRETED else
                              persistent_kernels.INNER_COMPILED)
        return persistent_kernels.backward_launcher(M, C, G, cfg, x.device, det, inner,
                                                    persistent_kernels.COMPENSATE)

    # Tuning times the deterministic launch; the atomic mode uses the configuration it picked.
    cfg = _choose(gen, "backward", x, dy.dtype, M, C, G, lambda cfg: build(cfg, True)(x, dy, dx, a, b, da, db))
    return _keep(key, x, build(cfg, deterministic))


def _keep(key: tuple, x: torch.Tensor, launch: Callable[..., None]) -> Callable[..., None]:
    if not _capturing(x):  # a plan built during capture holds capture-pool memory: use it once only
        _plans[key] = launch
    return launch


def _choose(gen: str, direction: str, x: torch.Tensor, other_dtype: torch.dtype, M: int, C: int, G: int,
            run: Callable[[object], None]):
    """The forced configuration, else the tuned one for this shape bucket, else the first candidate."""
    forced = _forced.get(f"{gen}_{direction}")
    if forced is not None:
        return forced
    key = (gen, direction, x.device, C, G, x.dtype, other_dtype, M.bit_length())
    cfg = _tuned.get(key)
    if cfg is not None:
        return cfg
    cands = _MODULES[gen].candidates(direction, C, G, x.element_size(), INTERPRETED)
    if (INTERPRETED or not x.is_cuda or len(cands) == 1 or os.environ.get(TUNE_ENV, "1") == "0"
            or _capturing(x)):
        return cands[0]
    from triton.testing import do_bench

    times = {c: do_bench(lambda c=c: run(c), warmup=5, rep=25) for c in cands}
    best = min(times, key=times.get)
    _tuned[key] = best
    return best
