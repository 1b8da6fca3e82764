"""Ctrl-C between an artifact's move and its manifest's write waits for both (the pair appears whole)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from mobiledeploy.interrupts import InterruptGuard, deferred_interrupt


def test_sigint_inside_waits_for_the_block_then_interrupts():
    steps = []
    with pytest.raises(KeyboardInterrupt):
        with InterruptGuard() as guard:
            with deferred_interrupt():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)  # the signal has been delivered by now; the block goes on
                steps.append("artifact moved")
                steps.append("manifest written")
            steps.append("never")
    assert steps == ["artifact moved", "manifest written"] and guard.count == 1


def test_no_sigint_no_interrupt():
    with deferred_interrupt() as d:
        pass
    assert d.got is False
