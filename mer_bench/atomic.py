"""Atomic file writes: a published file is either the old one or the complete new one.

Every file mer-bench publishes (leaderboards, reports, plots, cache entries) is written to a
temporary file in the *same folder*, flushed to disk, and moved over the target with
:func:`os.replace`, which POSIX and Windows perform atomically within one file system. A full
disk, ``kill -9`` or Ctrl-C during the write leaves the old file untouched, and the temporary
file is removed on every failure that Python sees (a ``kill -9`` can leave one ``.<name>.*.tmp.<ext>``
file beside the target; it is never read).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_text", "atomic_write_bytes", "save_figure"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on a clean exit it replaces ``path``.

    Write the new content to the yielded path (any writer: ``open``, ``np.save``,
    ``fig.savefig``). ``suffix``: the temporary file's ending (default: ``path``'s own, so
    writers that choose a format from the name, such as matplotlib, see the right one).

    Raises:
        OSError: the folder cannot hold the file (full disk, read-only, missing). The target is
            left as it was and the temporary file is removed.
    """
    path = Path(path)
    ext = path.suffix if suffix is None else suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{ext}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; a published file gets the usual mode
        yield tmp_path
        with open(tmp_path, "rb+") as f:  # the bytes reach the disk before the name moves
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see the module docstring); returns the path."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see the module docstring); returns the path."""
    return atomic_write_bytes(path, text.encode(encoding))


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Save a matplotlib figure atomically as ``path`` (format from its suffix, e.g. ``.png``),
    without the software-version metadata, so a plot regenerates byte-identically."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, metadata={"Software": None}, format=Path(path).suffix.lstrip(".") or None)
    return Path(path)
