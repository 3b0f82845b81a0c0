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

Landmarks (optional; HTNet's input): ``htnet_landmarks.csv`` in the data root (or the file given by
``--dataset-set landmarks=PATH``; ``landmarks=fixed`` ignores any file), one row per clip with
header ``dataset,sub,filename_o,detected,left_eye_x,left_eye_y,right_eye_x,right_eye_y,nose_x,nose_y,
mouth_left_x,mouth_left_y,mouth_right_x,mouth_right_y``: the clip named as in HTNet's CSV
(``dataset`` casme2 / smic / samm, ``sub`` and ``filename_o`` as in the flow image's name), whether
a face was detected (0/1), and five points as integer pixel coordinates in the 28 x 28 image
(x = column, y = row, 0..27). Anyone holding the apex face crops can make one with HTNet's step:
resize each crop to 28 x 28 (``cv2.INTER_AREA``), run facenet-pytorch ``MTCNN(margin=0,
image_size=28, select_largest=True, post_process=False).detect(..., landmarks=True)``, write the
five points, or :data:`mer_bench.preprocess.HTNET_FALLBACK_LANDMARKS` where no face is found.
Without a file every clip uses those fixed points (as CausalNet does). Coordinates are clamped to
[7, 21] as HTNet does (:func:`mer_bench.preprocess.clamp_landmarks`).

Representation ``"regions"``: float32 ``(N, 3, 28, 28)``: :func:`mer_bench.preprocess.htnet_regions`
of the flow images at the clips' landmarks. Which landmarks (the file's name and hash, or
``fixed``) is part of the identity of runs on this representation (:meth:`MEGC2019Flow.fingerprint_for`),
not of runs on ``flow``.

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
           "read_label_file", "read_landmarks", "EXPECTED", "LANDMARKS_FILE"]

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
LANDMARKS_FILE = "htnet_landmarks.csv"
#: the landmarks file's columns (module docstring)
LANDMARK_COLUMNS = ("dataset", "sub", "filename_o", "detected", "left_eye_x", "left_eye_y", "right_eye_x",
                    "right_eye_y", "nose_x", "nose_y", "mouth_left_x", "mouth_left_y", "mouth_right_x",
                    "mouth_right_y")


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
    representations: ClassVar[tuple[str, ...]] = ("flow", "regions")
    sample_shapes: ClassVar[dict[str, tuple[int, ...]]] = {"flow": (3, 28, 28), "regions": (3, 28, 28)}
    suggested_preset: ClassVar[str | None] = "fast"

    def __init__(self, data_root: str | None = None, landmarks: str | None = None) -> None:
        self.data_root = data_root
        self.landmarks = landmarks
        self._points: np.ndarray | None = None
        self._landmark_source: str | None = None
        self._table: pd.DataFrame | None = None
        self._files: list[Path] | None = None
        self._flow: np.ndarray | None = None
        self._fingerprint: str | None = None

    def canonical_key(self, db: str, subject: str, clip: str) -> tuple[str, str, str]:
        return db, canonical_subject(db, subject), canonical_clip(db, clip)

    def options(self) -> dict[str, Any]:
        # the data root is not part of a run's identity: the fingerprint is (same data, same run);
        # the landmarks enter the identity of "regions" runs only (fingerprint_for)
        return {} if self.landmarks is None else {"landmarks": Path(self.landmarks).name
                                                  if self.landmarks != "fixed" else "fixed"}

    def fingerprint_for(self, representation: str) -> str:
        """The data's identity as ``representation`` sees it: :meth:`fingerprint` for ``flow``;
        for ``regions`` also the landmarks (the file's SHA-256, or ``fixed``), read and checked here,
        so a bad landmarks file fails before any training."""
        if representation != "regions":
            return self.fingerprint()
        self.landmark_points()
        return hashlib.sha256(f"{self.fingerprint()}|{self._landmark_source}".encode()).hexdigest()[:16]

    def landmark_file(self) -> Path | None:
        """The landmarks file used for ``regions`` (``None``: HTNet's fixed points)."""
        if self.landmarks == "fixed":
            return None
        if self.landmarks is not None:
            path = Path(self.landmarks).expanduser()
            path = path if path.is_absolute() or path.exists() else self.root / path
            if not path.is_file():
                raise DatasetError(f"landmarks file {path} not found (--dataset-set landmarks=PATH, or =fixed)")
            return path
        path = self.root / LANDMARKS_FILE
        return path if path.is_file() else None

    def landmark_points(self) -> np.ndarray:
        """``(N, 5, 2)`` int64 landmarks per table row, clamped to [7, 21] (module docstring).

        Raises:
            DatasetError: a malformed row, a coordinate outside 0..27, a clip missing from the file
                or listed twice, or a clip not in the label file (file and line named).
        """
        if self._points is None:
            from mer_bench.preprocess import HTNET_FALLBACK_LANDMARKS, clamp_landmarks

            table = self.table()
            path = self.landmark_file()
            if path is None:
                pts = np.repeat(HTNET_FALLBACK_LANDMARKS[None], len(table), axis=0)
                self._landmark_source = "fixed"
            else:
                pts = read_landmarks(path, table)
                self._landmark_source = f"{path.name} {hashlib.sha256(path.read_bytes()).hexdigest()[:16]}"
            self._points = clamp_landmarks(pts)
        return self._points

    def landmark_source(self) -> str:
        """``fixed`` or ``<file name> <sha256 prefix>``: what ``regions`` runs used."""
        self.landmark_points()
        return str(self._landmark_source)

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
        if representation not in self.representations:
            raise DatasetError(f"{self.name} provides {', '.join(self.representations)}, not {representation!r}")
        index = np.asarray(index)
        flow = self._load_all()[index]
        if representation == "regions":
            from mer_bench.preprocess import htnet_regions

            return htnet_regions(flow, self.landmark_points()[index])
        return flow

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


def read_landmarks(path: Path, table: pd.DataFrame) -> np.ndarray:
    """The five landmarks ``(N, 5, 2)`` (x, y) of every row of ``table`` from a landmarks file
    (module docstring), matched on normalised names.

    Raises:
        DatasetError: a missing or malformed header, a row without 14 fields, a coordinate that is
            not an integer in 0..27, ``detected`` other than 0/1, an unknown database or clip, a
            clip listed twice, or clips of the table missing from the file; file and line named.
    """
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read landmarks file {path}: {exc}") from None
    rows = list(csv.reader(lines))
    if not rows or tuple(c.strip() for c in rows[0]) != LANDMARK_COLUMNS:
        raise DatasetError(f"{path}, line 1: header must be {','.join(LANDMARK_COLUMNS)}")
    index = {key: i for i, key in enumerate(zip(table["dataset"], table["subject"], table["clip"]))}
    out = np.full((len(table), 5, 2), -1, dtype=np.int64)
    seen: dict[int, int] = {}
    for lineno, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        where = f"{path}, line {lineno}"
        if len(row) != len(LANDMARK_COLUMNS):
            raise DatasetError(f"{where}: {len(row)} fields, expected {len(LANDMARK_COLUMNS)}")
        db, sub, clip, detected = (c.strip() for c in row[:4])
        if db not in DATABASES:
            raise DatasetError(f"{where}: unknown database {db!r} (expected one of {', '.join(DATABASES)})")
        if detected not in ("0", "1"):
            raise DatasetError(f"{where}: detected must be 0 or 1, got {detected!r}")
        try:
            key = (db, canonical_subject(db, sub), canonical_clip(db, clip))
            coords = [int(c) for c in row[4:]]
        except ValueError as exc:
            raise DatasetError(f"{where}: {exc}; coordinates must be whole pixel numbers") from None
        bad = [c for c in coords if not 0 <= c <= 27]
        if bad:
            raise DatasetError(f"{where}: coordinate {bad[0]} is outside the 28 x 28 image (0..27)")
        i = index.get(key)
        if i is None:
            raise DatasetError(f"{where}: clip {db}/{sub}/{clip} is not in {LABEL_FILE}")
        if i in seen:
            raise DatasetError(f"{where}: clip {db}/{sub}/{clip} is listed twice (also line {seen[i]})")
        seen[i] = lineno
        out[i] = np.asarray(coords).reshape(5, 2)
    missing = [f"{d}/{s}/{c}" for i, (d, s, c) in enumerate(zip(table["dataset"], table["subject"], table["clip"]))
               if i not in seen]
    if missing:
        raise DatasetError(f"{path} has no landmarks for {len(missing)} clip(s): {', '.join(missing[:10])}"
                           + (" ..." if len(missing) > 10 else ""))
    return out
