"""Option groups shared by the subcommands, and the helpers they share (cheap to import: no torch)."""

from __future__ import annotations

import sys

__all__ = ["add_store", "add_data_root", "add_device", "add_overrides", "add_dataset_options", "add_json",
           "kv_options", "dataset_builder", "err"]


def add_store(p, read: bool = False) -> None:
    p.add_argument("--store", default=None,
                   help="results database (default: $MER_BENCH_STORE or ~/.local/share/mer-bench/results.sqlite)"
                        + ("; read only, and it must exist" if read else ""))


def add_data_root(p) -> None:
    p.add_argument("--data-root", default=None, help="folder of a real dataset (passed to the dataset loader)")


def add_device(p) -> None:
    p.add_argument("--device", default="auto", help="auto (CUDA when present, else CPU), cpu, cuda, cuda:N")


def add_overrides(p, help: str = "override a method hyper-parameter, e.g. --set lr=1e-4 --set epochs=5") -> None:
    p.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE", help=help)


def add_dataset_options(p) -> None:
    p.add_argument("--dataset-set", dest="dataset_overrides", action="append", metavar="KEY=VALUE",
                   help="dataset option, e.g. --dataset-set n_subjects=6")


def add_json(p) -> None:
    p.add_argument("--json", action="store_true", help="print a machine-readable result on stdout")


def add_publishing(p, folder_help: str) -> None:
    """``--out`` and ``--allow-dirty`` of the commands that publish boards (leaderboard, report)."""
    p.add_argument("--out", default="leaderboards", help=folder_help)
    p.add_argument("--allow-dirty", action="store_true",
                   help="publish rows measured with uncommitted (-dirty) or unknown code, marked as such on the "
                        "board (refused by default)")


def kv_options(items, flag: str = "--set") -> dict:
    """``KEY=VALUE`` items of ``flag`` as a dict (:func:`mer_bench.method.parse_overrides`)."""
    from mer_bench.method import parse_overrides

    return parse_overrides(items, flag)


def dataset_builder(data_root):
    """``dataset_for(name, options) -> Dataset`` for commands that rebuild the datasets of stored or
    carried runs (``import --format predictions``, ``unpack``): each (name, options) built once,
    with the user's ``--data-root`` given to the datasets that read files (the embedded one has
    none, so a store of mixed runs unpacks with one ``--data-root``)."""
    import inspect

    from mer_bench.registry import DATASETS

    built = {}

    def dataset_for(name, options):
        key = (name, repr(sorted(options.items())))
        if key not in built:
            opts, cls = dict(options), DATASETS.get(name)
            if data_root is not None and "data_root" in inspect.signature(cls).parameters:
                opts["data_root"] = data_root
            built[key] = cls(**opts)
        return built[key]

    return dataset_for


def err(msg: str, level: str = "error") -> None:
    try:
        from rich.console import Console
        from rich.markup import escape

        colour = "red" if level == "error" else "yellow"
        Console(stderr=True, highlight=False).print(f"[bold {colour}]{level}:[/] {escape(msg)}", markup=True,
                                                    soft_wrap=True)
    except ImportError:  # pragma: no cover - rich missing
        print(f"{level}: {msg}", file=sys.stderr)

