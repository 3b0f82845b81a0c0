"""Leave-one-subject-out (LOSO): one fold per subject; the standard MER protocol.

Each fold trains a freshly initialised method on every other subject and tests on the left-out
subject's clips. Metrics are pooled over all folds (MEGC 2019; :mod:`mer_bench.metrics`).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd

from mer_bench.data import subject_key
from mer_bench.protocol import Fold, Protocol, ProtocolError

__all__ = ["LOSO"]


class LOSO(Protocol):
    """Leave-one-subject-out over the table's ``subject`` column (grouped per ``dataset`` too,
    so subject ``s01`` of two databases are two subjects).

    Raises (from :meth:`folds`):
        ProtocolError: fewer than 2 subjects.
    """

    name: ClassVar[str] = "loso"
    summary: ClassVar[str] = "leave-one-subject-out: one fold per subject"

    def folds(self, table: pd.DataFrame, seed: int = 0) -> list[Fold]:
        subjects = subject_key(table)
        unique = list(dict.fromkeys(subjects))  # first-appearance order, deterministic
        if len(unique) < 2:
            raise ProtocolError(f"LOSO needs at least 2 subjects; the dataset has {len(unique)} "
                                f"({', '.join(unique) or 'none'})")
        single_database = len({u.split("/", 1)[0] for u in unique}) == 1
        names = [u.split("/", 1)[1] if single_database else u for u in unique]
        idx = np.arange(len(table))
        return [Fold(name, idx[subjects != u], idx[subjects == u]) for u, name in zip(unique, names)]
