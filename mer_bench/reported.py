"""Figures reported in papers, shown on leaderboards in their own table, "Reported in papers (not
reproduced)", never ranked with measured rows.

They are not reproduced here: each entry says where it comes from, which metric it is (accuracy is
not UF1) and how its model was selected (the released code's selection where known), so a reader
can weigh it against the measured rows.

Keys: ``(dataset, protocol)`` of the board the figures belong to. Entry fields:

* ``method``, ``source`` (citation, with table and caveats), ``selection`` (model selection),
  ``leaky`` (the model or the split saw the test subjects);
* ``scores`` (optional): ``Full`` and the composite's databases -> ``(UF1, UAR)`` (``None`` where
  not published), MEGC 2019 definition;
* ``figures`` (optional): other published metrics, name -> value, e.g. ``{"accuracy": .935}``;
* ``metric``: what the figures are, in words.
"""

from __future__ import annotations

__all__ = ["REPORTED", "reported_figures"]

_MERANET = ("Gajjala et al., MERANet, ICVGIP 2021 (seeds/meranet-paper.txt), {table}; 3-class subsets, "
            "sample-level stratified {split} train/test split (subjects shared between train and test), 80/20 "
            "train/validation split inside the training part")
_MERANET_SELECTION = ("not stated (100 epochs; a validation split of the training part is described, subjects "
                      "shared with the test part: LEAKY)")


def _meranet(dataset: str, split: str, accuracy: float, resnet: float | None = None,
             prf: tuple[float, float, float] | None = None) -> list[dict]:
    out = [{"method": "MERANet (paper)", "leaky": True, "selection": _MERANET_SELECTION,
            "source": _MERANET.format(table="Tables 1 and 2" if prf else "Table 1", split=split),
            "metric": "accuracy" + ("; macro precision / recall / F1" if prf else ""),
            "figures": {"accuracy": accuracy, **(dict(zip(("macro precision", "macro recall", "macro F1"), prf))
                                                 if prf else {})}}]
    if resnet is not None:
        out.append({"method": "3D ResNet (MERANet paper)", "leaky": True, "selection": _MERANET_SELECTION,
                    "source": _MERANET.format(table="Table 1", split=split), "metric": "accuracy",
                    "figures": {"accuracy": resnet}})
    return out


REPORTED: dict[tuple[str, str], list[dict]] = {
    ("megc2019-flow", "megc2019-cde"): [
        {"method": "LBP-TOP (MEGC 2019 baseline)", "leaky": False,
         "selection": "n/a (hand-crafted features + SVM)",
         "source": "See et al., MEGC 2019, FG 2019", "metric": "UF1, UAR",
         "scores": {"Full": (.5882, .5785), "smic": (.2000, .5280), "casme2": (.7026, .7429),
                    "samm": (.3954, .4102)}},
        {"method": "HTNet", "leaky": True, "metric": "UF1, UAR",
         "selection": "per-subject best epoch on the test subject (LEAKY)",
         "source": "Wang et al., Neurocomputing 602:128196, 2024 (main_HTNet.py keeps each subject's best-test epoch)",
         "scores": {"Full": (.8603, .8475), "smic": (.8049, .7905), "casme2": (.9532, .9516),
                    "samm": (.8131, .8124)}},
        {"method": "RCN-A (paper)", "leaky": False, "metric": "UF1, UAR",
         "selection": "last epoch (the released ModelTrain_Final.py trains 100 epochs and tests the last)",
         "source": "Xia, Peng, Hong, Zhao, IEEE TIP 29:8590-8605, 2020 (composite LOSO; on the authors' own flow "
                   "images); measured here as `rcn`",
         "scores": {"Full": (.7432, .7190)}},
        {"method": "Off-ApexNet (as cited)", "leaky": False, "metric": "UF1, UAR",
         "selection": "unknown (no released code)",
         "source": "Gan et al., Signal Process. Image Commun. 74, 2019, as cited in HTNet's Table 2 (Wang et al., "
                   "Neurocomputing 602:128196, 2024)",
         "scores": {"Full": (.7196, .7096)}},
        {"method": "STSTNet (paper)", "leaky": False, "metric": "UF1 (the published 'UAR' is macro-precision)",
         "selection": "last epoch (800)",
         "source": "Liong et al., FG 2019; the published 'UAR' .7605 is macro-precision (true UAR .7186, see "
                   "the imported log)",
         "scores": {"Full": (.7353, None), "smic": (.6801, None), "casme2": (.8382, None), "samm": (.6588, None)}},
    ],
    # the MERANet paper's own results (Table 1: accuracy; Table 2: accuracy and macro P/R/F1)
    ("casme", "meranet3-holdout-paper"): _meranet("casme", "75/25", .905, .810, (.917, .907, .907)),
    ("casme2", "meranet3-holdout-paper"): _meranet("casme2", "75/25", .935, .833, (.94, .94, .933)),
    ("casme2-cropped", "meranet3-holdout-paper"): _meranet("casme2-cropped", "75/25", .935, .833,
                                                           (.94, .94, .933)),
    ("casme^2", "meranet3-holdout-paper"): _meranet("casme^2", "80/20", .917, .833, (.93, .917, .917)),
    ("samm", "meranet3-holdout-paper"): _meranet("samm", "train/test (fraction not stated)", .857, None,
                                                 (.823, .799, .81)),
}


def reported_figures(entry: dict, names: dict[str, str] | None = None) -> str:
    """The figures of one :data:`REPORTED` entry as a board cell: ``UF1 .8603, UAR .8475 (SMIC
    .8049 / .7905, ...)`` or ``accuracy .935; macro F1 .933``; ``names``: display names of the
    databases."""
    names = names or {}

    def num(v, places: int | None = 4) -> str:  # UF1/UAR to 4 places as boards print them; others as published
        if v is None:
            return "n/a"
        return (f"{v:.{places}f}" if places else f"{v:g}").lstrip("0")

    parts = []
    scores = entry.get("scores", {})
    if "Full" in scores:
        uf1, uar = scores["Full"]
        parts.append(f"UF1 {num(uf1)}" + (f", UAR {num(uar)}" if uar is not None else ""))
        subsets = [f"{names.get(k, k)} {num(v[0])}" + (f" / {num(v[1])}" if v[1] is not None else "")
                   for k, v in scores.items() if k != "Full"]
        if subsets:
            parts[-1] += " (" + ", ".join(subsets) + ")"
    parts += [f"{k} {num(v, None)}" for k, v in entry.get("figures", {}).items()]
    return "; ".join(parts)
