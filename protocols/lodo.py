"""Leave-one-dataset-out (LODO): train on every database but one, test on the held-out one.

Field notes 3.4: cross-dataset evaluation on a composite (e.g. train on two of SMIC, CASME II
and SAMM, test on the third). Any dataset whose table holds several databases in its
``dataset`` column works (``megc2019-flow``, ``megc2019-raw``).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd

from mer_bench.protocol import Fold, Protocol, ProtocolError

__all__ = ["LODO"]


class LODO(Protocol):
    """One fold per database, named after it.

    Raises (from :meth:`folds`):
        ProtocolError: fewer than 2 databases in the table.
    """

    name: ClassVar[str] = "lodo"
    summary: ClassVar[str] = "leave-one-dataset-out: train on the other databases, test on each in turn"

    def folds(self, table: pd.DataFrame, seed: int = 0) -> list[Fold]:
        dbs = list(dict.fromkeys(table["dataset"].astype(str)))
        if len(dbs) < 2:
            raise ProtocolError(f"leave-one-dataset-out needs at least 2 databases; the table has {dbs}")
        col = table["dataset"].astype(str).to_numpy()
        idx = np.arange(len(table))
        return [Fold(db, idx[col != db], idx[col == db]) for db in dbs]
