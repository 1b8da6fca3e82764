"""Ctrl-C that cannot be lost inside a converter.

SIGINT normally surfaces as a KeyboardInterrupt wherever Python happens to be. Inside a converter that
can be a bare `except:` (coremltools has about twenty on its conversion path, e.g. around `np.array`
of every constant and `node.target.name()` of every node) which swallows it, turns it into a ValueError
or carries on, so the export went on to the next target as if nothing happened. Here the signal is also
remembered, and the export checks the flag between stages and targets.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType


class deferred_interrupt:
    """Hold SIGINT back for a few lines that must all happen or none (an artifact and its manifest); a
    Ctrl-C that arrives meanwhile is raised right after them."""

    def __enter__(self) -> "deferred_interrupt":
        self.got = False
        self._previous: object = None
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._hold)
        return self

    def _hold(self, signum: int, frame: FrameType | None) -> None:
        self.got = True

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)  # type: ignore[arg-type]
            if self.got and kind is None:
                signal.raise_signal(signal.SIGINT)  # whatever handler was active (the guard's) sees it


class InterruptGuard:
    """While active, SIGINT raises KeyboardInterrupt as usual and is remembered; `check()` re-raises it."""

    def __init__(self) -> None:
        self.count = 0
        self._previous: object = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        raise KeyboardInterrupt

    def check(self) -> None:
        """Raise KeyboardInterrupt if SIGINT arrived, even when the first one was swallowed downstream."""
        if self.count:
            raise KeyboardInterrupt

    def __enter__(self) -> "InterruptGuard":
        if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)  # type: ignore[arg-type]
        if exc is None:
            self.check()  # swallowed during the last stage: the command still ends as interrupted
