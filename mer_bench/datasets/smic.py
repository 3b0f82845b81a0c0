"""SMIC (HS, VIS, NIR): its coding-sheet reader, folder layouts and loaders."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import ClassVar

import pandas as pd

from mer_bench.data import DatasetError
from mer_bench.datasets.frames import FrameTreeDataset, list_frames
from mer_bench.datasets.sheets import _finish, _frames, _need, _nonempty, _read_excel

__all__ = ["SMICHS", "SMICVIS", "SMICNIR", "read_smic_sheet", "SMIC_LABELS"]


SMIC_LABELS = {"0": "negative", "1": "positive", "2": "surprise"}

def read_smic_sheet(path: str | Path, smic_apex: str = "middle", fixes: bool = True) -> pd.DataFrame:
    """SMIC-HS sheet ``smic_apex.xlsx`` (labels 0/1/2 = negative/positive/surprise; absolute frame
    numbers of the SMIC-E recordings). ``smic_apex``: ``"middle"`` (default) or ``"sheet"``.

    Raises:
        DatasetError: missing columns, an unknown label, a bad frame cell, or a bad ``smic_apex``.
    """
    from mer_bench.datasets.megc2019 import canonical_clip, canonical_subject

    if smic_apex not in ("middle", "sheet"):
        raise DatasetError(f"smic_apex must be 'middle' or 'sheet', got {smic_apex!r}")
    path = Path(path)
    df = _read_excel(path, sheet_name=0)
    _need(df, ["subject", "clip", "label", "onset_frame", "apex_frame", "offset_frame"], path)
    df = _nonempty(df.dropna(subset=["subject", "clip"]), path)
    bad = sorted(set(df["label"].str.strip()) - set(SMIC_LABELS))
    if bad:
        raise DatasetError(f"{path}: unknown labels {bad}; SMIC uses 0 negative, 1 positive, 2 surprise")
    onset = _frames(df["onset_frame"], path, "onset_frame", 2)
    offset = _frames(df["offset_frame"], path, "offset_frame", 2)
    apex = _frames(df["apex_frame"], path, "apex_frame", 2) if smic_apex == "sheet" else onset + (offset - onset) // 2
    return _finish({
        "dataset": "smic",
        "subject": [canonical_subject("smic", s) for s in df["subject"]],
        "clip": [canonical_clip("smic", c) for c in df["clip"]],
        "onset": onset, "apex": apex, "offset": offset,
        "emotion": df["label"].str.strip().map(SMIC_LABELS),
        "aus": "", "objective_class": pd.NA,
    }, path, f"apex:{smic_apex}", "smic", fixes)


class SMICHS(FrameTreeDataset):
    """SMIC-HS (Li et al., FG 2013); see the module docstring for the layout.

    With ``smic_apex.xlsx`` in the data root (or ``sheet=``), onset/offset come from it; without
    it, the clip list is read from the tree: the class is the folder, onset and offset are the
    first and last frame numbers on disk, and the apex is the middle frame (SMIC has no apex).
    """

    name: ClassVar[str] = "smic-hs"
    summary: ClassVar[str] = ("SMIC-HS frame folders (164 clips, 16 subjects, 100 fps), with smic_apex.xlsx if "
                              "present; needs --data-root")
    fps: ClassVar[int] = 100
    scheme_key = "smic"
    default_classes = "3class"
    sheet_patterns = ("smic_apex.xlsx", "**/smic_apex.xlsx")
    modality: ClassVar[str] = "HS"
    _FOLDERS = {"negative": "negative", "positive": "positive", "surprise": "surprise"}

    def read_sheet(self, path: Path) -> pd.DataFrame:
        return read_smic_sheet(path)

    def sheet_path(self) -> Path:
        try:
            return super().sheet_path()
        except DatasetError:
            return self.root / self.modality  # no sheet: the tree is the list (see the class docstring)

    def sheet_table(self) -> pd.DataFrame:
        if self._sheet_table is None and not self.sheet_path().is_file():
            self._sheet_table = self._scan_tree(self.sheet_path())
        return super().sheet_table()

    def _scan_tree(self, top: Path) -> pd.DataFrame:
        from mer_bench.datasets.megc2019 import canonical_clip, canonical_subject

        rows = []
        subjects = sorted(p for p in top.iterdir() if p.is_dir() and re.fullmatch(r"s\d+", p.name)) \
            if top.is_dir() else []
        for sub in subjects:
            for emotion in self._FOLDERS:
                for clip in sorted((sub / "micro" / emotion).glob("*")) if (sub / "micro" / emotion).is_dir() else []:
                    numbers = [n for n, _ in list_frames(clip)] if clip.is_dir() else []
                    onset, offset = (numbers[0], numbers[-1]) if numbers else (pd.NA, pd.NA)
                    rows.append({"dataset": "smic", "subject": canonical_subject("smic", sub.name),
                                 "clip": canonical_clip("smic", clip.name), "onset": onset,
                                 "apex": pd.NA if not numbers else onset + (offset - onset) // 2, "offset": offset,
                                 "emotion": emotion, "aus": "", "objective_class": pd.NA,
                                 "sheet": f"{top.name}/ (folder tree)", "sheet_version": "tree"})
        if not rows:
            raise DatasetError(f"no smic_apex.xlsx and no clips under {top}/s*/micro/<class>/")
        df = pd.DataFrame(rows)
        for col in ("onset", "apex", "offset"):
            df[col] = df[col].astype("Int64")
        df.attrs["fixes"] = []
        return df

    def fingerprint(self) -> str:
        if not self.sheet_path().is_file():
            h = hashlib.sha256(repr(self.sheet_table()[["subject", "clip", "onset", "offset"]].values.tolist())
                               .encode())
            h.update(repr(sorted(self.options().items())).encode())
            return h.hexdigest()[:16]
        return super().fingerprint()

    def clip_dir(self, row) -> Path:
        n = int(row.subject[1:])
        clip = f"s{n}_{row.clip.split('_', 1)[1]}"  # folders are unpadded: s3/micro/negative/s3_ne_22
        return self.root / self.modality / f"s{n}" / "micro" / self._FOLDERS[row.emotion] / clip

class SMICVIS(SMICHS):
    """SMIC-VIS (visual camera, 25 fps): the same layout under ``VIS/``; no sheet, the tree is the list."""

    name: ClassVar[str] = "smic-vis"
    summary: ClassVar[str] = "SMIC-VIS frame folders (71 clips, 8 subjects, 25 fps); needs --data-root"
    fps: ClassVar[int] = 25
    modality: ClassVar[str] = "VIS"
    sheet_patterns = ()

class SMICNIR(SMICHS):
    """SMIC-NIR (near-infrared camera, 25 fps): the same layout under ``NIR/``."""

    name: ClassVar[str] = "smic-nir"
    summary: ClassVar[str] = "SMIC-NIR frame folders (71 clips, 8 subjects, 25 fps); needs --data-root"
    fps: ClassVar[int] = 25
    modality: ClassVar[str] = "NIR"
    sheet_patterns = ()
