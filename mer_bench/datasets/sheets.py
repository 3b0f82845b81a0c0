"""The rules every reader of an official coding spreadsheet follows, onto one common table, and
the annotation fixes. The readers live with their database (:mod:`~mer_bench.datasets.casme`,
:mod:`~mer_bench.datasets.samm`, :mod:`~mer_bench.datasets.smic`, :mod:`~mer_bench.datasets.casme3`);
:func:`mer_bench.datasets.readers.read_coding_sheet` picks one by name.

Every reader returns one row per clip with the columns of :data:`SHEET_COLUMNS`: ``dataset``,
``subject`` and ``clip`` (canonical names, as the MEGC 2019 list writes them: CASME II ``sub01``, SAMM ``006``,
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

__all__ = ["SHEET_COLUMNS", "load_fixes", "apply_fixes", "sheet_problems"]

SHEET_COLUMNS = ("dataset", "subject", "clip", "onset", "apex", "offset", "emotion", "aus", "objective_class",
                 "sheet", "sheet_version")

FIXES_FILE = Path(__file__).parent / "data" / "annotation_fixes.csv"

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

def _frames(values: pd.Series, path: Path, column: str, offset_row: int | None) -> pd.Series:
    """Text cells to nullable ints; '/' or blank -> NA; anything else that is not an int raises.
    Error rows are ``position + offset_row``, or ``index + 1`` when ``offset_row`` is None (a sheet
    read with ``header=None``)."""
    out = []
    rows = (values.index + 1) if offset_row is None else range(offset_row, offset_row + len(values))
    for i, v in zip(rows, values):
        s = "" if pd.isna(v) else str(v).strip()
        if s in ("", "/"):
            out.append(pd.NA)
            continue
        try:
            f = float(s)
        except ValueError:
            raise DatasetError(f"{path}, sheet row {i}: {column} is {s!r}, not a frame number") from None
        if f != int(f):
            raise DatasetError(f"{path}, sheet row {i}: {column} is {s!r}, not a whole frame number")
        out.append(int(f))
    return pd.Series(out, index=values.index, dtype="Int64")

def _nonempty(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    """``df`` when it has clips; a sheet with a header and no rows is a clear error."""
    if not len(df):
        raise DatasetError(f"{path}: the coding sheet has a header but no clip rows")
    return df

def _subjects(values: pd.Series, path: Path, column: str, first_row: int, fmt: str) -> list[str]:
    """Subject cells (``1``, ``'01'``, ``1.0``) to canonical names with ``fmt`` (``'sub{:02d}'``).
    ``first_row``: the sheet row of the frame's index 0 (errors name the row)."""
    out = []
    for i, v in zip(values.index, values):
        text = str(v).strip()
        try:
            number = float(text)
            if number != int(number) or number < 0:
                raise ValueError
        except (ValueError, OverflowError):
            raise DatasetError(f"{path}, sheet row {i + first_row}: {column} is {text!r}, not a subject number") \
                from None
        out.append(fmt.format(int(number)))
    return out

def _finish(rows: dict, path: Path, version: str, dataset: str, fixes: bool) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    df["sheet"] = path.name
    df["sheet_version"] = version
    extra = [c for c in df.columns if c not in SHEET_COLUMNS]  # dataset-specific columns follow the common ones
    df = df[list(SHEET_COLUMNS) + extra].reset_index(drop=True)
    dup = df[df.duplicated(["subject", "clip"], keep=False)]
    if len(dup):
        raise DatasetError(f"{path}: clips listed twice: {sorted(set(dup['subject'] + '/' + dup['clip']))[:5]}")
    df.attrs["fixes"] = []
    return apply_fixes(df, dataset) if fixes else df

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
