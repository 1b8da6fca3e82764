"""GR-KAN PyTorch reference: formula, gradients, dtypes, errors, export graph, init coefficients."""

from __future__ import annotations

import math

import pytest
import torch

from mobiledeploy.errors import UserError
from mobiledeploy.models.grkan import GRKAN, INITS, fit_rational, grkan_reference, init_coefficients
from mobiledeploy.models.grkan.init import GELU_FIT_RANGE, gelu_exact, rational

from _grkan_util import coefficients, rel_l2  # noqa: E402  (tests/ is on sys.path under pytest)


def closed_form(x, a, b, dy):
    """y and the gradients written out from the formula (float64, explicit powers, loop over groups)."""
    x, a, b, dy = (t.double() for t in (x, a.reshape(6), b, dy))
    G = b.shape[0]
    xs = x.unflatten(-1, (G, -1))
    gs = dy.unflatten(-1, (G, -1))
    ax = xs.abs()
    p = sum(a[i] * xs**i for i in range(6))
    dp = sum(i * a[i] * xs ** (i - 1) for i in range(1, 6))
    bb = [b[:, j].abs()[:, None] for j in range(4)]
    q = 1 + sum(bb[j] * ax ** (j + 1) for j in range(4))
    s = torch.sign(xs) * sum((j + 1) * bb[j] * ax**j for j in range(4))
    y = p / q
    dx = gs * (dp / q - s * p / q**2)
    da = torch.stack([(gs * xs**i / q).sum() for i in range(6)]).reshape(1, 6)
    red = tuple(range(xs.dim() - 2)) + (xs.dim() - 1,)  # everything but the group axis
    db = torch.stack([(gs * (-p / q**2) * ax ** (j + 1)).sum(red) * torch.sign(b[:, j]) for j in range(4)], 1)
    return y.flatten(-2), dx.flatten(-2), da, db


@pytest.mark.parametrize("shape", [(5, 192), (2, 7, 96), (3, 2, 2, 64), (24,)])
def test_reference_matches_formula_and_gradients(shape):
    torch.manual_seed(1)
    groups = 8
    x = torch.randn(shape, dtype=torch.float64) * 2
    dy = torch.randn(shape, dtype=torch.float64)
    a, b = coefficients(groups)
    a, b = a.double().requires_grad_(), b.double().requires_grad_()
    xr = x.clone().requires_grad_()
    y = grkan_reference(xr, a, b)
    y.backward(dy)
    y_ref, dx_ref, da_ref, db_ref = closed_form(x, a.detach(), b.detach(), dy)
    assert y.shape == x.shape
    assert rel_l2(y, y_ref) < 1e-13
    assert rel_l2(xr.grad, dx_ref) < 1e-12
    assert rel_l2(a.grad, da_ref) < 1e-12
    assert rel_l2(b.grad, db_ref) < 1e-12


def test_reference_fp32_close_to_float64():
    torch.manual_seed(2)
    x = torch.randn(33, 768) * 2
    dy = torch.randn_like(x)
    a, b = coefficients(8, seed=3)
    leaves32 = [t.clone().requires_grad_() for t in (x, a, b)]
    leaves64 = [t.double().requires_grad_() for t in (x, a, b)]
    y32 = grkan_reference(*leaves32)
    y64 = grkan_reference(*leaves64)
    assert y32.dtype == torch.float32 and y64.dtype == torch.float64
    y32.backward(dy)
    y64.backward(dy.double())
    assert rel_l2(y32, y64) < 1e-6
    for t32, t64 in zip(leaves32, leaves64):
        assert rel_l2(t32.grad, t64.grad) < 1e-5


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_input_computes_in_fp32(dtype):
    torch.manual_seed(3)
    x = (torch.randn(4, 10, 64) * 2).to(dtype)
    a, b = coefficients(8)
    y = grkan_reference(x, a, b)
    assert y.dtype == dtype
    # Exactly the fp32 result rounded once: no intermediate rounding to the low precision.
    assert torch.equal(y, grkan_reference(x.float(), a, b).to(dtype))


def test_module_output_dtype_and_leading_dims():
    m = GRKAN(8, "swish")
    for shape in [(64,), (3, 64), (2, 3, 4, 64)]:
        x = torch.randn(shape).to(torch.bfloat16)
        assert m(x).shape == x.shape and m(x).dtype == torch.bfloat16


def test_bad_channel_count_is_a_user_error():
    m = GRKAN(8)
    with pytest.raises(UserError, match="not a multiple of its 8 groups"):
        m(torch.randn(2, 100))
    with pytest.raises(UserError, match="not a multiple"):
        grkan_reference(torch.randn(2, 12), *init_coefficients("swish", 8))


def test_bad_init_and_backend_are_user_errors():
    with pytest.raises(UserError, match="unknown GR-KAN init"):
        GRKAN(8, "relu")
    with pytest.raises(UserError, match="unknown GR-KAN backend"):
        GRKAN(8, backend="cuda")


def test_parameters_have_kat_shapes_and_names():
    m = GRKAN(8, "swish")
    sd = m.state_dict()
    assert sd["weight_numerator"].shape == (1, 6)
    assert sd["weight_denominator"].shape == (8, 4)
    assert torch.equal(sd["weight_denominator"][3], sd["weight_denominator"][0])


def test_cpu_auto_backend_is_the_reference():
    torch.manual_seed(4)
    m = GRKAN(8, "swish")
    assert not m._use_op(torch.zeros(1, 8))
    x = torch.randn(5, 64)
    assert torch.equal(m(x), grkan_reference(x, m.weight_numerator, m.weight_denominator))


def test_identity_init_is_the_identity():
    x = torch.randn(7, 64) * 5
    assert torch.equal(GRKAN(8, "identity")(x), x)


@pytest.mark.parametrize("backend", ["auto", "triton"])
def test_export_traces_plain_elementwise_ops(backend):
    m = GRKAN(8, "swish", backend=backend)
    x = torch.randn(2, 5, 64)
    ep = torch.export.export(m, (x,))
    targets = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert not any("mobiledeploy" in t for t in targets), targets
    assert sum("aten.div" in t for t in targets) == 1
    allowed = ("aten.mul", "aten.add", "aten.abs", "aten.div", "aten.select", "aten.unsqueeze", "aten.reshape",
               "aten.view", "aten.unflatten", "aten.flatten")
    assert all(t.startswith(allowed) for t in targets), targets
    assert torch.equal(ep.module()(x), m(x))


def test_swish_init_matches_silu():
    x = torch.linspace(-3, 3, 2001, dtype=torch.float64)
    a, b = (torch.tensor(v, dtype=torch.float64) for v in INITS["swish"])
    assert (rational(x, a, b) - x * torch.sigmoid(x)).abs().max() < 5e-6


def test_gelu_init_fits_exact_gelu_for_this_denominator():
    lo, hi = GELU_FIT_RANGE
    x = torch.linspace(lo, hi, 6001, dtype=torch.float64)
    a, b = (torch.tensor(v, dtype=torch.float64) for v in INITS["gelu"])
    err = (rational(x, a, b) - gelu_exact(x)).abs().max().item()
    assert err < 3.5e-3
    # The module evaluates the same function in fp32.
    m = GRKAN(8, "gelu")
    assert (m(x.float()[:, None].repeat(1, 8)).double()[:, 0] - gelu_exact(x)).abs().max() < 3.6e-3


def test_gelu_fit_is_reproducible():
    a, b = fit_rational(gelu_exact, *GELU_FIT_RANGE)
    x = torch.linspace(*GELU_FIT_RANGE, 6001, dtype=torch.float64)
    assert (rational(x, a, b) - gelu_exact(x)).abs().max() < 3.5e-3
    stored = torch.tensor(INITS["gelu"][0], dtype=torch.float64)
    assert torch.allclose(a, stored, rtol=1e-5, atol=1e-7)
    assert math.isclose(b[1].item(), INITS["gelu"][1][1], rel_tol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_explicit_backward_matches_autograd(dtype):
    from mobiledeploy.models.grkan.reference import grkan_reference_backward

    g = torch.Generator().manual_seed(3)
    x = (torch.randn(2, 9, 96, generator=g) * 2).to(dtype)
    dy = torch.randn(2, 9, 96, generator=g).to(dtype)
    a, b = init_coefficients("swish", 8)
    b = b + 0.05 * torch.randn(b.shape, generator=g)
    b[:, 2] = 0  # sign(0) = 0, as autograd of abs
    leaves = [t.detach().double().requires_grad_() for t in (x, a, b)]
    grkan_reference(*leaves).backward(dy.double())
    got = grkan_reference_backward(dy, x, a, b)
    assert [t.dtype for t in got] == [dtype, torch.float32, torch.float32]
    for t, leaf in zip(got, leaves):
        assert ((t.double() - leaf.grad).norm() / leaf.grad.norm()).item() <= 1e-6


def test_op_fallback_without_triton_trains(monkeypatch):
    # The custom op's non-Triton path (CPU without TRITON_INTERPRET, or no triton installed).
    from mobiledeploy.models.grkan import op

    monkeypatch.setattr(op, "_use_triton", lambda x: False)
    torch.manual_seed(0)
    x = torch.randn(3, 5, 64)
    m = GRKAN(8, "swish", backend="triton")
    with torch.no_grad():
        m.weight_denominator.add_(0.05 * torch.randn(8, 4))
    ref = GRKAN(8, "swish", backend="reference")
    ref.load_state_dict(m.state_dict())
    for f in (lambda t: m(t), lambda t: op.grkan_fwd(t, m.weight_numerator, m.weight_denominator, True)):
        xs = x.clone().requires_grad_()
        m.zero_grad()
        f(xs).square().sum().backward()
        xr = x.clone().requires_grad_()
        ref.zero_grad()
        ref(xr).square().sum().backward()
        assert torch.allclose(xs.grad, xr.grad, rtol=1e-5, atol=1e-6)
        for p, q in zip(m.parameters(), ref.parameters()):
            assert torch.allclose(p.grad, q.grad, rtol=1e-5, atol=1e-6)
