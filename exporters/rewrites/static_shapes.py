"""Static shapes: a program with symbolic input dimensions is specialised to the requested size."""

from __future__ import annotations

import torch

from . import RewriteContext, register_rewrite


def symbolic_dims(program: torch.export.ExportedProgram) -> int:
    """How many input dimensions of the program are symbolic."""
    n = 0
    for node in program.graph_module.graph.nodes:
        if node.op != "placeholder":
            continue
        v = node.meta.get("val")
        if isinstance(v, torch.Tensor):
            n += sum(not isinstance(d, int) for d in v.shape)
    return n


@register_rewrite("static_shapes")
def static_shapes(program: torch.export.ExportedProgram, ctx: RewriteContext) -> tuple[torch.export.ExportedProgram, int]:
    """Every input dimension is a constant (mobile runtimes plan memory once; resizes stay constant)."""
    n = symbolic_dims(program)
    if not n:
        return program, 0
    if not ctx.example_inputs:
        raise ValueError("static_shapes needs example inputs to specialise a dynamic program")
    # Re-tracing the program's module at concrete inputs specialises every shape expression.
    module = program.module()
    out = torch.export.export(module, tuple(ctx.example_inputs), strict=False)
    return out.run_decompositions({}), n
