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
    """Drop the lines starting with one of `noise` that native code writes to stderr (fd 2) inside the
    block; every other line is passed on afterwards. For C++ runtimes' info chatter that no Python logging
    setting reaches (LiteRT's "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.")."""
    import os
    import sys
    import tempfile

    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real file behind sys.stderr: nothing to filter
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), fd)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            kept = [ln for ln in tmp.read().decode(errors="replace").splitlines(keepends=True)
                    if not ln.startswith(noise)]
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
