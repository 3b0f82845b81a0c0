"""One entry point to every coding-sheet reader: :func:`read_coding_sheet`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mer_bench.data import DatasetError
from mer_bench.datasets.casme import read_casme2_sheet, read_casme_sheet, read_casme_sq_sheet
from mer_bench.datasets.casme3 import read_casme3_sheet
from mer_bench.datasets.samm import read_samm_sheet
from mer_bench.datasets.smic import read_smic_sheet

__all__ = ["read_coding_sheet"]

_READERS = {"casme": read_casme_sheet, "casme^2": read_casme_sq_sheet, "casme2": read_casme2_sheet,
            "samm": read_samm_sheet, "smic": read_smic_sheet, "casme3": read_casme3_sheet}

def read_coding_sheet(dataset: str, path: str | Path, **kw) -> pd.DataFrame:
    """Dispatch to the reader of ``dataset`` (``casme``, ``casme^2``, ``casme2``, ``samm``, ``smic``, ``casme3``).

    Raises:
        DatasetError: an unknown dataset, or what the reader raises.
    """
    if dataset not in _READERS:
        raise DatasetError(f"no coding-sheet reader for {dataset!r}; known: {', '.join(_READERS)}")
    return _READERS[dataset](path, **kw)
