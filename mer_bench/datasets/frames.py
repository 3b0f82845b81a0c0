"""Raw datasets as released: frame folders plus a coding sheet, read and checked.

Each loader maps its dataset's official folder layout onto the common table of
:mod:`mer_bench.data` (plus ``n_frames``, ``fps`` and ``frame_dir``) and checks the tree against
the sheet (:meth:`FrameTreeDataset.check`): missing clip folders, missing or unreadable frames,
frame counts or frame numbers that disagree with onset/offset, apex outside [onset, offset],
duplicate clips. ``mer-bench data check --dataset NAME --data-root PATH`` prints every problem at
once. Frames are sorted by the number in their file name (never lexically) and that number is
the frame index the sheets use.

Layouts (``DATA_ROOT`` = ``--data-root``; the coding sheet is found in it by name):

* ``casme2``: ``CASME2_RAW_selected/sub01/EP02_01f/img46.jpg`` (or ``Cropped/sub01/EP02_01f/reg_img46.jpg``
  with ``--dataset-set layout=cropped``); sheet ``CASME2-coding-*.xlsx`` (2014 preferred: the MEGC
  labels follow it). 200 fps.
* ``samm``: ``SAMM/006/006_1_2/006_05562.jpg`` (or ``006/006_1_2/...`` directly); sheet
  ``SAMM_micro_only.xlsx`` (preferred) or ``SAMM_Micro_FACS_Codes_v2.xlsx``. 200 fps.
* ``smic-hs``: ``HS/s1/micro/negative/s1_ne_01/image443824.bmp`` (the class is the folder); sheet
  ``smic_apex.xlsx`` if present for onset/offset, else the first and last frame on disk. 100 fps.
  SMIC has no apex; the rule is in :mod:`mer_bench.datasets.sheets`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from mer_bench.config import resolve_data_root
from mer_bench.data import Dataset, DatasetError
from mer_bench.datasets.sheets import read_casme2_sheet, read_samm_sheet, read_smic_sheet

__all__ = ["FrameTreeDataset", "CASME2", "SAMM", "SMICHS", "frame_number", "list_frames"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def frame_number(name: str) -> int | None:
    """The frame index in a file name: the last group of digits of its stem (``reg_img46.jpg`` -> 46,
    ``006_05562.jpg`` -> 5562); ``None`` when there is none."""
    digits = re.findall(r"\d+", Path(name).stem)
    return int(digits[-1]) if digits else None


def list_frames(folder: Path) -> list[tuple[int, Path]]:
    """``(frame number, path)`` of the images in ``folder``, sorted by frame number."""
    out = []
    for f in folder.iterdir():
        if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith("."):
            n = frame_number(f.name)
            if n is not None:
                out.append((n, f))
    return sorted(out)


class FrameTreeDataset(Dataset):
    """Base of frame-folder datasets. Subclasses give ``fps``, ``sheet_patterns``, ``read_sheet``
    and ``clip_dir(row)``.

    Args:
        data_root: the dataset folder (see :mod:`mer_bench.config` for the other ways to give it).
        sheet: a coding-sheet path overriding the one found in the data root.
    """

    fps: ClassVar[int]
    sheet_patterns: ClassVar[tuple[str, ...]]
    classes: ClassVar[tuple[str, ...]] = ()
    representations: ClassVar[tuple[str, ...]] = ()

    def __init__(self, data_root: str | None = None, sheet: str | None = None) -> None:
        self.data_root = data_root
        self.sheet = sheet
        self._sheet_table: pd.DataFrame | None = None

    def options(self) -> dict[str, Any]:
        return {} if self.sheet is None else {"sheet": Path(self.sheet).name}

    @property
    def root(self) -> Path:
        root, source = resolve_data_root(self.name, self.data_root)
        if root is None:
            raise DatasetError(f"dataset {self.name!r} needs its data root: give {source}")
        if not root.is_dir():
            raise DatasetError(f"data root of {self.name!r} ({source}) is not a folder: {root}")
        return root

    def sheet_path(self) -> Path:
        if self.sheet is not None:
            return Path(self.sheet)
        for pattern in self.sheet_patterns:
            found = sorted(self.root.glob(pattern))
            if found:
                return found[0]
        raise DatasetError(f"no coding sheet in {self.root} (looked for {', '.join(self.sheet_patterns)}); "
                           f"give one with --dataset-set sheet=PATH")

    def read_sheet(self, path: Path) -> pd.DataFrame:  # pragma: no cover - interface
        raise NotImplementedError

    def clip_dir(self, row) -> Path:  # pragma: no cover - interface
        raise NotImplementedError

    def sheet_table(self) -> pd.DataFrame:
        if self._sheet_table is None:
            self._sheet_table = self.read_sheet(self.sheet_path())
        return self._sheet_table

    def check(self) -> list[str]:
        """Every problem of the tree against the sheet, one line each (empty: usable)."""
        table = self.sheet_table()
        problems = []
        dup = table[table.duplicated(["subject", "clip"], keep=False)]
        for key in sorted(set(dup["subject"] + "/" + dup["clip"])):
            problems.append(f"{key}: listed more than once in the sheet")
        for row in table.itertuples():
            key = f"{row.subject}/{row.clip}"
            folder = self.clip_dir(row)
            if not folder.is_dir():
                problems.append(f"{key}: clip folder {folder} is missing")
                continue
            frames = list_frames(folder)
            if not frames:
                problems.append(f"{key}: no frames in {folder}")
                continue
            numbers = [n for n, _ in frames]
            for _, f in frames:
                if f.stat().st_size == 0:
                    problems.append(f"{key}: frame {f.name} is empty (unreadable)")
            if pd.isna(row.onset) or pd.isna(row.offset):
                problems.append(f"{key}: the sheet gives no onset/offset")
                continue
            wanted = set(range(int(row.onset), int(row.offset) + 1))
            missing = sorted(wanted - set(numbers))
            if missing:
                shown = ", ".join(str(m) for m in missing[:5]) + (" ..." if len(missing) > 5 else "")
                problems.append(f"{key}: {len(missing)} frame(s) between onset {row.onset} and offset {row.offset} "
                                f"missing in {folder} ({shown})")
            if pd.isna(row.apex):
                problems.append(f"{key}: no apex frame")
            elif not int(row.onset) <= int(row.apex) <= int(row.offset):
                problems.append(f"{key}: apex {row.apex} outside [onset {row.onset}, offset {row.offset}]")
        return problems

    def table(self) -> pd.DataFrame:
        t = self.sheet_table()
        out = pd.DataFrame({
            "sample_id": t["dataset"] + "/" + t["subject"] + "/" + t["clip"], "dataset": t["dataset"],
            "subject": t["subject"], "clip": t["clip"], "onset": t["onset"], "apex": t["apex"],
            "offset": t["offset"], "emotion": t["emotion"], "aus": t["aus"], "label": -1,
            "n_frames": (t["offset"] - t["onset"] + 1), "fps": self.fps,
            "frame_dir": [str(self.clip_dir(r)) for r in t.itertuples()],
        })
        return out

    def fingerprint(self) -> str:
        import hashlib

        return hashlib.sha256(self.sheet_path().read_bytes()).hexdigest()[:16]

    def load(self, representation, index):  # pragma: no cover - preprocessing lands with issue 4
        raise DatasetError(f"{self.name}: preprocessing into model inputs is not available yet; "
                           f"use `mer-bench data check` to validate the tree")


class CASME2(FrameTreeDataset):
    """CASME II (Yan et al., PLoS ONE 2014); see the module docstring for the layout.

    Extra option ``layout``: ``"raw"`` (``CASME2_RAW_selected``) or ``"cropped"`` (``Cropped``).
    """

    name: ClassVar[str] = "casme2"
    summary: ClassVar[str] = "CASME II frame folders + coding sheet (255 clips, 26 subjects, 200 fps); checks only"
    fps: ClassVar[int] = 200
    sheet_patterns = ("CASME2-coding-20140508.xlsx", "CASME2-coding-*.xlsx", "**/CASME2-coding-*.xlsx")

    def __init__(self, data_root: str | None = None, sheet: str | None = None, layout: str = "raw") -> None:
        super().__init__(data_root, sheet)
        self.layout = layout

    def options(self) -> dict[str, Any]:
        return {**super().options(), "layout": self.layout}

    def read_sheet(self, path: Path) -> pd.DataFrame:
        return read_casme2_sheet(path)

    def clip_dir(self, row) -> Path:
        if self.layout not in ("raw", "cropped"):
            raise DatasetError(f"casme2 layout must be 'raw' or 'cropped', got {self.layout!r}")
        top = "CASME2_RAW_selected" if self.layout == "raw" else "Cropped"
        return self.root / top / row.subject / row.clip


class SAMM(FrameTreeDataset):
    """SAMM (Davison et al., IEEE TAC 2018); see the module docstring for the layout."""

    name: ClassVar[str] = "samm"
    summary: ClassVar[str] = "SAMM frame folders + coding sheet (159 clips, 29 subjects, 200 fps); checks only"
    fps: ClassVar[int] = 200
    sheet_patterns = ("SAMM_micro_only.xlsx", "SAMM_Micro_FACS_Codes_v2.xlsx", "**/SAMM_*.xlsx")

    def read_sheet(self, path: Path) -> pd.DataFrame:
        return read_samm_sheet(path)

    def clip_dir(self, row) -> Path:
        nested = self.root / "SAMM"
        base = nested if nested.is_dir() else self.root
        return base / row.subject / row.clip


class SMICHS(FrameTreeDataset):
    """SMIC-HS (Li et al., FG 2013); see the module docstring for the layout."""

    name: ClassVar[str] = "smic-hs"
    summary: ClassVar[str] = "SMIC-HS frame folders (164 clips, 16 subjects, 100 fps); checks only"
    fps: ClassVar[int] = 100
    sheet_patterns = ("smic_apex.xlsx", "**/smic_apex.xlsx")
    _FOLDERS = {"negative": "negative", "positive": "positive", "surprise": "surprise"}

    def read_sheet(self, path: Path) -> pd.DataFrame:
        return read_smic_sheet(path)

    def clip_dir(self, row) -> Path:
        n = int(row.subject[1:])
        clip = f"s{n}_{row.clip.split('_', 1)[1]}"  # folders are unpadded: s3/micro/negative/s3_ne_22
        return self.root / "HS" / f"s{n}" / "micro" / self._FOLDERS[row.emotion] / clip
