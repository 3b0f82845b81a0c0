"""CASME (I), CASME II (raw and cropped releases) and CAS(ME)^2: their coding-sheet readers, folder
layouts and loaders (see :mod:`mer_bench.datasets.frames` for the common loader and
:mod:`mer_bench.datasets.sheets` for the common sheet rules and the annotation fixes)."""

from __future__ import annotations

import glob
import re
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from mer_bench.data import DatasetError
from mer_bench.datasets.frames import FrameTreeDataset
from mer_bench.datasets.sheets import _finish, _frames, _need, _nonempty, _read_excel, _subjects

__all__ = ["CASME", "CASME2", "CASME2Cropped", "CASMESq", "read_casme_sheet", "read_casme2_sheet",
           "read_casme_sq_sheet", "CASME_SQ_COLUMNS"]


def read_casme2_sheet(path: str | Path, fixes: bool = True) -> pd.DataFrame:
    """CASME II coding sheet, 2014 (7 columns) or 2019 (10 columns, with objective classes).

    Raises:
        DatasetError: a missing file, missing columns, or a frame cell that is not a number.
    """
    path = Path(path)
    df = _read_excel(path, sheet_name=0)
    _need(df, ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units",
               "Estimated Emotion"], path)
    version = "2019" if "Objective Classes" in df.columns else "2014"
    df = _nonempty(df.dropna(subset=["Subject", "Filename"]), path)
    return _finish({
        "dataset": "casme2",
        "subject": _subjects(df["Subject"], path, "Subject", 2, "sub{:02d}"),
        "clip": df["Filename"].str.strip(),
        "onset": _frames(df["OnsetFrame"], path, "OnsetFrame", 2),
        "apex": _frames(df["ApexFrame"], path, "ApexFrame", 2),
        "offset": _frames(df["OffsetFrame"], path, "OffsetFrame", 2),
        "emotion": df["Estimated Emotion"].str.strip().str.lower(),
        "aus": df["Action Units"].fillna("").str.strip(),
        "objective_class": df["Objective Classes"].str.strip() if version == "2019" else pd.NA,
    }, path, version, "casme2", fixes)

def read_casme_sheet(path: str | Path, fixes: bool = True) -> pd.DataFrame:
    """CASME (I) sheet (MEB's ``casme.xlsx``, MEB ``meb/datasets``): columns ``Subject, Filename,
    OnsetF, ApexF1, ApexF2, OffsetF, Emotion`` plus an AU column (``AU``/``AUs``/``Action Units``),
    blank columns ignored. The apex is ``ApexF1`` (as MEB); where it is blank the middle frame
    ``onset + (offset - onset) // 2`` is used and the clip is listed in ``table.attrs["apex_filled"]``.
    MEB's CASME row fixes are row indices into a sheet that is not published, so none are applied:
    ``mer-bench data check`` reports what remains.

    Raises:
        DatasetError: a missing file, missing columns, or a bad frame cell.
    """
    path = Path(path)
    df = _read_excel(path, sheet_name=0)
    _need(df, ["Subject", "Filename", "OnsetF", "ApexF1", "OffsetF", "Emotion"], path)
    df = _nonempty(df.dropna(subset=["Subject", "Filename"]), path)
    au_col = next((c for c in df.columns if str(c).strip().lower() in ("au", "aus", "action units", "action unit")),
                  None)
    onset = _frames(df["OnsetF"], path, "OnsetF", 2)
    offset = _frames(df["OffsetF"], path, "OffsetF", 2)
    apex = _frames(df["ApexF1"], path, "ApexF1", 2)
    blank = apex.isna() & onset.notna() & offset.notna()
    apex = apex.where(~blank, onset + (offset - onset) // 2)
    subject = _subjects(df["Subject"], path, "Subject", 2, "sub{:02d}")
    out = _finish({
        "dataset": "casme",
        "subject": subject,
        "clip": df["Filename"].str.strip(),
        "onset": onset, "apex": apex, "offset": offset,
        "emotion": df["Emotion"].str.strip().str.lower(),
        "aus": df[au_col].fillna("").str.strip() if au_col is not None else "",
        "objective_class": pd.NA,
    }, path, "casme", "casme", fixes)
    out.attrs["apex_filled"] = [f"{s}/{c}" for s, c, b in zip(out["subject"], out["clip"], blank) if b]
    return out

CASME_SQ_COLUMNS = ("participant", "clip", "onset", "apex", "offset", "aus", "emotion", "expression_type",
                    "self_report")

def read_casme_sq_sheet(path: str | Path, expressions: str = "micro", fixes: bool = True) -> pd.DataFrame:
    """CAS(ME)^2 workbook ``CAS(ME)^2code_final.xlsx`` (Qu et al., IEEE TAC 2018).

    The data sheet (the first sheet not named ``naming rule*``) has no header; its columns are
    :data:`CASME_SQ_COLUMNS`: participant number, ``<stimulus>_<n>`` (e.g. ``anger1_1``), onset,
    apex, offset, AUs, estimated emotion, expression type (``micro-expression`` /
    ``macro-expression``) and self-reported emotion. A header row, if one was added, is skipped.
    ``naming rule1`` maps the participant number (column C) to the subject's folder number
    (column A, ``15`` -> folder ``s15``); ``naming rule2`` maps the stimulus (column B,
    ``anger1``) to its video code (column A, ``401`` -> ``0401``). Frames of a clip lie in
    ``rawpic/s15/15_0401*/img<N>.jpg``.

    Extra columns: ``video`` (``15_0401``), ``stimulus`` (the stimulus' emotion: ``anger``,
    ``disgust`` or ``happy``; the MERANet paper's 3 classes, 22/17/18 micro-expressions),
    ``expression_type`` and ``self_report``.

    Args:
        expressions: ``"micro"`` (default; the MER datasets use only these), ``"macro"`` or ``"all"``.

    Raises:
        DatasetError: a missing sheet, too few columns, a bad frame cell, a participant or stimulus
            that the naming rules do not list (named with its sheet row).
    """

    path = Path(path)
    if expressions not in ("micro", "macro", "all"):
        raise DatasetError(f"expressions must be 'micro', 'macro' or 'all', got {expressions!r}")
    if not path.is_file():
        raise DatasetError(f"coding sheet {path} not found")
    try:
        names = pd.ExcelFile(path).sheet_names
    except Exception as exc:
        raise DatasetError(f"cannot read coding sheet {path}: {exc}") from None
    rules = {n.strip().lower().replace(" ", ""): n for n in names}
    if "namingrule1" not in rules or "namingrule2" not in rules:
        raise DatasetError(f"{path}: no 'naming rule1' / 'naming rule2' sheets (found {names}): not a CAS(ME)^2 "
                           f"workbook?")
    data_sheet = next(n for n in names if not n.strip().lower().startswith("naming rule"))
    df = _read_excel(path, sheet_name=data_sheet, header=None)
    if df.shape[1] < len(CASME_SQ_COLUMNS):
        raise DatasetError(f"{path}, sheet {data_sheet!r}: {df.shape[1]} columns, expected {len(CASME_SQ_COLUMNS)} "
                           f"({', '.join(CASME_SQ_COLUMNS)})")
    df = df.iloc[:, :len(CASME_SQ_COLUMNS)]
    df.columns = list(CASME_SQ_COLUMNS)
    if len(df) and not str(df["onset"].iat[0]).strip().replace(".", "", 1).isdigit():
        df = df.iloc[1:]  # a header row someone added
    df = _nonempty(df.dropna(subset=["participant", "clip"]), path)

    def _rule(sheet: str, key_col: int, value_col: int) -> dict[str, str]:
        r = _read_excel(path, sheet_name=rules[sheet], header=None)
        out = {}
        for row in r.itertuples(index=False):
            if len(row) > max(key_col, value_col) and not pd.isna(row[key_col]) and not pd.isna(row[value_col]):
                out[str(row[key_col]).strip().removesuffix(".0")] = str(row[value_col]).strip().removesuffix(".0")
        return out

    folder_of = {k: re.sub(r"\D", "", v) for k, v in _rule("namingrule1", 2, 0).items()}
    code_of = _rule("namingrule2", 1, 0)
    subjects, videos, stimuli = [], [], []
    for i, (p, clip) in enumerate(zip(df["participant"], df["clip"])):
        row = df.index[i] + 1
        p = str(p).strip().removesuffix(".0")
        clip = str(clip).strip()
        stim = clip.rsplit("_", 1)[0]
        if p not in folder_of or not folder_of[p]:
            raise DatasetError(f"{path}, sheet {data_sheet!r} row {row}: participant {p!r} is not in 'naming rule1'")
        if stim not in code_of:
            raise DatasetError(f"{path}, sheet {data_sheet!r} row {row}: stimulus {stim!r} (from {clip!r}) is not in "
                               f"'naming rule2'")
        n = int(folder_of[p])
        subjects.append(f"s{n:02d}")
        videos.append(f"{n:02d}_{int(code_of[stim]):04d}")
        stimuli.append(re.sub(r"\d+$", "", stim).lower())
    kind = df["expression_type"].fillna("").str.strip().str.lower()
    keep = pd.Series(True, index=df.index) if expressions == "all" else kind.str.startswith(expressions)
    table = _finish({
        "dataset": "casme^2",
        "subject": subjects, "clip": df["clip"].str.strip(),
        "onset": _frames(df["onset"], path, "onset (column C)", None),
        "apex": _frames(df["apex"], path, "apex (column D)", None),
        "offset": _frames(df["offset"], path, "offset (column E)", None),
        "emotion": df["emotion"].fillna("").str.strip().str.lower(),
        "aus": df["aus"].fillna("").astype(str).str.strip(),
        "objective_class": pd.NA,
        "video": videos, "stimulus": stimuli, "expression_type": kind, "self_report": df["self_report"],
    }, path, f"code_final:{expressions}", "casme^2", fixes)
    attrs = dict(table.attrs)
    table = table[keep.to_numpy()].reset_index(drop=True)
    table.attrs.update(attrs)
    return table


class CASME(FrameTreeDataset):
    """CASME (I) (Yan et al., FG 2013): 60 fps; sheet ``casme.xlsx`` (MEB's),
    frames ``CASME_raw_selected/sub01/EP01_5/EP01_5-1.jpg`` or, with ``layout=cropped``,
    ``Cropped/sub01/EP01_5/reg_EP01_5-1.jpg`` (frame numbers may be zero-padded). Class schemes
    ``8class`` (default) and ``meranet3`` (disgust, repression, tense)."""

    name: ClassVar[str] = "casme"
    summary: ClassVar[str] = "CASME (I) frame folders + casme.xlsx (195 MEs, 19 subjects, 60 fps); needs --data-root"
    fps: ClassVar[int] = 60
    sheet_patterns = ("casme.xlsx", "CASME*.xlsx", "**/casme.xlsx")
    scheme_key = "casme"
    default_classes = "8class"
    layouts: ClassVar[dict[str, str]] = {"raw": "CASME_raw_selected", "cropped": "Cropped"}
    default_layout: ClassVar[str] = "raw"

    def __init__(self, *args: Any, layout: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.layout = layout or self.default_layout
        if self.layout not in self.layouts:
            raise DatasetError(f"{self.name}: layout must be one of {', '.join(self.layouts)}, got {self.layout!r}")

    def options(self) -> dict[str, Any]:
        return {**super().options(), "layout": self.layout}

    def read_sheet(self, path: Path) -> pd.DataFrame:
        return read_casme_sheet(path)

    def clip_dir(self, row) -> Path:
        return self.root / self.layouts[self.layout] / row.subject / row.clip

class CASME2(CASME):
    """CASME II (Yan et al., PLoS ONE 2014); see the module docstring for the layout.

    Extra option ``layout``: ``"raw"`` (``CASME2_RAW_selected``) or ``"cropped"`` (``Cropped``).
    """

    name: ClassVar[str] = "casme2"
    summary: ClassVar[str] = ("CASME II frame folders + coding sheet (255 clips, 26 subjects, 200 fps); "
                              "needs --data-root")
    fps: ClassVar[int] = 200
    sheet_patterns = ("CASME2-coding-20140508.xlsx", "CASME2-coding-*.xlsx", "**/CASME2-coding-*.xlsx")
    scheme_key = "casme2"
    default_classes = "5class"
    layouts: ClassVar[dict[str, str]] = {"raw": "CASME2_RAW_selected", "cropped": "Cropped"}

    def read_sheet(self, path: Path) -> pd.DataFrame:
        return read_casme2_sheet(path)

class CASME2Cropped(CASME2):
    """CASME II's official cropped and aligned release: ``Cropped/sub01/EP02_01f/reg_img46.jpg``
    (the same sheet and frame numbers as the raw release; faces already cropped, so ``face_crop``
    is off by default). The same as ``casme2`` with ``layout=cropped, face_crop=False``."""

    name: ClassVar[str] = "casme2-cropped"
    summary: ClassVar[str] = ("CASME II official cropped frames (Cropped/sub01/EP02_01f/reg_img46.jpg); "
                              "needs --data-root")
    default_layout: ClassVar[str] = "cropped"

    def __init__(self, *args: Any, face_crop: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, face_crop=face_crop, **kwargs)

class CASMESq(CASME):
    """CAS(ME)^2 (Qu et al., IEEE TAC 2018): 30 fps; workbook ``CAS(ME)^2code_final.xlsx`` (see
    :func:`read_casme_sq_sheet`); frames
    ``rawpic/s15/15_0401<name>/img<N>.jpg`` (``layout=cropped``: ``cropped/...``). Only
    micro-expressions by default (option ``expressions``: micro, macro, all). Class schemes
    ``4class`` (the estimated emotion: negative, positive, surprise, others; default) and
    ``meranet3`` (the eliciting video's emotion: happiness, anger, disgust)."""

    name: ClassVar[str] = "casme^2"
    summary: ClassVar[str] = ("CAS(ME)^2 frame folders + CAS(ME)^2code_final.xlsx (57 MEs, 22 subjects, 30 fps); "
                              "needs --data-root")
    fps: ClassVar[int] = 30
    sheet_patterns = ("CAS(ME)^2code_final*.xlsx", "CAS(ME)*code*.xlsx", "**/CAS(ME)*code*.xlsx")
    scheme_key = "casme^2"
    default_classes = "4class"
    layouts: ClassVar[dict[str, str]] = {"raw": "rawpic", "cropped": "cropped"}

    def __init__(self, *args: Any, expressions: str = "micro", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.expressions = expressions

    def options(self) -> dict[str, Any]:
        opts = super().options()
        return opts if self.expressions == "micro" else {**opts, "expressions": self.expressions}

    def read_sheet(self, path: Path) -> pd.DataFrame:
        return read_casme_sq_sheet(path, expressions=self.expressions)

    def clip_dir(self, row) -> Path:
        top = self.root / self.layouts[self.layout] / row.subject
        video = self.sheet_table().set_index(["subject", "clip"]).at[(row.subject, row.clip), "video"] \
            if not hasattr(row, "video") else row.video
        found = sorted(top.glob(f"{glob.escape(video)}*")) if top.is_dir() else []
        return found[0] if found else top / video
