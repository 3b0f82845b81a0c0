"""``mer-bench list``."""

from __future__ import annotations


def add_parser(sub) -> None:
    ls = sub.add_parser("list", help="list registered methods, protocols or datasets",
                        description="List registry entries, optionally filtered by a wildcard pattern.")
    ls.add_argument("kind", choices=["methods", "protocols", "datasets"])
    ls.add_argument("pattern", nargs="?", default=None, help="shell wildcard, e.g. 'meranet*' or '*3d*'")
    ls.set_defaults(handler=main)


def main(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from mer_bench.registry import PluginLoadError, registry_for

    reg = registry_for(args.kind)
    names = reg.names(args.pattern)
    table = Table(title=f"{args.kind} ({len(names)})" + (f" matching {args.pattern!r}" if args.pattern else ""))
    for col in ("name", "origin", "details"):
        table.add_column(col)
    broken = {}
    for name in names:
        static = reg.static_attrs(name) if args.kind == "methods" else None  # no import: torch stays unloaded
        if static is not None and {"summary", "representation"} <= set(static["info"]):
            info = static["info"]
            cpu = "" if info.get("practical_on_cpu", True) else " [GPU advised]"
            inputs = " or ".join((info.get("representation", "?"), *info.get("accepts", ())))
            table.add_row(name, reg.origin(name), f"{info.get('summary', '')} — input: {inputs}{cpu}")
            continue
        try:
            obj = reg.get(name)
        except PluginLoadError as exc:
            broken[name] = str(exc)
            continue
        info = getattr(obj, "info", None)
        if info is not None:
            cpu = "" if info.practical_on_cpu else " [GPU advised]"
            inputs = " or ".join((info.representation, *getattr(info, "accepts", ())))
            details = f"{info.summary} — input: {inputs}{cpu}"
        elif hasattr(obj, "leaky"):
            details = ("LEAKY: subjects shared between train and test. " if obj.leaky else "") + _summary(obj)
        else:
            reps = ", ".join(getattr(obj, "representations", ()))
            details = _summary(obj) + (f" — provides: {reps}" if reps else "")
        table.add_row(name, reg.origin(name), details)
    console = Console()
    console.print(table)
    broken.update({k: v for k, v in reg.broken(load=False).items() if not args.pattern or k in names})
    for name, msg in broken.items():
        Console(stderr=True).print(f"[yellow]broken plugin[/] {name}: {msg}", markup=True, highlight=False)
    return 0


def _summary(obj) -> str:
    return getattr(obj, "summary", "") or ((obj.__doc__ or "").strip().splitlines() or [""])[0]
