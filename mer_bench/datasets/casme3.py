"""CAS(ME)^3 part A: its coding-sheet reader, folder layout and loader."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pandas as pd

from mer_bench.datasets.frames import FrameTreeDataset
from mer_bench.datasets.sheets import _finish, _frames, _need, _nonempty, _read_excel

__all__ = ["CASME3A", "read_casme3_sheet"]


def read_casme3_sheet(path: str | Path, fixes: bool = True) -> pd.DataFrame:
    """CAS(ME)^3 part A sheet ``casme3_table.xlsx`` (every cell text; sheet ``label``).

    Raises:
        DatasetError: missing columns or a bad frame cell.
    """
    path = Path(path)
    df = _read_excel(path, sheet_name="label")
    _need(df, ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "emotion"], path)
    df = _nonempty(df.dropna(subset=["Subject", "Filename"]), path)
    onset = _frames(df["Onset"], path, "Onset", 2)
    return _finish({
        "dataset": "casme3",
        "subject": df["Subject"].str.strip(),
        "clip": [f"{f.strip()}_{o}" for f, o in zip(df["Filename"], onset)],
        "onset": onset,
        "apex": _frames(df["Apex"], path, "Apex", 2),
        "offset": _frames(df["Offset"], path, "Offset", 2),
        "emotion": df["emotion"].str.strip().str.lower(),
        "aus": df["AU"].fillna("").str.strip(),
        "objective_class": df.get("Objective class", pd.Series(pd.NA, index=df.index)),
    }, path, "casme3_table", "casme3", fixes)


class CASME3A(FrameTreeDataset):
    """CAS(ME)^3 part A (Li et al., IEEE TPAMI 2023); see the module docstring for the layout.
    Class schemes ``7class`` (default) and ``megc3``."""

    name: ClassVar[str] = "casme3-a"
    summary: ClassVar[str] = ("CAS(ME)^3 part A colour frames + casme3_table.xlsx (860 MEs, 94 subjects, 30 fps); "
                              "needs --data-root")
    fps: ClassVar[int] = 30
    sheet_patterns = ("casme3_table.xlsx", "**/casme3_table.xlsx")
    scheme_key = "casme3"
    default_classes = "7class"

    def read_sheet(self, path: Path) -> pd.DataFrame:
        return read_casme3_sheet(path)

    def clip_dir(self, row) -> Path:
        return self.root / "part_A" / row.subject / row.clip.rsplit("_", 1)[0] / "color"
