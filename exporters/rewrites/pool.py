"""Average pooling over non-overlapping windows as a depthwise convolution (onnxruntime's fast path).

onnxruntime runs convolutions in its blocked NCHWc layout but `AveragePool` 2×2/2 in plain NCHW with
layout conversions around it: 14 of them cost GhostNetV2 ~4 % of its latency. A depthwise conv whose
weights are all 1/(k·k) computes the same numbers: with k·k a power of two every product x/(k·k) is
exact, so the result equals the pooled sum scaled by 1/(k·k) up to the order of the additions.
"""

from __future__ import annotations

import torch

from . import RewriteContext, register_rewrite
from ._graph import call_nodes, finished, insert, replace, val

aten = torch.ops.aten


_ARGS = ("self", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override")


def _pair(v: object, default: list[int]) -> list[int]:
    """An int or a 1-/2-list as [a, b]; an empty or missing value as `default`."""
    if v is None or v == [] or v == ():
        return default
    vals = [int(t) for t in v] if isinstance(v, (list, tuple)) else [int(v)]  # type: ignore[arg-type]
    return vals * 2 if len(vals) == 1 else vals


def _window(node: torch.fx.Node) -> int | None:
    """k when the node is a k×k / stride k avg_pool2d without padding, ceil mode or divisor override."""
    a = {**dict(zip(_ARGS, node.args)), **node.kwargs}
    xv = val(a["self"])
    if xv is None or xv.dim() != 4 or not xv.dtype.is_floating_point:
        return None
    kernel = _pair(a.get("kernel_size"), [0, 0])
    stride = _pair(a.get("stride"), kernel)  # an empty stride means stride = kernel
    padding = _pair(a.get("padding"), [0, 0])
    k = kernel[0]
    if kernel != [k, k] or stride != [k, k] or any(padding) or a.get("ceil_mode") or a.get("divisor_override"):
        return None
    return k if k > 1 and (k * k) & (k * k - 1) == 0 else None  # 1/(k·k) exact in binary


@register_rewrite("avgpool_as_depthwise_conv")
def avgpool_as_depthwise_conv(program: torch.export.ExportedProgram, ctx: RewriteContext
                              ) -> tuple[torch.export.ExportedProgram, int]:
    """k×k/k average pools (k·k a power of two) become depthwise convs with weights 1/(k·k): same numbers."""
    graph = program.graph_module.graph
    n = 0
    for node in call_nodes(program, (aten.avg_pool2d.default,)):
        k = _window(node)
        if k is None:
            continue
        x = node.args[0]
        xv = val(x)
        c = int(xv.shape[1])
        # Built in the graph (not a new parameter): the exporters fold it into a constant initializer.
        w = insert(graph, node, aten.full.default, ([c, 1, k, k], 1.0 / (k * k)), node,
                   {"dtype": xv.dtype, "device": xv.device})
        y = insert(graph, node, aten.conv2d.default, (x, w, None, [k, k], [0, 0], [1, 1], c), node)
        replace(graph, node, y)
        n += 1
    return finished(program, n)
