"""Was a torch.export program captured in training mode? Batch norm on batch statistics and live dropout say so.

A program exported without `.eval()` keeps `batch_norm(..., training=True)` and `dropout(..., train=True)`:
its outputs depend on the batch and on random numbers, so no artifact can match it and the parity check
fails with nothing to explain why. The graph itself tells: the flag is an argument of those ops.
"""

from __future__ import annotations

import torch

from mobiledeploy.errors import UserError

# Ops whose `training` / `train` argument means "use batch statistics" or "drop at random".
_KINDS = (("batch_norm", "batch norm on batch statistics"), ("dropout", "active dropout"))
# The training-only batch-norm variants carry no flag: they exist only in graphs exported in training mode.
_TRAINING_ONLY = ("_native_batch_norm_legit.default", "_native_batch_norm_legit.no_stats",
                  "_native_batch_norm_legit_functional.default")


def training_ops(program: torch.export.ExportedProgram) -> list[tuple[torch.fx.Node, str]]:
    """(node, what) for every node that computes differently in training mode."""
    found = []
    for node in program.graph_module.graph.nodes:
        if node.op != "call_function" or not hasattr(node.target, "_schema"):
            continue
        name = node.target.name().split("::")[-1]
        kind = next((what for key, what in _KINDS if key in name), None)
        if kind is None:
            continue
        if name in _TRAINING_ONLY or _flag(node) is True:
            found.append((node, kind))
    return found


def _flag(node: torch.fx.Node) -> bool | None:
    """The value of the op's `training`/`train` argument (positional or keyword), None when it has none."""
    for i, arg in enumerate(node.target._schema.arguments):
        if arg.name in ("training", "train"):
            if arg.name in node.kwargs:
                return node.kwargs[arg.name]
            return node.args[i] if i < len(node.args) else arg.default_value
    return None


def require_eval_mode(program: torch.export.ExportedProgram, name: str) -> None:
    """Refuse, in one line, a program exported in training mode (its outputs are random or batch-dependent)."""
    found = training_ops(program)
    if found:
        kinds = sorted({what for _, what in found})
        raise UserError(f"{name} was exported in training mode ({' and '.join(kinds)}, {len(found)} op(s))",
                        "export it after .eval(): torch.export.export(model.eval(), ...)")


def mark_eval(module: torch.nn.Module) -> torch.nn.Module:
    """Set an exported program's module to eval mode (its `.eval()` raises for exported modules).

    Only the flag changes: the graph is fixed. Converters read it (litert-torch warns "converted in
    training mode" for every program module, whose flag defaults to True, eval-mode ones included).
    """
    for m in module.modules():
        m.training = False
    return module
