"""Class schemes of the raw datasets: which emotions of a coding sheet make which class.

``CLASS_SCHEMES[dataset][scheme]`` maps an emotion as written in the sheet to a class name; the
classes of a scheme are its values in order of first appearance, and clips of other emotions are
left out (:meth:`mer_bench.datasets.frames.FrameTreeDataset.table`). ``mer-bench data stats``
prints :func:`scheme_counts`.
"""

from __future__ import annotations

import pandas as pd

__all__ = ["CLASS_SCHEMES", "SCHEME_COLUMNS", "KNOWN_EMOTIONS", "scheme_counts"]


#: class schemes per dataset: scheme -> {emotion in the sheet: class name}, classes in order
CLASS_SCHEMES: dict[str, dict[str, dict[str, str]]] = {
    "casme2": {
        "5class": {e: e for e in ("happiness", "surprise", "disgust", "repression", "others")},
        "megc3": {"disgust": "negative", "repression": "negative", "happiness": "positive", "surprise": "surprise"},
        "meranet3": {"disgust": "disgust", "happiness": "happiness", "surprise": "surprise"},
    },
    "samm": {
        "5class": {"anger": "anger", "happiness": "happiness", "contempt": "contempt", "surprise": "surprise",
                   "other": "other"},
        "megc3": {"anger": "negative", "contempt": "negative", "disgust": "negative", "fear": "negative",
                  "sadness": "negative", "happiness": "positive", "surprise": "surprise"},
        "meranet3": {"anger": "anger", "happiness": "happiness", "other": "other"},
    },
    "smic": {"3class": {"negative": "negative", "positive": "positive", "surprise": "surprise"}},
}
CLASS_SCHEMES["smic"]["megc3"] = CLASS_SCHEMES["smic"]["3class"]
# CAS(ME)^3 part A: the sheet's 7 labels, or 3 classes by the MEGC rule. (HTNet's edited 3-class list,
# 449/54/184 clips, is not reproduced by any rule on this sheet.)
CLASS_SCHEMES["casme3"] = {
    "7class": {e: e for e in ("disgust", "surprise", "others", "fear", "anger", "sad", "happy")},
    "megc3": {"disgust": "negative", "fear": "negative", "anger": "negative", "sad": "negative",
              "happy": "positive", "surprise": "surprise"},
}
# CASME (I): the 8 emotion categories of its paper (Yan et al., FG 2013), or MERANet's 3.
CLASS_SCHEMES["casme"] = {
    "8class": {e: e for e in ("amusement", "sadness", "disgust", "surprise", "contempt", "fear", "repression",
                              "tense")},
    "meranet3": {"disgust": "disgust", "repression": "repression", "tense": "tense"},
}
# CAS(ME)^2: the estimated emotion (4 classes), or MERANet's 3 classes, which are the emotion of the
# eliciting video (happy / angry / disgust: 18 / 22 / 17 of the 57 MEs), column ``stimulus``.
CLASS_SCHEMES["casme^2"] = {
    "4class": {e: e for e in ("negative", "positive", "surprise", "others")},
    "meranet3": {"happy": "happiness", "anger": "anger", "disgust": "disgust"},
}
#: the sheet column a class scheme reads (default ``emotion``)

#: the sheet column a class scheme reads (default ``emotion``)
SCHEME_COLUMNS = {("casme^2", "meranet3"): "stimulus"}
#: every emotion label the official sheets use (others are reported by ``check``)

#: every emotion label the official sheets use (others are reported by ``check``)
KNOWN_EMOTIONS = {
    "casme": {"amusement", "sadness", "disgust", "surprise", "contempt", "fear", "repression", "tense",
              "happiness"},
    "casme^2": {"negative", "positive", "surprise", "others"},
    "casme2": {"happiness", "surprise", "disgust", "repression", "others", "sadness", "fear"},
    "samm": {"anger", "happiness", "contempt", "surprise", "other", "disgust", "fear", "sadness"},
    "smic": {"negative", "positive", "surprise"},
    "casme3": {"disgust", "surprise", "others", "fear", "anger", "sad", "happy"},
}


def scheme_counts(sheet: pd.DataFrame, scheme_key: str) -> list[tuple[str, int, int, list[tuple[str, int]]]]:
    """Per class scheme of a database: ``(scheme, clips, subjects, [(class, clips), ...])`` of a
    coding-sheet table (:data:`mer_bench.datasets.sheets.SHEET_COLUMNS`)."""
    out = []
    for scheme, mapping in CLASS_SCHEMES[scheme_key].items():
        column = SCHEME_COLUMNS.get((scheme_key, scheme), "emotion")
        used = sheet[sheet[column].isin(list(mapping))]
        per = used[column].map(mapping).value_counts()
        classes = list(dict.fromkeys(mapping.values()))
        out.append((scheme, len(used), int(used["subject"].nunique()), [(c, int(per.get(c, 0))) for c in classes]))
    return out
