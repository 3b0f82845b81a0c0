"""Where real datasets live: one rule for every loader.

A dataset that reads files finds its data root by the first of:

1. the ``data_root`` option (``mer-bench run --data-root PATH``, or ``--dataset-set data_root=PATH``);
2. the environment variable ``MER_BENCH_DATA_<NAME>``, where ``<NAME>`` is the dataset's registry
   name upper-cased with every non-alphanumeric character replaced by ``_``
   (``megc2019-flow`` -> ``MER_BENCH_DATA_MEGC2019_FLOW``);
3. the ``[data_roots]`` table of the config file ``$MER_BENCH_CONFIG``, or
   ``$XDG_CONFIG_HOME/mer-bench/config.toml`` (``~/.config/mer-bench/config.toml``)::

       [data_roots]
       "megc2019-flow" = "/data/megc2019-composite"
       casme2 = "/data/CASME2"

A relative path is taken relative to the current directory (option, environment) or to the
config file's folder (config file). ``~`` is expanded.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser as the tomli package (a dependency there)
    import tomli as tomllib

__all__ = ["config_path", "env_var_for", "resolve_data_root", "require_data_root"]


def config_path() -> Path:
    """The config file path (it may not exist)."""
    env = os.environ.get("MER_BENCH_CONFIG")
    if env:
        return Path(env).expanduser()
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "mer-bench" / "config.toml"


def env_var_for(dataset: str) -> str:
    """``MER_BENCH_DATA_<NAME>`` for a registry name (see the module docstring)."""
    return "MER_BENCH_DATA_" + re.sub(r"[^A-Za-z0-9]", "_", dataset).upper()


def resolve_data_root(dataset: str, given: str | os.PathLike | None) -> tuple[Path | None, str]:
    """The data root of ``dataset`` and where it came from.

    Returns:
        ``(path, source)``; ``path`` is ``None`` when nothing names one, and ``source`` then lists
        the three ways to give it (for the error message).

    Raises:
        ValueError: the config file exists but is not valid TOML, or its entry is not a string.
    """
    if given is not None and str(given) != "":
        return Path(given).expanduser(), "--data-root"
    var = env_var_for(dataset)
    if os.environ.get(var):
        return Path(os.environ[var]).expanduser(), f"${var}"
    cfg = config_path()
    if cfg.is_file():
        try:
            data = tomllib.loads(cfg.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"config file {cfg} is not valid TOML: {exc}") from None
        value = (data.get("data_roots") or {}).get(dataset)
        if value is not None:
            if not isinstance(value, str):
                raise ValueError(f"config file {cfg}: data_roots.{dataset} must be a string path, got {value!r}")
            path = Path(value).expanduser()
            return (path if path.is_absolute() else cfg.parent / path), f"{cfg} [data_roots]"
    return None, f"--data-root PATH, ${var}, or data_roots.\"{dataset}\" in {cfg}"


def require_data_root(dataset: str, given: str | os.PathLike | None) -> Path:
    """The data root of ``dataset`` as a folder.

    Raises:
        DatasetError: none is given (the message lists the three ways), or it is not a folder.
    """
    from mer_bench.data import DatasetError

    root, source = resolve_data_root(dataset, given)
    if root is None:
        raise DatasetError(f"dataset {dataset!r} needs its data root: give {source}")
    if not root.is_dir():
        raise DatasetError(f"data root of {dataset!r} ({source}) is not a folder: {root}")
    return root
