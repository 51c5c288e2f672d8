"""A Ctrl-C is never lost, even when it lands where Python swallows exceptions."""

from __future__ import annotations

import os
import signal

import pytest

from detprune import _interrupt


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the swallowed one
def test_a_swallowed_ctrl_c_is_raised_at_the_next_check():
    before = signal.getsignal(signal.SIGINT)
    try:
        _interrupt.install()
        _interrupt.check()  # nothing pressed: nothing raised

        class Finalised:
            def __del__(self):
                os.kill(os.getpid(), signal.SIGINT)  # lands inside __del__: "Exception ignored"

        Finalised()  # collected at once; the KeyboardInterrupt raised in __del__ is swallowed
        with pytest.raises(KeyboardInterrupt):
            _interrupt.check()
    finally:
        signal.signal(signal.SIGINT, before)
        _interrupt._pressed.clear()
