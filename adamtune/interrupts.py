"""An interruption that cannot be lost.

Python raises ``KeyboardInterrupt`` wherever the main thread happens to be when SIGINT
arrives; when that is a garbage-collection callback (a weakref's, say: torch and SQLAlchemy
make plenty), Python prints "Exception ignored" and goes on, and the search never stops (seen
with ``search --jobs``: a helper trained on after SIGINT). So the command's handler also
records the request here, and the search checks it at safe points (every epoch, every step).
A library user who installs no handler is never affected.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType

_requested: list[int] = []  # the signals received, most recent last


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM, with the shell's exit code for it: 128 + the signal (130, 143)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.exit_code = 128 + signum


def request(signum: int, frame: FrameType | None = None) -> None:
    """A signal handler: remember the interruption, then raise it at once."""
    _requested.append(signum)
    raise Interrupted(signum)


def check() -> None:
    """Raise the interruption again if one was requested (and perhaps swallowed)."""
    if _requested:
        raise Interrupted(_requested[-1])


def exit_code(exc: KeyboardInterrupt) -> int:
    """130 for Ctrl-C (also when no handler of ours caught it), 143 for SIGTERM."""
    return exc.exit_code if isinstance(exc, Interrupted) else 128 + signal.SIGINT


@contextlib.contextmanager
def installed() -> Iterator[None]:
    """While the block runs, Ctrl-C and SIGTERM interrupt it (the search records its running
    trials as interrupted; the command exits 130, or 143 on SIGTERM); the previous handlers
    come back after."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    if previous[signal.SIGINT] is not signal.SIG_IGN:  # a background job of a script keeps it
        signal.signal(signal.SIGINT, request)
    signal.signal(signal.SIGTERM, request)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _requested.clear()
