"""SAMM: its coding-sheet reader, folder layout and loader."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pandas as pd

from mer_bench.data import DatasetError
from mer_bench.datasets.frames import FrameTreeDataset
from mer_bench.datasets.sheets import _finish, _frames, _need, _nonempty, _read_excel, _subjects

__all__ = ["SAMM", "read_samm_sheet"]


def read_samm_sheet(path: str | Path, fixes: bool = True) -> pd.DataFrame:
    """SAMM micro-expression sheet (``SAMM_Micro_FACS_Codes_v2.xlsx``, header on row 14, or
    ``SAMM_micro_only.xlsx``, header on row 1): the header row is found by its ``Subject`` cell.
    ``Duration`` is not read (a formula whose cached value a re-saved file may lack).

    Raises:
        DatasetError: no header row, missing columns, or a bad frame cell.
    """
    path = Path(path)
    head = _read_excel(path, sheet_name=0, header=None, nrows=40)
    rows = [i for i, v in enumerate(head.iloc[:, 0]) if isinstance(v, str) and v.strip() == "Subject"]
    if not rows:
        raise DatasetError(f"{path}: no header row with 'Subject' in column A among the first 40 rows")
    header = rows[0]
    df = _read_excel(path, sheet_name=0, header=header)
    _need(df, ["Subject", "Filename", "Onset Frame", "Apex Frame", "Offset Frame", "Action Units",
               "Estimated Emotion"], path, header + 1)
    df = _nonempty(df.dropna(subset=["Subject", "Filename"]), path)
    version = "v2" if header > 0 else "micro_only"
    return _finish({
        "dataset": "samm",
        "subject": _subjects(df["Subject"], path, "Subject", header + 2, "{:03d}"),
        "clip": df["Filename"].str.strip(),
        "onset": _frames(df["Onset Frame"], path, "Onset Frame", header + 2),
        "apex": _frames(df["Apex Frame"], path, "Apex Frame", header + 2),
        "offset": _frames(df["Offset Frame"], path, "Offset Frame", header + 2),
        "emotion": df["Estimated Emotion"].str.strip().str.lower(),
        "aus": df["Action Units"].fillna("").str.strip(),
        "objective_class": df.get("Objective Classes", pd.Series(pd.NA, index=df.index)),
    }, path, version, "samm", fixes)


class SAMM(FrameTreeDataset):
    """SAMM (Davison et al., IEEE TAC 2018); see the module docstring for the layout."""

    name: ClassVar[str] = "samm"
    summary: ClassVar[str] = "SAMM frame folders + coding sheet (159 clips, 29 subjects, 200 fps); needs --data-root"
    fps: ClassVar[int] = 200
    scheme_key = "samm"
    sheet_patterns = ("SAMM_micro_only.xlsx", "SAMM_Micro_FACS_Codes_v2.xlsx", "**/SAMM_*.xlsx")

    def read_sheet(self, path: Path) -> pd.DataFrame:
        return read_samm_sheet(path)

    def clip_dir(self, row) -> Path:
        nested = self.root / "SAMM"
        base = nested if nested.is_dir() else self.root
        return base / row.subject / row.clip
