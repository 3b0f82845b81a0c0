"""Command lines printed for users to paste: every argument shell-quoted, names from a safe set.

Boards, ablation tables and saliency studies print the ``mer-bench`` command that reproduces
each row. Every argument goes through :func:`shlex.quote`, so a stored value such as
``pub; touch x`` is printed as one quoted word and never runs when the line is pasted into a
POSIX shell. Names that users choose and that end up in file names and commands (imported
runs' ``--name``) are restricted to :data:`SAFE_NAME`.
"""

from __future__ import annotations

import re
import shlex

__all__ = ["mer_bench_command", "check_name", "SAFE_NAME"]

#: letters, digits and ``. _ + -``, starting with a letter or digit, at most 64 characters
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")


def mer_bench_command(*args: object) -> str:
    """``mer-bench ARG ...`` with every argument quoted for a POSIX shell (``shlex.quote``);
    ``DATA_ROOT`` and other plain words print unchanged."""
    return " ".join(["mer-bench", *(shlex.quote(str(a)) for a in args)])


def check_name(name: str, what: str = "--name") -> str:
    """``name`` when it matches :data:`SAFE_NAME`.

    Raises:
        ValueError: it does not (the message gives the allowed characters).
    """
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name):
        raise ValueError(f"{what} {name!r}: use 1 to 64 letters, digits, '.', '_', '+' or '-', starting with a "
                         f"letter or digit (the name appears in file names and shell commands)")
    return name
