"""The ``mer-bench`` command line: one module per subcommand (``mer_bench/cli/<command>.py``, each
with ``add_parser(sub)`` and ``main(args)``), shared option groups in :mod:`mer_bench.cli.options`.

Importing this package is cheap: torch, pandas and rich load only inside the commands that need
them, so ``mer-bench --help`` answers at once.
"""

from __future__ import annotations

import argparse
import os

from mer_bench import __version__
from mer_bench.cli import (
    ablate,
    bench,
    data,
    export,
    importing,
    leaderboard,
    listing,
    pack,
    power,
    predict,
    profile,
    report,
    run,
    saliency,
    train,
    unpack,
)
from mer_bench.cli.options import err

__all__ = ["main", "build_parser"]

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
#: subcommands in the order ``--help`` lists them
COMMANDS = (run, train, predict, importing, export, pack, unpack, listing, data, profile, ablate, power, saliency,
            report, bench, leaderboard)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mer-bench",
        description="Honest, reproducible benchmarks for micro-expression recognition.",
        epilog="Start with: mer-bench run --method meranet --protocol loso   (embedded synthetic dataset)")
    p.add_argument("--version", action="version", version=f"mer-bench {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    import sqlite3
    import warnings

    from mer_bench.data import DatasetError
    from mer_bench.method import MethodError, ParameterError
    from mer_bench.metrics import AbsentClassError
    from mer_bench.pipeline.executors import ExecutorError
    from mer_bench.protocol import ProtocolError
    from mer_bench.registry import RegistryError
    from mer_bench.store import StoreError

    def show_warning(message, category, filename, lineno, file=None, line=None):
        err(str(message), level="warning")

    previous = warnings.showwarning
    warnings.showwarning = show_warning
    debug = bool(os.environ.get("MER_BENCH_DEBUG"))
    hint = "  (set MER_BENCH_DEBUG=1 for a traceback)"
    try:
        return args.handler(args)
    except (RegistryError, ParameterError, DatasetError, ProtocolError, StoreError, AbsentClassError,
            ValueError, ExecutorError, MethodError) as exc:
        if debug:
            raise
        err(str(exc) + ("" if isinstance(exc, (RegistryError, ParameterError, StoreError)) else hint))
        return EXIT_USAGE
    except OSError as exc:  # an unreadable data root, a read-only --out folder, a full disk...
        if debug:
            raise
        err(_os_error(exc) + hint)
        return EXIT_USAGE
    except sqlite3.Error as exc:
        if debug:
            raise
        err(f"the results store failed: {type(exc).__name__}: {exc}" + hint)
        return EXIT_USAGE
    except KeyboardInterrupt:
        err("interrupted. Completed folds are saved in the store; re-run the same command to resume.")
        return EXIT_INTERRUPTED
    finally:
        warnings.showwarning = previous


def _os_error(exc: OSError) -> str:
    """``cannot write /x/board.md: Permission denied`` from an OSError, naming every path it has."""
    import errno

    paths = " -> ".join(str(p) for p in (exc.filename, exc.filename2) if p is not None)
    reason = exc.strerror or str(exc) or type(exc).__name__
    advice = {errno.EACCES: "check the permissions of that path", errno.EPERM: "check the permissions of that path",
              errno.ENOSPC: "free some space; nothing finished was lost", errno.EROFS: "that file system is read-only",
              errno.ENOTDIR: "a part of that path is a file, not a folder",
              errno.EISDIR: "that path is a folder; give a file",
              errno.EEXIST: "a file is where a folder should be"}.get(exc.errno, "")
    return f"{paths + ': ' if paths else ''}{reason}" + (f" ({advice})" if advice else "")


