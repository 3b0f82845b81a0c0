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

__all__ = ["SHEET_COLUMNS", "read_coding_sheet", "read_casme_sheet", "read_casme_sq_sheet", "read_casme2_sheet",
           "read_samm_sheet", "read_smic_sheet", "read_casme3_sheet", "load_fixes", "apply_fixes", "sheet_problems"]

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


def read_casme_sheet(path: str | Path, fixes: bool = True) -> pd.DataFrame:
    """CASME (I) sheet (MEB's ``casme.xlsx``; field notes 2.6): columns ``Subject, Filename,
    OnsetF, ApexF1, ApexF2, OffsetF, Emotion`` plus an AU column (``AU``/``AUs``/``Action Units``),
    blank columns ignored. The apex is ``ApexF1`` (as MEB); where it is blank the middle frame
    ``onset + (offset - onset) // 2`` is used and the clip is listed in ``table.attrs["apex_filled"]``.
    MEB's CASME row fixes cannot be keyed without the sheet (field notes 2.8), so none are applied:
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
    """CAS(ME)^2 workbook ``CAS(ME)^2code_final.xlsx`` (Qu et al., IEEE TAC 2018; field notes 2.6).

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
    import re

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
