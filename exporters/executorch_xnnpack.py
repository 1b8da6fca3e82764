"""ExecuTorch's XNNPACK delegate taught our two nearest-resize ops (`rewrites/nearest_gate.py`).

Each op gets what the delegate has for its own ATen ops: a partitioner config (which nodes it takes) and a
node visitor (the XNNPACK subgraph nodes it serializes to). The visitors work on the layout the delegate's
channels-last pass chose: for NHWC-tagged tensors (the usual case, between convolutions) the 6-D shapes put
C innermost, so XNNPACK's reshapes are free and its multiply broadcasts whole channel vectors; NCHW-tagged
inputs get the NCHW shapes (correct, slower). Written against executorch 1.5.1 (pinned in pyproject.toml):
`register_node_visitor` and the serialization schema are the delegate's own extension points.
"""

from __future__ import annotations

import functools
from typing import Any

XNN_INVALID_VALUE_ID = 0xFFFFFFFF


@functools.lru_cache(maxsize=1)
def partitioner_configs() -> tuple[type, ...]:
    """The delegate's own configs plus ours (visitors registered as a side effect, once)."""
    from executorch.backends.xnnpack.partition.config import ALL_PARTITIONER_CONFIGS

    ours = _define()
    return tuple(ALL_PARTITIONER_CONFIGS) + ours


def _define() -> tuple[type, ...]:
    """Define and register the configs and visitors (needs executorch, so not at import time)."""
    from executorch.backends.xnnpack._passes.channels_last_tagged_reshape_pass import (
        ChannelsLastTaggedReshapePass as Tagged,
    )
    from executorch.backends.xnnpack.operators.node_visitor import NodeVisitor, register_node_visitor
    from executorch.backends.xnnpack.partition.config.generic_node_configs import GenericNodePartitionerConfig
    from executorch.backends.xnnpack.partition.config.xnnpack_config import ConfigPrecisionType
    from executorch.backends.xnnpack.serialization import xnnpack_graph_schema as xs

    from .rewrites import nearest_gate  # noqa: F401  (defines the ops)

    def nhwc(node: Any) -> bool:
        return bool(node.meta.get(Tagged.XNN_NHWC_NODE, False))

    def value(graph: Any, like: int, dims: list[int]) -> int:
        """A new internal tensor with `like`'s dtype; returns its id."""
        src = graph.xvalues[like].xvalue_union
        dtype = getattr(src, "datatype", None) or src.tensor_value.datatype
        vid = len(graph.xvalues)
        graph.xvalues.append(xs.XValue(xvalue_union=xs.XNNTensorValue(
            datatype=dtype, num_dims=len(dims), dims=list(dims), constant_buffer_idx=0,
            external_id=XNN_INVALID_VALUE_ID, flags=0, id_out=vid)))
        return vid

    def reshape(graph: Any, src: int, dims: list[int], handle: int, out: int | None = None) -> int:
        out = value(graph, src, dims) if out is None else out
        graph.xnodes.append(xs.XNode(xnode_union=xs.XNNStaticReshape(
            num_dims=len(dims), new_shape=list(dims), input_id=src, output_id=out, flags=0), debug_handle=handle))
        return out

    def concat(graph: Any, src: int, copies: int, axis: int, dims: list[int], handle: int) -> int:
        out = value(graph, src, dims)
        kind = {2: xs.XNNConcatenate2, 3: xs.XNNConcatenate3, 4: xs.XNNConcatenate4, 5: xs.XNNConcatenate5}[copies]
        ids = [src] * copies + [XNN_INVALID_VALUE_ID] * (5 - copies)
        graph.xnodes.append(xs.XNode(xnode_union=kind(
            axis=axis, input1_id=ids[0], input2_id=ids[1], input3_id=ids[2], input4_id=ids[3], input5_id=ids[4],
            output_id=out, flags=0), debug_handle=handle))
        return out

    def shape(node: Any) -> list[int]:
        return [int(d) for d in node.meta["val"].shape]

    class NearestGateMulConfig(GenericNodePartitionerConfig):
        """x * nearest_resize(g): fp32 only (the int8 path keeps ATen ops the quantizer annotates)."""

        target_name = "nearest_gate_mul.default"

        def supported_precision_types(self) -> list:
            return [ConfigPrecisionType.FP32]

    class NearestRepeatConfig(GenericNodePartitionerConfig):
        """Integer nearest resize by at most MAX_REPEAT per axis (XNNPACK's concatenate arity)."""

        target_name = "nearest_repeat.default"

        def check_constraints(self, node: Any, ep: Any) -> bool:
            if not self.check_common_constraints(node, ep):
                return False
            return max(int(node.args[1]), int(node.args[2])) <= nearest_gate.MAX_REPEAT

        def supported_precision_types(self) -> list:
            return [ConfigPrecisionType.FP32]

    class NearestGateMulVisitor(NodeVisitor):
        target = "mobiledeploy.nearest_gate_mul.default"

        def define_node(self, node: Any, xnn_graph: Any, vals_to_ids: dict, debug_handle: int) -> None:
            self.define_nodes_tensor_inputs_outputs(node, xnn_graph, vals_to_ids)
            x, g = node.args
            n, c, hh, ww = shape(x)
            h, w = shape(g)[2:]
            qh, qw = hh // h, ww // w
            # The channels-last pass gives a node and its inputs one layout (it converts mixed inputs).
            if nhwc(node):
                xd, gd, out = [n, h, qh, w, qw, c], [n, h, 1, w, 1, c], [n, hh, ww, c]
            else:
                xd, gd, out = [n, c, h, qh, w, qw], [n, c, h, 1, w, 1], [n, c, hh, ww]
            x6 = reshape(xnn_graph, vals_to_ids[x], xd, debug_handle)
            g6 = reshape(xnn_graph, vals_to_ids[g], gd, debug_handle)
            p6 = value(xnn_graph, x6, xd)
            xnn_graph.xnodes.append(xs.XNode(xnode_union=xs.XNNMultiply(
                input1_id=x6, input2_id=g6, output_id=p6, flags=0), debug_handle=debug_handle))
            reshape(xnn_graph, p6, out, debug_handle, out=vals_to_ids[node])

    class NearestRepeatVisitor(NodeVisitor):
        target = "mobiledeploy.nearest_repeat.default"

        def define_node(self, node: Any, xnn_graph: Any, vals_to_ids: dict, debug_handle: int) -> None:
            self.define_nodes_tensor_inputs_outputs(node, xnn_graph, vals_to_ids)
            g, qh, qw = node.args
            n, c, h, w = shape(g)
            src = vals_to_ids[g]
            # Repeating along an axis = concatenating copies on a new axis after it, then merging the two.
            if nhwc(node):  # physical (n, h, w, c)
                steps = [([n, h, w, 1, c], 3, qw, [n, h, 1, w * qw, c]), (None, 2, qh, [n, h * qh, w * qw, c])]
            else:  # physical (n, c, h, w)
                steps = [([n, c, h, w, 1], 4, qw, [n, c, h, 1, w * qw]), (None, 3, qh, [n, c, h * qh, w * qw])]
            cur = src
            for i, (pre, axis, q, merged) in enumerate(steps):
                if pre is not None:
                    cur = reshape(xnn_graph, cur, pre, debug_handle)
                if q > 1:
                    grown = list(xnn_graph.xvalues[cur].xvalue_union.dims)
                    grown[axis] *= q
                    cur = concat(xnn_graph, cur, q, axis, grown, debug_handle)
                last = i == len(steps) - 1
                cur = reshape(xnn_graph, cur, merged, debug_handle, out=vals_to_ids[node] if last else None)

    register_node_visitor(NearestGateMulVisitor)
    register_node_visitor(NearestRepeatVisitor)
    return (NearestGateMulConfig, NearestRepeatConfig)
