"""Figures reported in papers, shown on leaderboards in rows marked "reported".

They are not reproduced here: each entry says where it comes from and how its model was selected
(the released code's selection where known), so a reader can weigh it against the measured rows. Keys of
``scores``: ``Full`` and the composite's databases; values ``(UF1, UAR)``.
"""

from __future__ import annotations

__all__ = ["REPORTED"]

REPORTED: dict[tuple[str, str], list[dict]] = {
    ("megc2019-flow", "megc2019-cde"): [
        {"method": "LBP-TOP (MEGC 2019 baseline)", "leaky": False,
         "selection": "n/a (hand-crafted features + SVM)",
         "source": "See et al., MEGC 2019, FG 2019",
         "scores": {"Full": (.5882, .5785), "smic": (.2000, .5280), "casme2": (.7026, .7429),
                    "samm": (.3954, .4102)}},
        {"method": "HTNet", "leaky": True,
         "selection": "per-subject best epoch on the test subject (LEAKY)",
         "source": "Wang et al., Neurocomputing 602:128196, 2024 (main_HTNet.py keeps each subject's best-test epoch)",
         "scores": {"Full": (.8603, .8475), "smic": (.8049, .7905), "casme2": (.9532, .9516),
                    "samm": (.8131, .8124)}},
        {"method": "STSTNet (paper)", "leaky": False,
         "selection": "last epoch (800)",
         "source": "Liong et al., FG 2019; the published 'UAR' .7605 is macro-precision (true UAR .7186, see "
                   "the imported log)",
         "scores": {"Full": (.7353, None), "smic": (.6801, None), "casme2": (.8382, None), "samm": (.6588, None)}},
    ],
}
