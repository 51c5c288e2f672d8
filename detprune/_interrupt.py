"""Ctrl-C that cannot be lost (private).

Python raises ``KeyboardInterrupt`` wherever the main thread happens to be; when that
is inside a ``__del__`` or weakref callback (garbage collection, e.g. in torch or
ultralytics), the exception is printed as "Exception ignored in ..." and the program
carries on. The CLI installs :func:`install`; long loops call :func:`check` between
their steps, which raises ``KeyboardInterrupt`` if Ctrl-C was pressed at any time.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

__all__ = ["check", "install", "signals_deferred"]

_pressed = threading.Event()
#: the signals that stop a run cleanly (no SIGHUP on Windows: skipped where absent)
_NAMES = ("SIGINT", "SIGTERM", "SIGHUP")


def _handler(signum, frame) -> None:
    _pressed.set()
    raise KeyboardInterrupt


def install() -> None:
    """Remember every Ctrl-C (main thread only; a no-op elsewhere).

    SIGTERM and SIGHUP (what ``timeout``, systemd, Slurm, Kubernetes and a closed
    terminal send) are handled as Ctrl-C: the run stops the same clean way, temporary
    output removed and the embeddings computed so far kept in the cache.
    """
    if threading.current_thread() is threading.main_thread():
        _pressed.clear()
        for name in _NAMES:
            sig = getattr(signal, name, None)
            if sig is not None:
                signal.signal(sig, _handler)


def check() -> None:
    """Raise ``KeyboardInterrupt`` if Ctrl-C was pressed since :func:`install`."""
    if _pressed.is_set():
        raise KeyboardInterrupt


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Ignore Ctrl-C, SIGTERM and SIGHUP inside the block (cleanup that must finish:
    a second Ctrl-C while a temporary folder is removed left it half removed); main
    thread only, a no-op elsewhere. They are remembered for :func:`check`."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {}
    for name in _NAMES:
        sig = getattr(signal, name, None)
        if sig is not None:
            saved[sig] = signal.signal(sig, lambda signum, frame: _pressed.set())
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
