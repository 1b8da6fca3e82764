"""Turn a converter's failure into one line naming the op and the source line that produced it."""

from __future__ import annotations

import re

import torch

from mobiledeploy.errors import UserError

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_OP = re.compile(r"aten(?:::|\.|_)([A-Za-z0-9_]+)")
# Converters that name the op without its namespace (coremltools: "Unsupported fx node linalg_svd").
_BARE_OP = re.compile(r"(?:fx node|op(?:eration)?|node)\s+['\"`]?([a-z][A-Za-z0-9_]+)")


def source_line(node: torch.fx.Node) -> str | None:
    """'file:line: code' of the innermost user frame recorded on a node, if any."""
    trace = node.meta.get("stack_trace") or ""
    frames = re.findall(r'File "([^"]+)", line (\d+), in \S+\n\s*(.*)', trace)
    if not frames:
        return None
    f, line, code = frames[-1]
    return f"{f}:{line}: {code.strip()}"


def find_op(program: torch.export.ExportedProgram, message: str) -> torch.fx.Node | None:
    """The first graph node whose op the converter's message names."""
    # Decompositions rename an op's private variant (aten.linalg_svd → aten._linalg_svd): compare without
    # leading underscores, so the op the user wrote is found under either name.
    names = {n.lstrip("_") for n in (*_OP.findall(message), *_BARE_OP.findall(message))}
    if not names:
        return None
    for node in program.graph_module.graph.nodes:
        if node.op != "call_function" or not hasattr(node.target, "name"):
            continue
        base = node.target.name().split("::")[-1].split(".")[0]
        if base.lstrip("_") in names:
            return node
    return None


def _decomposed_from(program: torch.export.ExportedProgram, message: str) -> tuple[str, str | None] | None:
    """(the user's op, its source line) that decomposes into the op a converter's message names, found
    through the provenance torch.export keeps on decomposed nodes (`from_node`)."""
    try:
        decomposed = program.run_decompositions()
    except Exception:  # noqa: BLE001 - only a better message is at stake
        return None
    node = find_op(decomposed, message)
    sources = (node.meta.get("from_node") or []) if node is not None else []
    while sources and getattr(sources[0], "from_node", None):
        sources = sources[0].from_node  # the oldest ancestor: the op as the user's code produced it
    if not sources:
        return None
    user_op = str(sources[0].target).replace("aten.", "aten::", 1).rsplit(".default", 1)[0]
    return user_op, source_line(node)


def conversion_error(program: torch.export.ExportedProgram, exc: BaseException, target: str) -> UserError:
    """A UserError for a failed conversion: the op and its source line when the message names one."""
    message = _ANSI.sub("", f"{type(exc).__name__}: {exc}")
    node = find_op(program, message)
    if node is not None:
        where = source_line(node)
        at = f" (from {where})" if where else ""
        return UserError(f"the {target} converter cannot take op {node.target.name()}{at}",
                         "rewrite that part of the model, or try another --target")
    text = _ANSI.sub("", str(exc)).strip()
    named = re.search(r"aten[.:]{1,2}[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)?", message)
    origin = _decomposed_from(program, message) if named else None
    if origin is not None:  # the converter decomposed an op of the user's into the one it refuses
        user_op, where = origin
        at = f" at {where}" if where else ""
        return UserError(f"the {target} converter cannot take op {user_op} (it becomes {named.group(0)}){at}",
                         "rewrite that part of the model, or try another --target")
    if named:  # an op the decompositions introduced, so no node of ours carries it
        return UserError(f"the {target} converter cannot take op {named.group(0)} (introduced by decomposition)",
                         "rewrite that part of the model, or try another --target")
    first = text.splitlines()[0] if text else type(exc).__name__
    return UserError(f"the {target} converter failed: {first[:300]}", "run with --debug for the traceback")
