"""The store's exceptions and warning."""

from __future__ import annotations

__all__ = ["StoreError", "StoreBusyError", "StoreWarning", "describe"]


class StoreError(RuntimeError):
    """The store cannot be opened, read or written (the message says which path and why)."""


class StoreBusyError(StoreError):
    """Another live process is computing the same run (it holds the run's lease)."""


class StoreWarning(UserWarning):
    """A stored run is damaged and was skipped (the message names the run and the store)."""


def describe(exc: BaseException) -> str:
    """A short reason: ``database or disk is full``, ``[Errno 13] Permission denied: 'x'``..."""
    return str(exc) or type(exc).__name__
