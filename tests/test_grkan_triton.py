"""GR-KAN Triton kernels and custom op vs float64: interpreter on the CPU (CI), real kernels on CUDA.

CI runs with TRITON_INTERPRET=1; without a GPU this file sets it before the kernels are imported.
"""

from __future__ import annotations

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

triton = pytest.importorskip("triton")

from mobiledeploy.models.grkan import GRKAN, grkan, grkan_bwd, grkan_fwd, grkan_reference  # noqa: E402
from mobiledeploy.models.grkan import kernels  # noqa: E402
from mobiledeploy.models.grkan.grouped_kernels import GroupedConfig  # noqa: E402
from mobiledeploy.models.grkan.persistent_kernels import PersistentConfig  # noqa: E402

from _grkan_util import coefficients, rel_l2  # noqa: E402  (tests/ is on sys.path under pytest)

INTERP = kernels.INTERPRETED
DEVICE = "cpu" if INTERP else "cuda"
if not INTERP and not torch.cuda.is_available():
    pytest.skip("kernels were imported compiled (TRITON_INTERPRET unset) and there is no GPU",
                allow_module_level=True)

# (leading shape, channels): group sizes 24, 96, 192, 384; row counts prime, so no block size divides them.
SHAPES = [((37,), 192), ((29,), 768), ((19,), 1536), ((13,), 3072), ((2, 7), 192)]
VERSIONS = pytest.mark.parametrize("version", kernels.GENERATIONS)


def make(lead, C, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(*lead, C, generator=g) * 2).to(dtype)
    dy = torch.randn(*lead, C, generator=g).to(dtype)
    a, b = coefficients(8, seed)
    return [t.to(DEVICE) for t in (x, dy, a, b)]


def float64_reference(x, dy, a, b):
    leaves = [t.detach().cpu().double().requires_grad_() for t in (x, a, b)]
    y = grkan_reference(*leaves)
    y.backward(dy.cpu().double())
    return y, leaves[0].grad, leaves[1].grad, leaves[2].grad


@VERSIONS
@pytest.mark.parametrize("lead,C", SHAPES + [((197,), 192), ((1021,), 192)])
def test_kernels_match_float64(lead, C, version):
    x, dy, a, b = make(lead, C)
    y = kernels.forward(x, a, b, version=version)
    dx, da, db = kernels.backward(dy, x, a, b, version=version)
    y64, dx64, da64, db64 = float64_reference(x, dy, a, b)
    assert y.shape == x.shape and dx.shape == x.shape and da.shape == (1, 6) and db.shape == (8, 4)
    for got, want in ((y, y64), (dx, dx64), (da, da64), (db, db64)):
        assert rel_l2(got.cpu(), want) <= 1e-6


@VERSIONS
def test_many_programs_and_loop_iterations(version):
    # Tiny tiles: many row programs, a partly masked last program, two loop iterations each
    # (persistent: 2-row tiles, one tile per forward program, one backward program per SM with 19 row blocks).
    with kernels.configured(grouped_forward=GroupedConfig(4, 4), grouped_backward=GroupedConfig(2, 4, 2),
                            persistent_forward=PersistentConfig(128, 4, 0),
                            persistent_backward=PersistentConfig(128, 4, 1)):
        x, dy, a, b = make((37,), 192, seed=5)
        y = kernels.forward(x, a, b, version=version)
        dx, da, db = kernels.backward(dy, x, a, b, version=version)
    y64, dx64, da64, db64 = float64_reference(x, dy, a, b)
    for got, want in ((y, y64), (dx, dx64), (da, da64), (db, db64)):
        assert rel_l2(got.cpu(), want) <= 1e-6


def test_persistent_backward_long_chain_is_compensated():
    # One row program walks all 1024 row blocks (4096 rows, 4-row tiles) in 512 steps of INNER=2 blocks:
    # a 512-step chain per column sum. With persistent_kernels.COMPENSATE = False the interpreter gives db
    # 1.45e-6 > 1e-6 (checked by hand); the Neumaier sums keep it at 4.5e-7 (the fp32 terms' own floor
    # ~1e-7..7e-7).
    with kernels.configured(persistent_backward=PersistentConfig(256, 4, 1, programs=1, inner=2)):
        x, dy, a, b = make((4096,), 64, seed=11)
        dx, da, db = kernels.backward(dy, x, a, b, version="persistent")
    _, dx64, da64, db64 = float64_reference(x, dy, a, b)
    for got, want in ((dx, dx64), (da, da64), (db, db64)):
        assert rel_l2(got.cpu(), want) <= 1e-6


@VERSIONS
def test_deterministic_and_atomic_modes(version):
    x, dy, a, b = make((29,), 768, seed=1)
    r1 = kernels.backward(dy, x, a, b, deterministic=True, version=version)
    r2 = kernels.backward(dy, x, a, b, deterministic=True, version=version)
    for t1, t2 in zip(r1, r2):
        assert torch.equal(t1, t2)  # bitwise: fixed reduction order
    dxa, daa, dba = kernels.backward(dy, x, a, b, deterministic=False, version=version)
    assert torch.equal(dxa, r1[0])
    _, _, da64, db64 = float64_reference(x, dy, a, b)
    assert rel_l2(daa.cpu(), da64) <= 1e-6 and rel_l2(dba.cpu(), db64) <= 1e-6


@VERSIONS
def test_zero_denominator_coefficient_gets_zero_gradient(version):
    # d|b|/db = sign(b) = 0 at b = 0, as the published kernels and autograd of abs have it.
    x, dy, a, b = make((13,), 64, seed=2)
    b = b.clone()
    b[:, 2] = 0
    _, _, db = kernels.backward(dy, x, a, b, version=version)
    assert torch.all(db[:, 2] == 0) and torch.all(db[:, 1] != 0)


@VERSIONS
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_io(dtype, version):
    x, dy, a, b = make((11,), 768, seed=3, dtype=dtype)
    y = kernels.forward(x, a, b, version=version)
    assert y.dtype == dtype
    want = grkan_reference(x.float(), a, b)  # fp32 math, then one rounding
    assert rel_l2(y.float(), want) <= 2 ** -8
    dx, da, db = kernels.backward(dy, x, a, b, version=version)
    assert dx.dtype == dtype and da.dtype == torch.float32 and db.dtype == torch.float32
    _, dx64, da64, db64 = float64_reference(x, dy, a, b)  # from the same rounded inputs
    assert rel_l2(dx.float().cpu(), dx64) <= 2 ** -8
    assert rel_l2(da.cpu(), da64) <= 1e-6 and rel_l2(db.cpu(), db64) <= 1e-6


def test_custom_op_autograd_matches_reference():
    x, dy, a, b = make((2, 5), 192, seed=4)
    leaves = [t.clone().requires_grad_() for t in (x, a, b)]
    y = grkan(*leaves)
    y.backward(dy)
    y64, dx64, da64, db64 = float64_reference(x, dy, a, b)
    for got, want in ((y, y64), (leaves[0].grad, dx64), (leaves[1].grad, da64), (leaves[2].grad, db64)):
        assert rel_l2(got.detach().cpu(), want) <= 1e-6


def test_opcheck():
    x, dy, a, b = make((3,), 64, seed=6)
    torch.library.opcheck(grkan_fwd, (x, a.requires_grad_(), b.requires_grad_(), True))
    torch.library.opcheck(grkan_bwd, (dy, x, a.detach(), b.detach(), True))


def test_compile_fullgraph_has_no_graph_break():
    torch._dynamo.reset()

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(64, 64)
            self.act = GRKAN(8, "swish", backend="triton")

        def forward(self, x):
            return self.act(self.fc(x)).sum()

    torch.manual_seed(0)
    net = Net().to(DEVICE)
    x = torch.randn(3, 5, 64, device=DEVICE)
    compiled = torch.compile(net, fullgraph=True, backend="aot_eager")  # raises on any graph break
    loss = compiled(x)
    loss.backward()
    got = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    ref = Net().to(DEVICE)
    ref.load_state_dict(net.state_dict())
    ref.act.backend = "reference"
    ref(x).backward()
    for g, p in zip(got, ref.parameters()):
        assert rel_l2(g.cpu(), p.grad.cpu()) <= 1e-5


def test_custom_op_path_autograd_matches_float64():
    # grkan() takes the autograd.Function in eager mode; the registered custom-op autograd is what
    # torch.compile uses, so check it on its own too.
    x, dy, a, b = make((3, 5), 192, seed=7)
    leaves = [t.clone().requires_grad_() for t in (x, a, b)]
    y = grkan_fwd(*leaves, True)
    y.backward(dy)
    y64, dx64, da64, db64 = float64_reference(x, dy, a, b)
    for got, want in ((y, y64), (leaves[0].grad, dx64), (leaves[1].grad, da64), (leaves[2].grad, db64)):
        assert rel_l2(got.detach().cpu(), want) <= 1e-6


@pytest.mark.parametrize("lead,C,groups", [((5, 3), 120, 3), ((9,), 1040, 8), ((11,), 24, 8)])
def test_persistent_column_tiles_not_dividing_channels(lead, C, groups):
    # Channel counts without a power-of-two divisor ≥ 32: the persistent generation's column tiles are masked at the row end
    # (whole rows when C ≤ 1024, 512-wide tiles past that) and straddle group boundaries.
    g = torch.Generator().manual_seed(8)
    x = (torch.randn(*lead, C, generator=g) * 2).to(DEVICE)
    dy = torch.randn(*lead, C, generator=g).to(DEVICE)
    a, b = (t.to(DEVICE) for t in coefficients(groups, 8))
    y = kernels.forward(x, a, b, version="persistent")
    dx, da, db = kernels.backward(dy, x, a, b, version="persistent")
    y64, dx64, da64, db64 = float64_reference(x, dy, a, b)
    for got, want in ((y, y64), (dx, dx64), (da, da64), (db, db64)):
        assert rel_l2(got.cpu(), want) <= 1e-6


def test_kernel_version_from_env(monkeypatch):
    # The autograd path picks the kernels from $MOBILEDEPLOY_GRKAN_KERNEL (read once; read_environment()
    # re-reads it); an unknown value is a UserError.
    from mobiledeploy.errors import UserError

    x, dy, a, b = make((2, 5), 192, seed=9)
    y64, dx64, da64, db64 = float64_reference(x, dy, a, b)
    try:
        monkeypatch.setenv(kernels.KERNEL_ENV, "persistent")
        kernels.read_environment()
        assert kernels.generation("forward") == kernels.generation("backward") == "persistent"
        leaves = [t.clone().requires_grad_() for t in (x, a, b)]
        y = grkan(*leaves)
        y.backward(dy)
        for got, want in ((y, y64), (leaves[0].grad, dx64), (leaves[1].grad, da64), (leaves[2].grad, db64)):
            assert rel_l2(got.detach().cpu(), want) <= 1e-6
        monkeypatch.setenv(kernels.KERNEL_ENV, "v3")
        with pytest.raises(UserError):
            kernels.read_environment()
    finally:
        monkeypatch.delenv(kernels.KERNEL_ENV)
        kernels.read_environment()


@pytest.mark.parametrize("version", kernels.GENERATIONS)
def test_bf16_output_is_the_fp32_output_rounded_once(version):
    # act1 under autocast: fp32 in, bf16 out (what fc1 would cast to), the gradient comes back in bf16.
    x, dy, a, b = make((29,), 768, seed=12)
    y32 = kernels.forward(x, a, b, version=version)
    y16 = kernels.forward(x, a, b, version=version, out_dtype=torch.bfloat16)
    assert y16.dtype == torch.bfloat16
    nearest = y32.to(torch.bfloat16)  # round to nearest even: what torch's cast and compiled Triton do
    if INTERP:  # the interpreter's fp32 → bf16 conversion drops the low 16 bits (rounds toward zero)
        toward_zero = (y32.view(torch.int32) & ~0xFFFF).view(torch.float32).to(torch.bfloat16)
        assert torch.equal(y16, toward_zero) and not torch.equal(toward_zero, nearest)
    else:
        assert torch.equal(y16, nearest)
    dy16 = dy.to(torch.bfloat16)
    got = kernels.backward(dy16, x, a, b, version=version)
    want = kernels.backward(dy16.float(), x, a, b, version=version)  # bf16 → fp32 is exact
    assert got[0].dtype == torch.float32
    for g, w in zip(got, want):
        assert torch.equal(g, w)


def test_module_under_autocast_writes_bf16_and_trains():
    torch.manual_seed(0)
    m = GRKAN(8, "swish", backend="triton").to(DEVICE)
    with torch.no_grad():
        m.weight_denominator.add_(0.05 * torch.randn(8, 4, device=DEVICE))
    x, dy, _, _ = make((3, 5), 192, seed=13)
    xs = x.clone().requires_grad_()
    with torch.autocast(DEVICE, dtype=torch.bfloat16):
        y = m(xs)
        y2 = GRKAN(8, "swish", backend="triton", autocast_output=False).to(DEVICE)(x)
    assert y.dtype == torch.bfloat16 and y2.dtype == torch.float32
    assert m(x).dtype == torch.float32  # no autocast: x's dtype
    dy16 = dy.to(torch.bfloat16)
    y.backward(dy16)
    assert xs.grad.dtype == torch.float32
    a, b = m.weight_numerator.detach(), m.weight_denominator.detach()
    y64, dx64, da64, db64 = float64_reference(x, dy16.float(), a, b)
    assert rel_l2(y.float().cpu(), y64) <= 2 ** -8
    for got, want in ((xs.grad, dx64), (m.weight_numerator.grad, da64), (m.weight_denominator.grad, db64)):
        assert rel_l2(got.cpu(), want) <= 1e-6


def test_a_planned_call_reads_no_environment_and_follows_configuration_changes(monkeypatch):
    # The lean call path: after the first call of a shape, forward+backward read no environment variable
    # (the earlier path read ~6 per call); a configuration change (or clear_plans) retires the module's plan.
    import collections.abc

    m = GRKAN(8, "swish", backend="triton").to(DEVICE)
    x, dy, _, _ = make((2, 7), 192, seed=14)
    xs = x.clone().requires_grad_()
    m(xs).backward(dy)
    first = m._eager[3]
    want = xs.grad.clone()

    class Watched(collections.abc.Mapping):
        reads = 0

        def __getitem__(self, k):
            Watched.reads += 1
            return saved[k]

        def __iter__(self):
            return iter(saved)

        def __len__(self):
            return len(saved)

        def get(self, k, default=None):
            Watched.reads += 1
            return saved.get(k, default)

    saved = os.environ
    monkeypatch.setattr(os, "environ", Watched())
    xs.grad = None
    m(xs).backward(dy)
    monkeypatch.undo()
    assert Watched.reads == 0 and m._eager[3] is first and torch.equal(xs.grad, want)
    with kernels.configured(grouped_backward=GroupedConfig(2, 4, 2)):
        xs.grad = None
        m(xs).backward(dy)
        assert m._eager[3] is not first and not first.valid
    _, dx64, _, _ = float64_reference(x, dy, m.weight_numerator.detach(), m.weight_denominator.detach())
    assert rel_l2(xs.grad.cpu(), dx64) <= 1e-6
    import pickle

    copy = pickle.loads(pickle.dumps(m))  # whole-module pickling: the cached plan is not part of the state
    assert copy._eager is None and torch.equal(copy(x), m(x))


def test_set_generation_reaches_the_eager_path():
    x, dy, a, b = make((3, 5), 192, seed=15)
    try:
        kernels.set_generation("v1")  # the name earlier results use
        assert kernels.call_plan(x, b, None, True).generations == ("grouped", "grouped")
        leaves = [t.clone().requires_grad_() for t in (x, a, b)]
        grkan(*leaves).backward(dy)
    finally:
        kernels.set_generation(None)
    assert kernels.call_plan(x, b, None, True).generations == ("persistent", "grouped")
    _, dx64, da64, db64 = float64_reference(x, dy, a, b)
    for got, want in ((leaves[0].grad, dx64), (leaves[1].grad, da64), (leaves[2].grad, db64)):
        assert rel_l2(got.cpu(), want) <= 1e-6


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU (gpu_quick.sh runs this file on one)")
def test_cuda_graphed_forward_and_backward_match_eager():
    # torch.cuda.make_graphed_callables warms up on a side stream (plans built and tuned there), then
    # captures forward and backward; a replay with new input values must give the eager results.
    torch.manual_seed(0)
    m = GRKAN(8, "swish", backend="triton").cuda()
    x = torch.randn(64, 192, device="cuda", requires_grad=True)
    graphed = torch.cuda.make_graphed_callables(m, (x,))
    x2, dy = torch.randn(64, 192, device="cuda"), torch.randn(64, 192, device="cuda")
    m.zero_grad(set_to_none=True)
    xs = x2.clone().requires_grad_()
    y = graphed(xs)
    y.backward(dy)
    got = [y.detach().clone(), xs.grad.clone()] + [p.grad.clone() for p in m.parameters()]
    m.zero_grad(set_to_none=True)
    xe = x2.clone().requires_grad_()
    ye = m(xe)
    ye.backward(dy)
    want = [ye.detach(), xe.grad] + [p.grad for p in m.parameters()]
    for g, w in zip(got, want):
        assert torch.equal(g, w)
