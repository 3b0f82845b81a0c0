"""Readers of the official coding spreadsheets, onto one common table.

Every reader returns one row per clip with the columns of :data:`SHEET_COLUMNS`: ``dataset``,
``subject`` and ``clip`` (canonical names, field notes 2.7: CASME II ``sub01``, SAMM ``006``,
SMIC ``s01`` / ``s01_ne_01``), ``onset``, ``apex``, ``offset`` (frame numbers, nullable ints),
``emotion`` (lower case), ``aus`` (the FACS string as written), ``objective_class`` (where the
sheet has one), ``sheet`` (file name) and ``sheet_version``. Cells are read as text, so
subjects such as ``'01'`` keep their form and no frame number passes through a float.

Known annotation defects are corrected from ``data/annotation_fixes.csv``, kept as data: one row
per fix with the clip's natural key, the field, the old and the new value, the reason and the
source. A fix is applied only where the sheet holds its *old* value; a sheet that already holds the
new value (a later version) is left alone; any other value raises, so a sheet version nobody
has checked fails loudly instead of being "fixed" blindly; a sheet without the clip is left
alone. Applied fixes are listed in ``table.attrs["fixes"]``.

Sources: CASME II (Yan et al., PLoS ONE 2014) ``CASME2-coding-20140508.xlsx`` and
``CASME2-coding-20190701.xlsx``; SAMM (Davison et al., IEEE TAC 2018)
``SAMM_Micro_FACS_Codes_v2.xlsx`` (header on sheet row 14) and ``SAMM_micro_only.xlsx``;
SMIC (Li et al., FG 2013) ``smic_apex.xlsx``; CAS(ME)^3 part A (Li et al., IEEE TPAMI 2023)
``casme3_table.xlsx`` (sheet ``label``; several MEs share a task video, so the clip id is
``<task>_<onset>``, e.g. ``b_166``; emotion ``Others`` is lower-cased).

SMIC has no official apex: by default the apex is the middle frame ``onset + (offset - onset) // 2``
(MEB's rule); ``smic_apex="sheet"`` keeps the third-party apex of ``smic_apex.xlsx``. Rows without
an offset then have no apex.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd

from mer_bench.data import DatasetError

__all__ = ["SHEET_COLUMNS", "read_coding_sheet", "read_casme2_sheet", "read_samm_sheet", "read_smic_sheet",
           "read_casme3_sheet",
           "load_fixes", "apply_fixes", "sheet_problems"]

SHEET_COLUMNS = ("dataset", "subject", "clip", "onset", "apex", "offset", "emotion", "aus", "objective_class",
                 "sheet", "sheet_version")
FIXES_FILE = Path(__file__).parent / "data" / "annotation_fixes.csv"
SMIC_LABELS = {"0": "negative", "1": "positive", "2": "surprise"}


def _read_excel(path: Path, **kw) -> pd.DataFrame:
    if not path.is_file():
        raise DatasetError(f"coding sheet {path} not found")
    try:
        return pd.read_excel(path, dtype=str, **kw)
    except Exception as exc:  # openpyxl raises many types on a damaged file
        raise DatasetError(f"cannot read coding sheet {path}: {exc}") from None


def _need(df: pd.DataFrame, cols: list[str], path: Path, header_row: int = 1) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DatasetError(f"{path}: header (sheet row {header_row}) lacks columns {missing}; "
                           f"found {[str(c) for c in df.columns]}")


def _frames(values: pd.Series, path: Path, column: str, offset_row: int) -> pd.Series:
    """Text cells to nullable ints; '/' or blank -> NA; anything else that is not an int raises."""
    out = []
    for i, v in enumerate(values):
        s = "" if pd.isna(v) else str(v).strip()
        if s in ("", "/"):
            out.append(pd.NA)
            continue
        try:
            f = float(s)
        except ValueError:
            raise DatasetError(f"{path}, sheet row {i + offset_row}: {column} is {s!r}, not a frame number") from None
        if f != int(f):
            raise DatasetError(f"{path}, sheet row {i + offset_row}: {column} is {s!r}, not a whole frame number")
        out.append(int(f))
    return pd.Series(out, index=values.index, dtype="Int64")


def _finish(rows: dict, path: Path, version: str, dataset: str, fixes: bool) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    df["sheet"] = path.name
    df["sheet_version"] = version
    df = df[list(SHEET_COLUMNS)].reset_index(drop=True)
    dup = df[df.duplicated(["subject", "clip"], keep=False)]
    if len(dup):
        raise DatasetError(f"{path}: clips listed twice: {sorted(set(dup['subject'] + '/' + dup['clip']))[:5]}")
    df.attrs["fixes"] = []
    return apply_fixes(df, dataset) if fixes else df


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
    df = df.dropna(subset=["Subject", "Filename"])
    return _finish({
        "dataset": "casme2",
        "subject": [f"sub{int(s):02d}" for s in df["Subject"]],
        "clip": df["Filename"].str.strip(),
        "onset": _frames(df["OnsetFrame"], path, "OnsetFrame", 2),
        "apex": _frames(df["ApexFrame"], path, "ApexFrame", 2),
        "offset": _frames(df["OffsetFrame"], path, "OffsetFrame", 2),
        "emotion": df["Estimated Emotion"].str.strip().str.lower(),
        "aus": df["Action Units"].fillna("").str.strip(),
        "objective_class": df["Objective Classes"].str.strip() if version == "2019" else pd.NA,
    }, path, version, "casme2", fixes)


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
    df = df.dropna(subset=["Subject", "Filename"])
    version = "v2" if header > 0 else "micro_only"
    return _finish({
        "dataset": "samm",
        "subject": [f"{int(s):03d}" for s in df["Subject"]],
        "clip": df["Filename"].str.strip(),
        "onset": _frames(df["Onset Frame"], path, "Onset Frame", header + 2),
        "apex": _frames(df["Apex Frame"], path, "Apex Frame", header + 2),
        "offset": _frames(df["Offset Frame"], path, "Offset Frame", header + 2),
        "emotion": df["Estimated Emotion"].str.strip().str.lower(),
        "aus": df["Action Units"].fillna("").str.strip(),
        "objective_class": df.get("Objective Classes", pd.Series(pd.NA, index=df.index)),
    }, path, version, "samm", fixes)


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
    df = df.dropna(subset=["subject", "clip"])
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


def read_casme3_sheet(path: str | Path, fixes: bool = True) -> pd.DataFrame:
    """CAS(ME)^3 part A sheet ``casme3_table.xlsx`` (every cell text; sheet ``label``).

    Raises:
        DatasetError: missing columns or a bad frame cell.
    """
    path = Path(path)
    df = _read_excel(path, sheet_name="label")
    _need(df, ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "emotion"], path)
    df = df.dropna(subset=["Subject", "Filename"])
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


_READERS = {"casme2": read_casme2_sheet, "samm": read_samm_sheet, "smic": read_smic_sheet,
            "casme3": read_casme3_sheet}


def read_coding_sheet(dataset: str, path: str | Path, **kw) -> pd.DataFrame:
    """Dispatch to the reader of ``dataset`` (``casme2``, ``samm``, ``smic``).

    Raises:
        DatasetError: an unknown dataset, or what the reader raises.
    """
    if dataset not in _READERS:
        raise DatasetError(f"no coding-sheet reader for {dataset!r}; known: {', '.join(_READERS)}")
    return _READERS[dataset](path, **kw)


def load_fixes(path: str | Path = FIXES_FILE) -> list[dict[str, str]]:
    """The fix table (see the module docstring); every row must give a reason and a source."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for i, r in enumerate(rows, start=2):
        if not r.get("reason") or not r.get("source"):
            raise DatasetError(f"{path}, line {i}: every fix needs a reason and a source")
    return rows


def apply_fixes(table: pd.DataFrame, dataset: str, fixes: list[dict[str, str]] | None = None) -> pd.DataFrame:
    """Apply the fixes of ``dataset`` to a sheet table (copy); see the module docstring.

    Raises:
        DatasetError: a fix whose field holds neither the old nor the new value (a fix whose clip is
            absent is skipped).
    """
    table = table.copy()
    table.attrs["fixes"] = list(table.attrs.get("fixes", []))
    for fix in fixes if fixes is not None else load_fixes():
        if fix["dataset"] != dataset:
            continue
        hit = (table["subject"] == fix["subject"]) & (table["clip"] == fix["clip"])
        if not hit.any():
            continue  # a sheet without this clip (a subset) needs no fix
        field = fix["field"]
        current = table.loc[hit, field].iat[0]
        cur = "/" if pd.isna(current) else str(current)
        if cur == fix["new"]:
            continue  # this sheet version already holds the corrected value
        if cur != fix["old"]:
            raise DatasetError(f"annotation fix for {dataset}/{fix['subject']}/{fix['clip']} expects {field} "
                               f"{fix['old']!r} (or the corrected {fix['new']!r}) but the sheet has {cur!r}: an "
                               f"unchecked sheet version? ({fix['source']})")
        value = int(fix["new"]) if field in ("onset", "apex", "offset") else fix["new"]
        table.loc[hit, field] = value
        table.attrs["fixes"].append({**fix})
    return table


def sheet_problems(table: pd.DataFrame) -> list[str]:
    """Every remaining annotation problem, one line each: missing frame numbers, onset after
    offset, apex outside [onset, offset]."""
    out = []
    for r in table.itertuples():
        key = f"{r.dataset}/{r.subject}/{r.clip}"
        missing = [f for f in ("onset", "apex", "offset") if pd.isna(getattr(r, f))]
        if missing:
            out.append(f"{key}: no {' / '.join(missing)} frame")
            continue
        if r.onset > r.offset:
            out.append(f"{key}: onset {r.onset} after offset {r.offset}")
        elif not r.onset <= r.apex <= r.offset:
            out.append(f"{key}: apex {r.apex} outside [onset {r.onset}, offset {r.offset}]")
    return out
