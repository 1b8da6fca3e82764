"""A `.pte` lowered to ExecuTorch's Core ML backend, checked off Apple platforms: the Core ML program it embeds,
run by mobiledeploy's Core ML reference interpreter.

ExecuTorch's Core ML backend stores an `.mlpackage` (flattened by its `executorchcoreml` extension) as the
delegate's data; its runtime exists only on Apple platforms. When the program is that one delegate call and
nothing else, its outputs are the Core ML program's, so running the embedded package is running the
program's compute. Anything more (several pieces, portable kernels between them) is refused: the
interpreter would check only part of it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from mobiledeploy.errors import UserError, require

from .runtime import Call, Runner, TensorSpec, recorded_output_names, register_runner

BACKEND = "CoreMLBackend"


def embedded_package(data: bytes, into: Path) -> Path:
    """Unpack the Core ML program a one-piece Core ML `.pte` embeds into `into`; its `.mlpackage` path."""
    # Through require: the backend's package imports torchao, whose import logs torch's pytree warning.
    executorchcoreml = require("executorch.backends.apple.coreml.executorchcoreml", "executorch")
    from executorch.exir._serialize._program import deserialize_pte_binary

    program = deserialize_pte_binary(data)
    program = getattr(program, "program", program)
    plan = program.execution_plan[0]
    kinds = [type(i.instr_args).__name__ for c in plan.chains for i in c.instructions]
    if [d.id for d in plan.delegates] != [BACKEND] or kinds != ["DelegateCall"]:
        raise UserError(f"the program is not one Core ML piece (delegates {[d.id for d in plan.delegates]}, "
                        f"{kinds.count('KernelCall')} portable kernel call(s))",
                        "only a .pte lowered whole to Core ML can be checked through the interpreter")
    processed = plan.delegates[0].processed
    if getattr(processed.location, "name", "INLINE") != "INLINE":  # deserialize_pte_binary inlines segments
        raise UserError("the Core ML delegate's data is stored outside the program", "re-export the .pte")
    blob = bytes(program.backend_delegate_data[processed.index].data)
    if not executorchcoreml.unflatten_directory_contents(blob, str(into)):
        raise UserError("the Core ML delegate's data does not unpack", "re-export the .pte")
    found = sorted(into.rglob("model.mlpackage"))
    if len(found) != 1:
        raise UserError(f"the Core ML delegate holds {len(found)} model.mlpackage folders, expected one",
                        "re-export the .pte")
    return found[0]


@register_runner
class ExecuTorchCoreMLRunner(Runner):
    """The Core ML program inside a Core ML-delegated `.pte`, on the reference interpreter (parity, never timing)."""

    name = "executorch-coreml-mlinterp"
    suffixes = (".pte",)
    extra = "executorch"
    reference = True

    @classmethod
    def available(cls) -> bool:
        try:  # coremltools: the interpreter reads the package's protobuf with it
            require("coremltools", "coreml")
            require("executorch.backends.apple.coreml.executorchcoreml", "executorch")
        except (ImportError, UserError):  # a missing extra (MissingExtraError)
            return False
        return True

    def __init__(self, artifact: str, threads: int) -> None:
        super().__init__(artifact, threads)
        from mobiledeploy.exporters.mlinterp import CoreMLModel

        self._dir = tempfile.TemporaryDirectory(prefix="mobiledeploy-pte-coreml-")
        self.package = embedded_package(Path(artifact).read_bytes(), Path(self._dir.name))
        self.model = CoreMLModel(str(self.package))
        self._in = [i.name for i in self.model.description.input]
        self._out = [o.name for o in self.model.description.output]
        self._out_names = recorded_output_names(artifact, len(self._out))  # as ExecuTorchRunner names them

    def input_specs(self) -> list[TensorSpec]:
        # The .pte's own names (ExecuTorchRunner's), in the order the Core ML program takes them.
        n = len(self._in)
        return [TensorSpec("input" if n == 1 else f"input_{i}", [-1], "float32") for i in range(n)]

    def output_specs(self) -> list[TensorSpec]:
        return [TensorSpec(name, [-1], "float32") for name in self._out_names]

    def prepare(self, inputs: dict[str, np.ndarray]) -> Call:
        feeds = {cm: np.ascontiguousarray(inputs[s.name]) for cm, s in zip(self._in, self.input_specs())}
        predict, names = self.model.predict, list(self._out)

        def call() -> list[Any]:
            out = predict(feeds)
            return [out[n] for n in names]

        return call

    def info(self) -> dict[str, Any]:
        from mobiledeploy.versions import dist_version

        d = super().info()
        d.update(name="mobiledeploy Core ML reference interpreter (the .pte's embedded Core ML program)",
                 version=dist_version("mobiledeploy", missing=None), delegate="CoreML", threads=1, partitions=1)
        return d
