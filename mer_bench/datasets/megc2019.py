"""The MEGC 2019 composite database (CDE) as distributed for STSTNet and HTNet: onset-to-apex
optical-flow images plus the official label file.

Source: See, Yap, Li, Hong, Wang, "MEGC 2019 -- the second facial micro-expressions grand
challenge", FG 2019 (the composite of SMIC-HS, CASME II and SAMM, 3 classes); flow images from
Liong et al., "Shallow triple stream three-dimensional CNN (STSTNet) for micro-expression
recognition", FG 2019 (TV-L1 between onset and apex, plus optical strain).

Data root layout (the folder given by ``--data-root``; see :mod:`mer_bench.data_roots` for the
environment variable and config file)::

    combined_3class_gt.csv           official list: db,subject,clip,label (no header); the source of truth
    flow/<subject>_<clip> .png       442 flow images, 28x28 RGB uint8 (note the space before .png)

The loader joins the two on normalised names (:func:`canonical_subject`, :func:`canonical_clip`:
CASME II ``sub01``, SAMM ``006`` (the label file says ``6``), SMIC ``s01`` and clip ``s01_ne_01``
(SMIC's own sheet says ``s1_ne_01``)), and checks the official composition: 442 clips,
68 subjects (SMIC 16, CASME II 24, SAMM 28), classes negative 250 / positive 109 / surprise 83.
Any missing or extra image is reported by name.

Representation ``"flow"``: float32 ``(N, 3, 28, 28)``, channels **u, v, strain** (the PNG's
R, G, B planes), each scaled to ``[0, 1]`` as ``uint8 / 255``. Every channel of every image was
min-max normalised to 0..255 per image by the distributors, so absolute flow magnitudes are lost.
(STSTNet's own code reads the PNGs with OpenCV, i.e. as B, G, R = strain, v, u, and feeds raw
0..255 values; the ``ststnet`` method rescales by 255.)
"""

from __future__ import annotations

import csv
import hashlib
import re
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from mer_bench.data import Dataset, DatasetError, validate_table
from mer_bench.data_roots import require_data_root

__all__ = ["MEGC2019Flow", "MEGC_CLASSES", "DATABASES", "DATABASE_NAMES", "canonical_subject", "canonical_clip",
           "read_label_file", "EXPECTED"]

#: class names of the MEGC 2019 composite, index = label of the official file
MEGC_CLASSES = ("negative", "positive", "surprise")
#: databases of the composite, in the order MEGC reports them, with their display names
DATABASES = ("smic", "casme2", "samm")
DATABASE_NAMES = {"smic": "SMIC", "casme2": "CASME II", "samm": "SAMM", "Full": "Full"}
#: the official composition (``combined_3class_gt.csv``): clips and subjects per database, clips per class
EXPECTED = {
    "clips": 442,
    "subjects": {"smic": 16, "casme2": 24, "samm": 28},
    "classes": {"negative": 250, "positive": 109, "surprise": 83},
}
LABEL_FILE = "combined_3class_gt.csv"
FLOW_DIR = "flow"


#: PIL modes a flow image must not have, in words (a single plane would be copied into u, v and strain)
FLOW_MODES = {"L": "8-bit grayscale", "LA": "8-bit grayscale with alpha", "I;16": "16-bit grayscale",
              "I;16B": "16-bit grayscale", "I;16L": "16-bit grayscale", "I": "32-bit integer grayscale",
              "F": "32-bit float grayscale", "1": "1-bit black and white", "P": "a palette image",
              "PA": "a palette image", "CMYK": "CMYK", "YCbCr": "YCbCr", "RGBX": "RGBX"}


def _sixteen_bit(im) -> bool:
    """Whether an unloaded PIL image stores 16 bits per channel (Pillow opens a 48-bit PNG as "RGB")."""
    raw = im.tile[0][3] if getattr(im, "tile", None) else ""
    raw = raw[0] if isinstance(raw, tuple) and raw else raw
    return ";16" in str(raw)


def canonical_subject(db: str, subject: str) -> str:
    """The canonical subject id: CASME II ``sub01``, SAMM ``006``, SMIC ``s01``.

    Accepts the variants found in the field's files (``1``, ``01``, ``sub1``; ``6``, ``006``;
    ``s1``, ``s01``, ``1``).

    Raises:
        ValueError: an unknown database or a subject that is not of the form ``[prefix]<number>``.
    """
    s = str(subject).strip()
    if db not in DATABASES:
        raise ValueError(f"unknown database {db!r}; the composite has {', '.join(DATABASES)}")
    m = re.fullmatch({"casme2": r"(?i)(?:sub)?0*(\d+)", "samm": r"0*(\d+)", "smic": r"(?i)s?0*(\d+)"}[db], s)
    if not m:
        raise ValueError(f"cannot read subject {subject!r} of {db}")
    n = int(m.group(1))
    return {"casme2": f"sub{n:02d}", "samm": f"{n:03d}", "smic": f"s{n:02d}"}[db]


def canonical_clip(db: str, clip: str) -> str:
    """The canonical clip id: SMIC clips get a two-digit subject (``s1_ne_01`` -> ``s01_ne_01``);
    CASME II (``EP02_01f``) and SAMM (``006_1_2``) clips are kept as they are."""
    c = str(clip).strip()
    if db == "smic":
        m = re.fullmatch(r"(?i)s0*(\d+)_(.+)", c)
        if m:
            return f"s{int(m.group(1)):02d}_{m.group(2)}"
    return c


def read_label_file(path: str | Path) -> pd.DataFrame:
    """Read the official ``combined_3class_gt.csv``: no header, ``db,subject,clip,label`` per line.

    Returns:
        A table in :data:`mer_bench.data.SCHEMA` order of the file (onset/apex/offset are ``-1``:
        the file does not give frames; ``emotion`` is the class name).

    Raises:
        DatasetError: a missing or unreadable file, or a line with a wrong column count, an unknown
            database, an unreadable subject, or a label outside 0/1/2; the message names the file
            and the line. A duplicate clip is reported with both line numbers.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"label file {path} not found")
    rows, seen = [], {}
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read label file {path}: {exc}") from None
    for lineno, rec in enumerate(csv.reader(text.splitlines()), start=1):
        if not rec or all(not f.strip() for f in rec):
            continue  # blank lines (the stray -2 variant of this file has some)
        where = f"{path}, line {lineno}"
        if len(rec) != 4:
            raise DatasetError(f"{where}: expected 4 columns db,subject,clip,label, got {len(rec)}: {','.join(rec)!r}")
        db, subject, clip, label = (f.strip() for f in rec)
        if db not in DATABASES:
            raise DatasetError(f"{where}: unknown database {db!r}; expected one of {', '.join(DATABASES)}")
        try:
            subject = canonical_subject(db, subject)
        except ValueError as exc:
            raise DatasetError(f"{where}: {exc}") from None
        if label not in ("0", "1", "2"):
            raise DatasetError(f"{where}: unknown label {label!r}; the MEGC classes are "
                               f"0 negative, 1 positive, 2 surprise")
        clip = canonical_clip(db, clip)
        key = (db, subject, clip)
        if key in seen:
            raise DatasetError(f"{where}: clip {db}/{subject}/{clip} is listed twice (also line {seen[key]})")
        seen[key] = lineno
        y = int(label)
        rows.append({"sample_id": f"{db}/{subject}/{clip}", "dataset": db, "subject": subject, "clip": clip,
                     "onset": -1, "apex": -1, "offset": -1, "emotion": MEGC_CLASSES[y], "aus": "", "label": y})
    if not rows:
        raise DatasetError(f"label file {path} has no rows")
    return pd.DataFrame(rows)


def _flow_key(name: str) -> tuple[str, str] | None:
    """``"006_006_1_2 .png"`` -> ``("006", "006_1_2")`` (subject, clip as written)."""
    stem = name[:-4].rstrip() if name.lower().endswith(".png") else None
    if not stem or "_" not in stem:
        return None
    subject, clip = stem.split("_", 1)
    return subject, clip


class MEGC2019Flow(Dataset):
    """The MEGC 2019 composite on its distributed onset-to-apex flow images; see the module docstring.

    Args:
        data_root: the distribution folder; ``None``: ``$MER_BENCH_DATA_MEGC2019_FLOW`` or the
            config file (:mod:`mer_bench.data_roots`).

    Raises (from :meth:`table`, before any run starts):
        DatasetError: no data root, a missing label file or flow folder, a malformed label
            file (file and line), a composition other than the official one, or missing, extra
            or unreadable images (by name).
    """

    name: ClassVar[str] = "megc2019-flow"
    summary: ClassVar[str] = ("MEGC 2019 composite (SMIC-HS + CASME II + SAMM, 442 clips, 68 subjects, 3 classes) "
                              "on its distributed 28x28 onset-apex flow images (u, v, strain); needs --data-root")
    classes: ClassVar[tuple[str, ...]] = MEGC_CLASSES
    representations: ClassVar[tuple[str, ...]] = ("flow",)
    sample_shapes: ClassVar[dict[str, tuple[int, ...]]] = {"flow": (3, 28, 28)}
    suggested_preset: ClassVar[str | None] = "fast"

    def __init__(self, data_root: str | None = None) -> None:
        self.data_root = data_root
        self._table: pd.DataFrame | None = None
        self._files: list[Path] | None = None
        self._flow: np.ndarray | None = None
        self._fingerprint: str | None = None

    def canonical_key(self, db: str, subject: str, clip: str) -> tuple[str, str, str]:
        return db, canonical_subject(db, subject), canonical_clip(db, clip)

    def options(self) -> dict[str, Any]:
        # the data root is not part of a run's identity: the fingerprint is (same data, same run)
        return {}

    @property
    def root(self) -> Path:
        """The resolved data root.

        Raises:
            DatasetError: none is given, or it is not a folder.
        """
        return require_data_root(self.name, self.data_root)

    def table(self) -> pd.DataFrame:
        if self._table is None:
            root = self.root
            table = read_label_file(root / LABEL_FILE)
            self._check_composition(table, root / LABEL_FILE)
            self._files = self._match_files(table, root / FLOW_DIR)
            self._table = validate_table(table, len(self.classes), where=str(root / LABEL_FILE))
        return self._table

    @staticmethod
    def _check_composition(table: pd.DataFrame, where: Path) -> None:
        problems = []
        if len(table) != EXPECTED["clips"]:
            problems.append(f"{len(table)} clips instead of {EXPECTED['clips']}")
        for db, n in EXPECTED["subjects"].items():
            got = table.loc[table["dataset"] == db, "subject"].nunique()
            if got != n:
                problems.append(f"{DATABASE_NAMES[db]} has {got} subjects instead of {n}")
        counts = table["emotion"].value_counts()
        for cls, n in EXPECTED["classes"].items():
            if int(counts.get(cls, 0)) != n:
                problems.append(f"{int(counts.get(cls, 0))} {cls} clips instead of {n}")
        if problems:
            raise DatasetError(f"{where} is not the official MEGC 2019 composite: {'; '.join(problems)}")

    @staticmethod
    def _match_files(table: pd.DataFrame, flow_dir: Path) -> list[Path]:
        if not flow_dir.is_dir():
            raise DatasetError(f"flow image folder {flow_dir} not found (expected {FLOW_DIR}/<subject>_<clip> .png)")
        wanted = set(zip(table["dataset"], table["subject"], table["clip"]))
        by_key: dict[tuple[str, str, str], Path] = {}
        extra = []
        for f in sorted(flow_dir.iterdir()):
            if f.name.startswith(".") or not f.is_file():
                continue
            parsed = _flow_key(f.name)
            key = None
            if parsed is not None:
                subj_raw, clip_raw = parsed
                for db in DATABASES:  # the (subject, clip) pair identifies the database
                    try:
                        candidate = (db, canonical_subject(db, subj_raw), canonical_clip(db, clip_raw))
                    except ValueError:
                        continue
                    if candidate in wanted:
                        key = candidate
                        break
            if key is None:
                extra.append(f.name)
            elif key in by_key:
                raise DatasetError(f"{flow_dir}: {by_key[key].name!r} and {f.name!r} are the same clip")
            else:
                by_key[key] = f
        files, missing = [], []
        for db, subj, clip in zip(table["dataset"], table["subject"], table["clip"]):
            f = by_key.pop((db, subj, clip), None)
            if f is None:
                missing.append(f"{subj}_{clip} .png")
            files.append(f)
        extra += [f.name for f in by_key.values()]
        if missing or extra:
            msg = [f"{flow_dir} does not match {LABEL_FILE}:"]
            if missing:
                msg.append(f"{len(missing)} missing image(s): {', '.join(repr(m) for m in missing[:20])}"
                           + (" ..." if len(missing) > 20 else ""))
            if extra:
                msg.append(f"; {len(extra)} image(s) not in the label file: {', '.join(repr(e) for e in extra[:20])}"
                           + (" ..." if len(extra) > 20 else ""))
            raise DatasetError(" ".join(msg))
        return files

    def _load_all(self) -> np.ndarray:
        if self._flow is None:
            from PIL import Image, UnidentifiedImageError

            self.table()
            out = np.empty((len(self._files), 3, 28, 28), np.float32)
            for i, f in enumerate(self._files):
                try:
                    with Image.open(f) as im:
                        if im.size != (28, 28):
                            raise DatasetError(f"{f}: flow image is {im.size[0]}x{im.size[1]}, expected 28x28")
                        if im.mode not in ("RGB", "RGBA") or _sixteen_bit(im):
                            kind = ("16-bit RGB" if im.mode in ("RGB", "RGBA")
                                    else FLOW_MODES.get(im.mode, f"PIL mode {im.mode!r}"))
                            raise DatasetError(f"{f}: flow image is {kind}; expected 8-bit RGB (u, v and optical "
                                               f"strain in the three channels, as the composite's release)")
                        arr = np.asarray(im.convert("RGB"), dtype=np.float32)
                except (OSError, UnidentifiedImageError) as exc:
                    raise DatasetError(f"cannot read flow image {f}: {exc}") from None
                out[i] = arr.transpose(2, 0, 1) / 255.0
            self._flow = out
        return self._flow

    def load(self, representation: str, index: np.ndarray) -> np.ndarray:
        if representation != "flow":
            raise DatasetError(f"{self.name} provides flow images only, not {representation!r}")
        return self._load_all()[np.asarray(index)]

    def fingerprint(self) -> str:
        """SHA-256 (16 hex) of the label file and every image's bytes, in table order."""
        if self._fingerprint is None:
            self.table()
            h = hashlib.sha256((self.root / LABEL_FILE).read_bytes())
            for f in self._files:
                h.update(f.name.encode())
                h.update(f.read_bytes())
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint
