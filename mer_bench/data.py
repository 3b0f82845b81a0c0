"""Datasets: one table schema for every dataset, and the arrays methods receive.

Every dataset exposes :meth:`Dataset.table`, a :class:`pandas.DataFrame` with the columns of
:data:`SCHEMA` (after MEB's common schema), one row per clip:

=============  =====================================================================
``sample_id``  unique id, ``"<dataset>/<subject>/<clip>"``
``dataset``    source database (``casme2``, ``samm``, ``smic``, ``synthetic``...)
``subject``    subject id as a string (LOSO groups on it)
``clip``       clip id within the subject
``onset``      frame index of the first movement (int)
``apex``       frame index of peak intensity (int)
``offset``     frame index of the return to neutral (int)
``emotion``    the dataset's emotion label (string)
``aus``        FACS action units, e.g. ``"1+2"`` (string, may be empty)
``label``      class index ``0..n_classes-1`` into :attr:`Dataset.classes`
=============  =====================================================================

and :meth:`Dataset.load` returning one input representation (see
:data:`mer_bench.method.REPRESENTATIONS`) for a set of rows.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np
import pandas as pd

__all__ = ["SCHEMA", "Samples", "Dataset", "DatasetError", "validate_table", "subject_key"]

SCHEMA = ("sample_id", "dataset", "subject", "clip", "onset", "apex", "offset", "emotion", "aus", "label")


def subject_key(table: pd.DataFrame) -> np.ndarray:
    """``(N,)`` str ``"<dataset>/<subject>"`` of a table or predictions frame: the unit LOSO leaves
    out and the statistics resample, so that subjects of different databases of a composite never
    merge (CASME II ``sub01`` and SMIC ``s01`` stay two subjects)."""
    return (table["dataset"].astype(str) + "/" + table["subject"].astype(str)).to_numpy()


class DatasetError(ValueError):
    """A dataset is missing, malformed or cannot serve what was asked."""


@dataclass(frozen=True)
class Samples:
    """The inputs of one side of a fold, as a method sees them.

    Attributes:
        X: the representation, e.g. clips ``(N, C, T, H, W)`` float32.
        y: labels ``(N,)`` int64 in ``0..len(classes)-1``, or ``None`` on the test side (the
            runner never hands test labels to a method).
        subject: ``(N,)`` subject ids (str).
        sample_id: ``(N,)`` sample ids (str).
        classes: class names, index = label.
        representation: the key of :data:`mer_bench.method.REPRESENTATIONS`.
    """

    X: np.ndarray
    y: np.ndarray | None
    subject: np.ndarray
    sample_id: np.ndarray
    classes: tuple[str, ...]
    representation: str

    def __len__(self) -> int:
        return len(self.X)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def without_labels(self) -> Samples:
        """The same samples with ``y=None``."""
        return replace(self, y=None)


def validate_table(table: pd.DataFrame, n_classes: int, where: str = "dataset") -> pd.DataFrame:
    """Check a dataset table against :data:`SCHEMA`; returns it.

    Raises:
        DatasetError: a missing column, a duplicate ``sample_id``, or a label outside
            ``0..n_classes-1`` (the message names the offending rows).
    """
    missing = [c for c in SCHEMA if c not in table.columns]
    if missing:
        raise DatasetError(f"{where}: table lacks columns {missing}")
    dup = table["sample_id"][table["sample_id"].duplicated()]
    if len(dup):
        raise DatasetError(f"{where}: duplicate sample ids {list(dup[:5])}")
    bad = table[~table["label"].between(0, n_classes - 1)]
    if len(bad):
        raise DatasetError(f"{where}: labels outside 0..{n_classes - 1} at {list(bad['sample_id'][:5])}")
    return table


class Dataset:
    """Base class of datasets. Constructors take options only (``data_root``, ``seed``...)."""

    #: registry name
    name: ClassVar[str]
    #: one line for ``mer-bench list datasets``
    summary: ClassVar[str] = ""
    #: class names, index = label
    classes: ClassVar[tuple[str, ...]]
    #: representations :meth:`load` can produce
    representations: ClassVar[tuple[str, ...]]
    #: the method preset used when the user names none (``None``: the method's defaults); a tuple
    #: names several in order of preference, the first that a method declares is used
    suggested_preset: ClassVar[str | tuple[str, ...] | None] = None
    #: the per-sample array shape of each representation where it is fixed (e.g. ``{"flow": (3, 28,
    #: 28)}``), for boards' *input* column (:meth:`mer_bench.method.Method.describe_input`); raw
    #: datasets whose frame size depends on the files leave it out
    sample_shapes: ClassVar[dict[str, tuple[int, ...]]] = {}

    @classmethod
    def preset_for(cls, method_cls: type) -> str | None:
        """The preset of :attr:`suggested_preset` that ``method_cls`` declares first, else ``None``."""
        wanted = cls.suggested_preset
        names = (wanted,) if isinstance(wanted, str) else tuple(wanted or ())
        have = getattr(method_cls, "presets", None) or {}
        return next((n for n in names if n in have), None)

    def options(self) -> dict[str, Any]:
        """Constructor options, recorded with every run."""
        return {}

    def table(self) -> pd.DataFrame:  # pragma: no cover - interface
        raise NotImplementedError

    def load(self, representation: str, index: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        """The representation for the table rows at positions ``index``."""
        raise NotImplementedError

    def fingerprint(self) -> str:
        """A short hash that changes whenever the data a run sees changes."""
        raise NotImplementedError  # pragma: no cover - interface

    def canonical_key(self, db: str, subject: str, clip: str) -> tuple[str, str, str]:
        """``(dataset, subject, clip)`` as an external file writes them -> as this dataset's table
        does (used to join published logs). Default: unchanged.

        Raises:
            ValueError: a name that cannot be read.
        """
        return db, subject, clip

    def samples(self, representation: str, index: np.ndarray, with_labels: bool = True) -> Samples:
        """:class:`Samples` for the table rows at positions ``index``.

        Raises:
            DatasetError: the dataset cannot produce ``representation``.
        """
        if representation == "none":
            rows = self.table().iloc[np.asarray(index)]
            return Samples(np.zeros((len(rows), 0), np.float32),
                           rows["label"].to_numpy(np.int64) if with_labels else None,
                           rows["subject"].astype(str).to_numpy(), rows["sample_id"].astype(str).to_numpy(),
                           tuple(self.classes), "none")
        if representation not in self.representations:
            raise DatasetError(f"dataset {self.name!r} provides {', '.join(self.representations)}, "
                               f"not {representation!r}")
        table = self.table()
        rows = table.iloc[np.asarray(index)]
        return Samples(
            X=self.load(representation, np.asarray(index)),
            y=rows["label"].to_numpy(np.int64) if with_labels else None,
            subject=rows["subject"].astype(str).to_numpy(),
            sample_id=rows["sample_id"].astype(str).to_numpy(),
            classes=tuple(self.classes),
            representation=representation,
        )
