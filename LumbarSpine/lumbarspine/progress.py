"""Progress reporting and cancellation, shared by every long-running library call.

Long work takes two optional callbacks: ``progress(fraction, message)`` with ``fraction`` in
``[0, 1]``, and ``cancel() -> bool``, polled between steps; when it returns True the work stops with
:class:`OperationCancelled` (inputs untouched, nothing half-written is returned). The Slicer modules
turn these into a progress bar and a Cancel button; batch runs leave them out.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["ProgressCallback", "CancelCallback", "OperationCancelled", "check_cancel"]

ProgressCallback = Callable[[float, str], None]
CancelCallback = Callable[[], bool]


class OperationCancelled(RuntimeError):
    """The ``cancel()`` callback returned True: the operation stopped between two steps."""


def check_cancel(cancel: CancelCallback | None, what: str = "The operation") -> None:
    """Raise :class:`OperationCancelled` when ``cancel`` is given and returns True."""
    if cancel is not None and cancel():
        raise OperationCancelled(f"{what} was cancelled by the user.")
