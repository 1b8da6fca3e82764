"""User-facing errors: one line saying what was wrong and what to do."""

from __future__ import annotations


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


def require(module: str, extra: str):
    """Import an optional dependency lazily, or raise MissingExtraError naming its extra."""
    import importlib
    import logging

    # coremltools and litert-torch import torchao, whose import-time pytree registration makes torch log
    # a deprecation warning (not ours to fix, and noise in every export's output): silence that logger
    # for the duration of the import only.
    pytree_log = logging.getLogger("torch.utils._pytree")
    level = pytree_log.level
    pytree_log.setLevel(logging.ERROR)
    try:
        return importlib.import_module(module)
    except ImportError as e:  # only a missing top-level package is the user's to fix
        if e.name and module.split(".")[0] != e.name.split(".")[0]:
            raise
        raise MissingExtraError(module, extra) from None
    finally:
        pytree_log.setLevel(level)
