"""Per-op checks of the Core ML interpreter: tiny torch modules → coremltools → interpreter vs torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

pytest.importorskip("coremltools")

from _coreml_util import convert, op_types, rel_l2  # noqa: E402

from mobiledeploy.exporters.mlinterp import predict  # noqa: E402


class Fn(nn.Module):
    """A module around a function of one input (weights, if any, as submodules)."""

    def __init__(self, fn, **mods):
        super().__init__()
        self.fn = fn
        for k, v in mods.items():
            setattr(self, k, v)

    def forward(self, x):
        return self.fn(self, x)


def _conv(**kw):
    return Fn(lambda m, x: m.c(x), c=nn.Conv2d(kw.pop("cin", 4), kw.pop("cout", 6), **kw))


# (id, module, input shape, MIL ops that must appear in the converted program)
CASES = [
    ("conv_plain", _conv(kernel_size=3), (1, 4, 9, 9), {"conv"}),
    ("conv_groups_stride_pad", _conv(kernel_size=3, stride=2, padding=1, groups=2), (1, 4, 11, 9), {"conv"}),
    ("conv_depthwise_dilation", _conv(cin=4, cout=8, kernel_size=3, padding=2, dilation=2, groups=4), (1, 4, 10, 10), {"conv"}),
    ("conv_rect_kernel", _conv(kernel_size=(1, 5), padding=(0, 2), bias=False), (1, 4, 7, 7), {"conv"}),
    ("conv1d", Fn(lambda m, x: m.c(x), c=nn.Conv1d(4, 5, 3, stride=2, padding=1)), (1, 4, 13), {"conv"}),
    ("linear", Fn(lambda m, x: m.l(x), l=nn.Linear(12, 7)), (2, 12), {"linear"}),
    ("matmul", Fn(lambda m, x: x @ x.transpose(-1, -2) / 4), (2, 3, 5, 4), {"matmul"}),
    ("arith", Fn(lambda m, x: (x + 1.5) * x - x / 3 - torch.maximum(x, 0.1 * x) + torch.minimum(x, -x)), (1, 3, 5, 5),
     {"add", "mul", "sub"}),
    ("pow_sqrt_exp_log", Fn(lambda m, x: torch.sqrt(x.abs() + 1) + torch.exp(-x * x) + torch.log(x.abs() + 2) + x ** 3),
     (1, 2, 6, 6), {"sqrt", "exp", "log", "abs"}),
    ("relu_clip", Fn(lambda m, x: F.relu(x) + F.relu6(3 * x) + x.clamp(-0.5, 0.25)), (1, 3, 6, 6), {"relu", "clip"}),
    ("sigmoid_hardsigmoid", Fn(lambda m, x: torch.sigmoid(x) + F.hardsigmoid(2 * x)), (1, 3, 6, 6),
     {"sigmoid", "sigmoid_hard"}),
    ("gelu_exact", Fn(lambda m, x: F.gelu(2 * x)), (2, 5, 8), {"gelu"}),
    ("gelu_tanh", Fn(lambda m, x: F.gelu(2 * x, approximate="tanh")), (2, 5, 8), {"gelu"}),
    ("silu_tanh_erf", Fn(lambda m, x: F.silu(x) + torch.tanh(x) + torch.erf(x)), (2, 5, 8), {"silu", "tanh", "erf"}),
    ("leaky_elu", Fn(lambda m, x: F.leaky_relu(x, 0.2) + F.elu(x)), (1, 3, 5, 5), {"leaky_relu", "elu"}),
    ("softmax", Fn(lambda m, x: torch.softmax(3 * x, dim=1)), (2, 7, 3), {"softmax"}),
    ("avg_pool_pad", Fn(lambda m, x: F.avg_pool2d(x, 3, 2, 1)), (1, 3, 9, 8), {"avg_pool"}),
    ("avg_pool_nopadcount_ceil", Fn(lambda m, x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False)),
     (1, 3, 10, 9), {"avg_pool"}),
    ("avg_pool_2x2_floor", Fn(lambda m, x: F.avg_pool2d(x, 2, 2)), (1, 3, 7, 7), {"avg_pool"}),
    ("max_pool", Fn(lambda m, x: F.max_pool2d(x, 3, 2, 1)), (1, 3, 9, 10), {"max_pool"}),
    ("max_pool_ceil", Fn(lambda m, x: F.max_pool2d(x, 2, 2, ceil_mode=True)), (1, 3, 7, 9), {"max_pool"}),
    ("global_avg", Fn(lambda m, x: F.adaptive_avg_pool2d(x, 1).flatten(1)), (1, 5, 7, 6), set()),
    ("reductions", Fn(lambda m, x: torch.cat([x.mean((2, 3)), x.sum(-1).amax(-1), x.amin((1, 3)), x.sum(1).mean(1)], 1)),
     (1, 4, 5, 4), {"reduce_mean", "reduce_sum", "reduce_max", "reduce_min"}),
    ("concat_split_slice", Fn(lambda m, x: torch.cat([*torch.split(x, [1, 3], 1)[::-1], x[:, 1:4:2]], 1)[..., 2:]),
     (1, 4, 5, 6), {"concat"}),
    ("chunk_narrow", Fn(lambda m, x: x.chunk(2, dim=-1)[1][:, :, 1:4] * x.narrow(2, 1, 3)[..., :3]), (1, 2, 5, 6), set()),
    ("reshape_transpose", Fn(lambda m, x: x.reshape(2, 3, -1).permute(0, 2, 1).flatten(1).unsqueeze(0)),
     (1, 6, 2, 4), {"reshape", "transpose"}),
    ("pad_modes", Fn(lambda m, x: F.pad(x, (1, 2, 0, 1)) + F.pad(x, (1, 2, 0, 1), mode="reflect")
                     + F.pad(x, (1, 2, 0, 1), mode="replicate")), (1, 2, 5, 6), {"pad"}),
    ("upsample_int", Fn(lambda m, x: F.interpolate(x, scale_factor=2, mode="nearest")), (1, 3, 4, 5),
     {"upsample_nearest_neighbor"}),
    ("upsample_size_3x", Fn(lambda m, x: F.interpolate(x, size=(9, 12), mode="nearest")), (1, 3, 3, 4),
     {"upsample_nearest_neighbor"}),
    ("layer_norm", Fn(lambda m, x: m.ln(x), ln=nn.LayerNorm(8)), (2, 5, 8), {"layer_norm"}),
    ("abs_neg", Fn(lambda m, x: x.abs() - (-x)), (1, 3, 4), {"abs"}),
    ("cast_int", Fn(lambda m, x: (x * 3).to(torch.int32).to(torch.float32) + x), (1, 3, 4, 4), {"cast"}),
    ("const_tensor", Fn(lambda m, x: x * m.w + m.b, w=nn.Parameter(torch.randn(1, 3, 1, 1)),
                        b=nn.Parameter(torch.randn(3, 4, 4))), (1, 3, 4, 4), {"mul", "add"}),
    ("batchnorm", Fn(lambda m, x: m.bn(x) * 2, bn=nn.BatchNorm2d(3)), (1, 3, 4, 4), set()),
    ("squeeze_expand", Fn(lambda m, x: x.squeeze(0).unsqueeze(1).sum(0)), (1, 3, 4, 4), set()),
]


@pytest.mark.parametrize("name,module,shape,ops", CASES, ids=[c[0] for c in CASES])
def test_op_matches_torch(tmp_path, name, module, shape, ops):
    if name == "batchnorm":
        with torch.no_grad():
            module.bn.running_mean.uniform_(-1, 1)
            module.bn.running_var.uniform_(0.5, 2)
            module.bn.weight.uniform_(0.5, 2)
            module.bn.bias.uniform_(-1, 1)
    x = torch.randn(shape)
    res = convert(module, x, tmp_path / f"{name}.mlpackage", tensor_input=True)
    present = op_types(res.artifact)
    assert ops <= present, f"the program lacks {ops - present}: it has {sorted(present)}"
    got = predict(res.artifact, {"input": x.numpy()})["output"]
    with torch.no_grad():
        ref = module.eval()(x).numpy()
    assert got.shape == ref.shape and got.dtype == np.float32
    assert rel_l2(got, ref) <= 1e-6, f"rel L2 {rel_l2(got, ref):.3g}"
