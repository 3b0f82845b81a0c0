"""The MEGC 2019 composite built from the raw datasets (``megc2019-raw``).

The official 442-clip list (``combined_3class_gt.csv``) is the source of truth, as for
``megc2019-flow``: the composite is the list joined to the CASME II, SAMM and SMIC-HS trees, with
the list's labels (building it from emotion rules, as MEB does, gives 147 CASME II clips,
not 145). So ``megc2019-cde`` runs from raw frames or from the flow distribution alike.

Data root layout::

    DATA_ROOT/combined_3class_gt.csv      (or --dataset-set label_file=PATH)
    DATA_ROOT/CASME2/   a casme2 tree     (see mer_bench.datasets.frames)
    DATA_ROOT/SAMM/     a samm tree
    DATA_ROOT/SMIC/     a smic-hs tree

Representations and preprocessing options are those of the raw loaders (cached per database).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from mer_bench.data import Dataset, DatasetError, validate_table
from mer_bench.data_roots import require_data_root
from mer_bench.datasets.casme import CASME2
from mer_bench.datasets.frames import preprocessing_options
from mer_bench.datasets.megc2019 import LABEL_FILE, MEGC_CLASSES, MEGC2019Flow, read_label_file
from mer_bench.datasets.samm import SAMM
from mer_bench.datasets.smic import SMICHS

__all__ = ["MEGC2019Raw"]

_MEMBERS = {"casme2": (CASME2, "CASME2", "megc3"), "samm": (SAMM, "SAMM", "megc3"), "smic": (SMICHS, "SMIC", "3class")}


class MEGC2019Raw(Dataset):
    """The composite from raw frame trees; see the module docstring.

    Raises (from :meth:`table`):
        DatasetError: a missing member tree or label file, or listed clips absent from a member
            (named).
    """

    name: ClassVar[str] = "megc2019-raw"
    summary: ClassVar[str] = ("MEGC 2019 composite from the raw CASME II, SAMM and SMIC-HS trees and the official "
                              "442-clip list; needs --data-root")
    classes: ClassVar[tuple[str, ...]] = MEGC_CLASSES
    representations: ClassVar[tuple[str, ...]] = ("flow", "apex", "clip", "dynamic", "mesti")

    def __init__(self, data_root: str | None = None, label_file: str | None = None, flow_method: str = "dis",
                 face_crop: bool = True, frames: int = 16, size: int = 112, workers: int = 1,
                 clip_rule: str = "apex") -> None:
        self.data_root = data_root
        self.clip_rule = clip_rule
        self.label_file = label_file
        self.flow_method = flow_method
        self.face_crop = face_crop
        self.frames = frames
        self.size = size
        self.workers = workers
        self._table: pd.DataFrame | None = None
        self._members: dict[str, Any] = {}

    canonical_key = MEGC2019Flow.canonical_key  # the same naming as the flow distribution

    def options(self) -> dict[str, Any]:
        return preprocessing_options(self)

    @property
    def root(self) -> Path:
        return require_data_root(self.name, self.data_root)

    def member(self, db: str):
        if db not in self._members:
            cls, folder, scheme = _MEMBERS[db]
            path = self.root / folder
            if not path.is_dir():
                raise DatasetError(f"{self.name}: the {db} tree {path} is missing")
            self._members[db] = cls(data_root=str(path), classes=scheme, flow_method=self.flow_method,
                                    face_crop=self.face_crop, frames=self.frames, size=self.size,
                                    workers=self.workers, clip_rule=self.clip_rule)
        return self._members[db]

    def table(self) -> pd.DataFrame:
        if self._table is None:
            official = read_label_file(Path(self.label_file) if self.label_file else self.root / LABEL_FILE)
            parts, missing = [], []
            for db in dict.fromkeys(official["dataset"]):
                member = self.member(db).table()
                pos = {(s, c): i for i, (s, c) in enumerate(zip(member["subject"], member["clip"]))}
                rows = official[official["dataset"] == db]
                for r in rows.itertuples():
                    if (r.subject, r.clip) not in pos:
                        missing.append(r.sample_id)
                found = rows[[(s, c) in pos for s, c in zip(rows["subject"], rows["clip"])]]
                m = member.iloc[[pos[(s, c)] for s, c in zip(found["subject"], found["clip"])]]
                part = found.copy()
                for col in ("onset", "apex", "offset", "aus"):
                    part[col] = m[col].to_numpy()
                part["_member_pos"] = [pos[(s, c)] for s, c in zip(found["subject"], found["clip"])]
                parts.append(part)
            if missing:
                raise DatasetError(f"{self.name}: {len(missing)} clip(s) of the official list are not in the member "
                                   f"sheets/trees: {', '.join(missing[:10])}" + (" ..." if len(missing) > 10 else ""))
            table = pd.concat(parts, ignore_index=True)
            self._table = validate_table(table, len(self.classes), where=self.name)
        return self._table

    def load(self, representation: str, index) -> np.ndarray:
        if representation not in self.representations:
            raise DatasetError(f"{self.name} provides {', '.join(self.representations)}, not {representation!r}")
        rows = self.table().iloc[np.asarray(index)]
        out: list[np.ndarray | None] = [None] * len(rows)
        for db in dict.fromkeys(rows["dataset"]):
            where = np.flatnonzero(rows["dataset"].to_numpy() == db)
            arrays = self.member(db).load(representation, rows["_member_pos"].to_numpy()[where])
            for k, arr in zip(where, arrays):
                out[k] = arr
        return np.stack(out)

    def fingerprint(self) -> str:
        import hashlib

        h = hashlib.sha256()
        for db in dict.fromkeys(self.table()["dataset"]):
            h.update(self.member(db).fingerprint().encode())
        h.update(repr(self.table()[["sample_id", "label"]].values.tolist()).encode())
        return h.hexdigest()[:16]
