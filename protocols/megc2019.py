"""MEGC 2019 Composite Database Evaluation (CDE).

Source: See et al., "MEGC 2019 -- the second facial micro-expressions grand challenge", FG 2019:
leave-one-subject-out over the 68 subjects of the composite (SMIC-HS 16, CASME II 24, SAMM 28),
3 classes (negative, positive, surprise); UF1 and UAR pooled over all folds, reported on the
full composite and on each database (the pooled predictions restricted to it).

The runner reports the breakdown for any multi-database dataset, so this protocol is LOSO plus
a check that the dataset really is the composite: the MEGC class set, and only SMIC, CASME II
and SAMM clips.
"""

from __future__ import annotations

from typing import ClassVar

import pandas as pd

from mer_bench.datasets.megc2019 import DATABASE_NAMES, DATABASES, MEGC_CLASSES
from mer_bench.protocol import Fold, ProtocolError
from mer_bench.protocols.loso import LOSO

__all__ = ["MEGC2019CDE"]


class MEGC2019CDE(LOSO):
    """LOSO over the composite's subjects; fold names are ``<db>/<subject>`` (``samm/006``).

    Raises (from :meth:`folds`):
        ProtocolError: a table whose classes are not the MEGC set or that holds clips of other
            databases.
    """

    name: ClassVar[str] = "megc2019-cde"
    summary: ClassVar[str] = ("MEGC 2019 composite evaluation: LOSO over 68 subjects, 3 classes, "
                              "UF1/UAR for Full, SMIC, CASME II, SAMM")
    #: the breakdown order of reports
    subsets: ClassVar[tuple[str, ...]] = ("Full", *DATABASES)
    display_names: ClassVar[dict[str, str]] = DATABASE_NAMES
    default_dataset: ClassVar[str | None] = "megc2019-flow"

    def folds(self, table: pd.DataFrame, seed: int = 0) -> list[Fold]:
        emotions = set(table["emotion"].astype(str))
        if not emotions <= set(MEGC_CLASSES):
            raise ProtocolError(f"{self.name} needs the MEGC class set {', '.join(MEGC_CLASSES)}; the dataset has "
                                f"{', '.join(sorted(emotions))}. Use the megc2019-flow dataset (or a composite "
                                f"built with the MEGC class mapping)")
        other = sorted(set(table["dataset"].astype(str)) - set(DATABASES))
        if other:
            raise ProtocolError(f"{self.name} covers {', '.join(DATABASES)} only; the dataset also has {other}")
        return super().folds(table, seed)
