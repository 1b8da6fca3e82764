"""Small helpers for editing an ExportedProgram's FX graph in place with valid metadata."""

from __future__ import annotations

from typing import Any, Callable, Iterator

import torch
import torch.fx as fx

# Metadata carried from a replaced node to its replacements, so errors and profiles still point
# at the user's source line.
_KEEP_META = ("stack_trace", "nn_module_stack", "source_fn_stack", "from_node", "torch_fn")


def call_nodes(program: torch.export.ExportedProgram, targets: tuple[Any, ...]) -> Iterator[fx.Node]:
    """The call_function nodes whose target is one of `targets` (a snapshot, safe to edit while iterating)."""
    return iter([n for n in program.graph_module.graph.nodes if n.op == "call_function" and n.target in targets])


def val(node: Any) -> Any:
    """The example value (a FakeTensor) recorded on a node, or the argument itself for constants."""
    return node.meta.get("val") if isinstance(node, fx.Node) else node


def insert(graph: fx.Graph, before: fx.Node, target: Callable, args: tuple, like: fx.Node,
           kwargs: dict[str, Any] | None = None) -> fx.Node:
    """Insert `target(*args, **kwargs)` before a node, its value computed on fake tensors, with `like`'s source info."""
    with graph.inserting_before(before):
        node = graph.call_function(target, args, kwargs or {})
    for k in _KEEP_META:
        if k in like.meta:
            node.meta[k] = like.meta[k]
    node.meta["val"] = _fake_run(target, args, kwargs or {})
    return node


def replace(graph: fx.Graph, old: fx.Node, new: fx.Node) -> None:
    """Route every user of `old` to `new` and drop `old`."""
    old.replace_all_uses_with(new)
    graph.erase_node(old)


def finished(program: torch.export.ExportedProgram, n: int) -> tuple[torch.export.ExportedProgram, int]:
    """A pass's return value: the program (checked and recompiled when n nodes changed) and n."""
    if n:
        finish(program)
    return program, n


def finish(program: torch.export.ExportedProgram) -> None:
    """Drop dead nodes, check the graph and regenerate its code after edits."""
    gm = program.graph_module
    gm.graph.eliminate_dead_code()
    gm.graph.lint()
    gm.recompile()


def _fake_run(target: Callable, args: tuple, kwargs: dict[str, Any]) -> Any:
    from torch._guards import detect_fake_mode

    flat = []

    def conv(a: Any) -> Any:
        if isinstance(a, fx.Node):
            v = a.meta.get("val")
            flat.append(v)
            return v
        if isinstance(a, (list, tuple)):
            return type(a)(conv(x) for x in a)
        return a

    vals = conv(args)
    if any(v is None for v in flat):
        return None
    mode = detect_fake_mode(flat)
    if mode is None:
        return target(*vals, **kwargs)
    with mode:
        return target(*vals, **kwargs)
