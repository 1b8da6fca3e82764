"""User-facing errors: one line saying what was wrong and what to do."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


class UserError(Exception):
    """An error caused by the user's input; the CLI prints it as one line, no traceback."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class MissingExtraError(UserError):
    """An optional dependency is not installed; names the pip line that brings it."""

    def __init__(self, module: str, extra: str) -> None:
        super().__init__(
            f"'{module}' is not installed",
            f"install it with: pip install 'mobiledeploy[{extra}]'",
        )
        self.module = module
        self.extra = extra


class VerificationError(UserError):
    """An artifact does not compute what PyTorch computes."""

    exit_code = 3


@contextlib.contextmanager
def quiet_logger(name: str, level: int) -> Iterator[None]:
    """Raise one library logger's threshold to `level` for the block only (third-party noise the user cannot act on)."""
    log = logging.getLogger(name)
    before = log.level
    log.setLevel(level)
    try:
        yield
    finally:
        log.setLevel(before)


@contextlib.contextmanager
def quiet_native_stderr(*noise: str) -> Iterator[None]:
    """Drop the lines starting with one of `noise` that native code writes to stderr inside the block; every
    other line is passed on afterwards. For C++ runtimes' info chatter that no Python logging setting reaches
    (LiteRT's "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." on fd 2; ExecuTorch's bindings send
    their C++ log lines to Python's sys.stderr instead)."""
    import io
    import os
    import sys
    import tempfile

    python_side, before = io.StringIO(), sys.stderr
    try:
        sys.stderr.flush()
        saved = os.dup(2)  # fd 2 itself, whatever object sys.stderr is (pytest's capture, a notebook's stream)
    except OSError:  # no fd 2 (a daemon): only the Python side is filtered
        saved = None
    with tempfile.TemporaryFile() as tmp:
        if saved is not None:
            os.dup2(tmp.fileno(), 2)
        sys.stderr = python_side
        try:
            yield
        finally:
            sys.stderr = before
            if saved is not None:
                os.dup2(saved, 2)
                os.close(saved)
            tmp.seek(0)
            # The two sides' relative order is lost; each side keeps its own.
            text = tmp.read().decode(errors="replace") + python_side.getvalue()
            kept = [ln for ln in text.splitlines(keepends=True) if not ln.startswith(noise)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def require(module: str, extra: str):
    """Import an optional dependency lazily, or raise MissingExtraError naming its extra."""
    import importlib

    # coremltools and litert-torch import torchao, whose import-time pytree registration makes torch log
    # a deprecation warning (not ours to fix, and noise in every export's output).
    try:
        with quiet_logger("torch.utils._pytree", logging.ERROR):
            return importlib.import_module(module)
    except ImportError as e:  # only a missing top-level package is the user's to fix
        if e.name and module.split(".")[0] != e.name.split(".")[0]:
            raise
        raise MissingExtraError(module, extra) from None
