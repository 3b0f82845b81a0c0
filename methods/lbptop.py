"""LBP-TOP + SVM, the MEGC 2019 baseline (``lbptop-svm``).

Features (Zhao & Pietikainen, "Dynamic texture recognition using local binary patterns with an
application to facial expressions", IEEE TPAMI 29(6), 2007): local binary patterns on the three
orthogonal planes XY, XT and YT of a grey clip ``(T, H, W)``, histogrammed per block of a
``blocks`` x ``blocks`` spatial grid and concatenated.

* Neighbour ``p`` of ``P`` on a plane with axes (a, b) and radii (Ra, Rb) sits at
  ``(a + Ra cos(2 pi p / P), b - Rb sin(2 pi p / P))``, read by bilinear interpolation where it
  falls between pixels (for P = 4 every neighbour is on the grid). Bit ``p`` is set when the
  neighbour is >= the centre.
* Centres are the voxels whose every neighbourhood fits: ``t`` in ``[Rt, T - Rt)``, ``y`` in
  ``[Ry, H - Ry)``, ``x`` in ``[Rx, W - Rx)``.
* Codes are mapped to uniform patterns (``u2``: at most two 0/1 transitions around the circle;
  every non-uniform code shares one last bin): 15 bins for P = 4, 59 for P = 8.
* Blocks split the full frame into ``blocks`` x ``blocks`` near-equal tiles (rows
  ``y * blocks // H``); each block's histogram per plane is normalised to sum 1. The feature is
  ``blocks^2 * 3 * bins`` long, ordered block (row-major), plane (XY, XT, YT), bin: 1,125 for the
  MEGC parameters.

Defaults: the MEGC 2019 baseline (``images/MEGC2019 Recognition Challenge.pdf`` of the MEGC2019 repository):
radii (R_X, R_Y, R_T) = (1, 1, 4), P = 4 on all planes, 5 x 5 blocks, the clip interpolated to
10 frames by TIM (:func:`mer_bench.preprocess.tim`). ``neighbours=8`` is the common 8-neighbour
variant (radii usually (1, 1, 1)). The baseline's SVM settings are not published: mer-bench uses a
linear SVM (scikit-learn ``SVC``) on standardised features, with ``C`` chosen by grouped
cross-validation over the *training* subjects only (``GroupKFold``, macro F1), never on the test
fold, and ``class_weight="balanced"`` (a named choice, for the imbalanced MER classes).

Deviation (raw datasets): the MEGC baseline interpolates the **whole clip** (onset to offset) to
10 frames by TIM; mer-bench's raw datasets hand every clip method a 16-frame window around the apex
(``frames`` of the dataset), and TIM interpolates that window. ``--dataset-set clip_rule=tim``
(onset..offset by TIM) or ``clip_rule=uniform`` gives the whole clip, the baseline's input.

:func:`lbp_top` is the vectorised implementation (about 15 ms for a 16 x 112 x 112 clip on one
core); :func:`lbp_top_reference` is a straightforward per-voxel loop that must give identical
histograms (tested; ``benchmarks/bench_lbptop.py`` compares their speed).
"""

from __future__ import annotations

import math
from functools import cache
from typing import Any, ClassVar

import numpy as np

from mer_bench.data import Samples
from mer_bench.method import Method, MethodInfo, ParameterError, register_method

__all__ = ["LBPTOPSVM", "lbp_top", "lbp_top_reference", "uniform_table"]

PLANES = ("XY", "XT", "YT")


@cache
def uniform_table(p: int) -> tuple[np.ndarray, int]:
    """The ``u2`` mapping of ``p``-bit codes: ``(table (2**p,) int64, n_bins)``."""
    table = np.empty(2 ** p, np.int64)
    nxt = 0
    for code in range(2 ** p):
        bits = [(code >> i) & 1 for i in range(p)]
        if sum(bits[i] != bits[(i + 1) % p] for i in range(p)) <= 2:
            table[code] = nxt
            nxt += 1
        else:
            table[code] = -1
    table[table < 0] = nxt
    return table, nxt + 1


def _offsets(plane: str, p: int, radii: tuple[float, float, float]) -> list[tuple[float, float, float]]:
    """``(dt, dy, dx)`` of the ``p`` neighbours on ``plane``; radii are ``(R_X, R_Y, R_T)``."""
    rx, ry, rt = radii
    out = []
    for k in range(p):
        c, s = math.cos(2 * math.pi * k / p), -math.sin(2 * math.pi * k / p)
        c, s = round(c, 12), round(s, 12)  # cos(pi/2) is 6e-17, not 0: keep on-grid points on the grid
        if plane == "XY":
            out.append((0.0, ry * s, rx * c))
        elif plane == "XT":
            out.append((rt * s, 0.0, rx * c))
        else:
            out.append((rt * s, ry * c, 0.0))
    return out


def _corners(d: tuple[float, float, float]) -> list[tuple[float, tuple[int, int, int]]]:
    """Bilinear (trilinear in general) corners of an offset: ``[(weight, (it, iy, ix)), ...]`` in a
    fixed order, shared by both implementations so they round identically."""
    axes = []
    for v in d:
        f = math.floor(v)
        w = v - f
        axes.append([(1.0, f)] if w == 0 else [(1.0 - w, f), (w, f + 1)])
    return [(wt * wy * wx, (it, iy, ix)) for wt, it in axes[0] for wy, iy in axes[1] for wx, ix in axes[2]]


def _check_clip(clip: np.ndarray, radii, neighbours: int, blocks: int) -> np.ndarray:
    v = np.asarray(clip, np.float64)
    if v.ndim != 3:
        raise ValueError(f"LBP-TOP needs a grey clip (T, H, W), got shape {v.shape}")
    rx, ry, rt = radii
    if neighbours < 1 or neighbours > 16:
        raise ValueError(f"neighbours must be in 1..16, got {neighbours}")
    t, h, w = v.shape
    if t <= 2 * math.ceil(rt) or h <= 2 * math.ceil(ry) or w <= 2 * math.ceil(rx):
        raise ValueError(f"a clip of shape {v.shape} is too small for radii (R_X, R_Y, R_T) = {tuple(radii)}")
    if blocks < 1 or blocks > min(h, w):
        raise ValueError(f"blocks must be in 1..{min(h, w)}, got {blocks}")
    return v


def lbp_top(clip: np.ndarray, radii: tuple[float, float, float] = (1, 1, 4), neighbours: int = 4,
            blocks: int = 5) -> np.ndarray:
    """LBP-TOP histogram of a grey clip ``(T, H, W)`` (any real dtype); see the module docstring.

    Returns:
        float64 ``(blocks * blocks * 3 * n_bins,)``; each block-plane histogram sums to 1.

    Raises:
        ValueError: not 3-D, too small for the radii, or invalid ``neighbours`` / ``blocks``.
    """
    v = _check_clip(clip, radii, neighbours, blocks)
    table, n_bins = uniform_table(neighbours)
    rx, ry, rt = (math.ceil(r) for r in radii)
    t, h, w = v.shape
    ct, cy, cx = slice(rt, t - rt), slice(ry, h - ry), slice(rx, w - rx)
    centre = v[ct, cy, cx]
    row_block = (np.arange(h) * blocks // h)[cy]
    col_block = (np.arange(w) * blocks // w)[cx]
    block = (row_block[:, None] * blocks + col_block[None, :]).astype(np.int32)  # (Hc, Wc)
    lut = table.astype(np.int32)
    index = np.empty((3, *centre.shape), np.int32)
    for k, plane in enumerate(PLANES):
        code = np.zeros(centre.shape, np.uint16 if neighbours > 8 else np.uint8)
        for bit, d in enumerate(_offsets(plane, neighbours, radii)):
            corners = _corners(d)
            if len(corners) == 1:  # on the grid: the shifted view itself (1.0 * x is x exactly)
                _, (it, iy, ix) = corners[0]
                acc = v[rt + it:t - rt + it, ry + iy:h - ry + iy, rx + ix:w - rx + ix]
            else:
                acc = 0.0
                for weight, (it, iy, ix) in corners:
                    acc = acc + weight * v[rt + it:t - rt + it, ry + iy:h - ry + iy, rx + ix:w - rx + ix]
            code |= (acc >= centre).astype(code.dtype) << bit
        np.add(lut[code], (block * 3 + k) * n_bins, out=index[k])
    counts = np.bincount(index.ravel(), minlength=blocks * blocks * 3 * n_bins).astype(np.float64)
    out = counts.reshape(blocks * blocks, 3, n_bins)
    total = out.sum(axis=2, keepdims=True)
    return (out / np.maximum(total, 1)).ravel()


def lbp_top_reference(clip: np.ndarray, radii: tuple[float, float, float] = (1, 1, 4), neighbours: int = 4,
                      blocks: int = 5) -> np.ndarray:
    """The same histogram as :func:`lbp_top`, computed voxel by voxel in plain Python (slow; the
    reference the vectorised version is tested and benchmarked against)."""
    v = _check_clip(clip, radii, neighbours, blocks)
    table, n_bins = uniform_table(neighbours)
    rx, ry, rt = (math.ceil(r) for r in radii)
    t, h, w = v.shape
    out = np.zeros((blocks * blocks, 3, n_bins))
    plane_offsets = [[_corners(d) for d in _offsets(plane, neighbours, radii)] for plane in PLANES]
    for z in range(rt, t - rt):
        for y in range(ry, h - ry):
            for x in range(rx, w - rx):
                c = v[z, y, x]
                b = (y * blocks // h) * blocks + x * blocks // w
                for k, offsets in enumerate(plane_offsets):
                    code = 0
                    for bit, corners in enumerate(offsets):
                        acc = 0.0
                        for weight, (it, iy, ix) in corners:
                            acc = acc + weight * v[z + it, y + iy, x + ix]
                        if acc >= c:
                            code |= 1 << bit
                    out[b, k, table[code]] += 1
    total = out.sum(axis=2, keepdims=True)
    return (out / np.maximum(total, 1)).ravel()


def _grey_clips(X: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(X)
    if x.ndim == 5:  # (N, C, T, H, W)
        return x.mean(axis=1)
    if x.ndim == 4 and x.shape[1] > 3:  # already grey (N, T, H, W)
        return x
    raise ValueError(f"{name} expects clips (N, C, T, H, W), got shape {x.shape}; use a dataset that provides "
                     f"the 'clip' representation (e.g. --dataset synthetic, or a raw dataset such as casme2)")


@register_method("lbptop-svm")
class LBPTOPSVM(Method):
    """LBP-TOP features and a linear SVM (the MEGC 2019 baseline); see the module docstring.

    Input: clips ``(N, C, T, H, W)`` (channels averaged to grey). Learned state: ``classes_``,
    ``pipeline_`` (scikit-learn ``StandardScaler`` + ``SVC``), ``C_`` (the chosen C),
    ``n_features_``.
    """

    info: ClassVar[MethodInfo] = MethodInfo(
        name="lbptop-svm",
        citation="Zhao & Pietikainen, IEEE TPAMI 29(6) 2007 (LBP-TOP); MEGC 2019 baseline parameters "
                 "(See et al., FG 2019): radii (1,1,4), P=4, 5x5 blocks, TIM to 10 frames",
        representation="clip",
        summary="LBP-TOP (MEGC 2019 baseline parameters) + linear SVM, C chosen inside the training folds",
    )
    presets: ClassVar[dict[str, dict]] = {"p8": dict(neighbours=8, radii=(1, 1, 1))}
    #: ``--save-models`` / ``mer-bench train``: not yet; a scikit-learn pipeline cannot be stored as the
    #: tensors and plain values that load without running code (:mod:`mer_bench.models`)
    saves_models: ClassVar[bool | str] = ("its scikit-learn SVM pipeline cannot be stored as tensors and plain values "
                                          "that load without running code")

    def __init__(self, radii: tuple = (1, 1, 4), neighbours: int = 4, blocks: int = 5, tim_frames: int | None = 10,
                 C: float | str = "search", C_grid: tuple = (0.01, 0.1, 1.0, 10.0, 100.0),
                 class_weight: str | None = "balanced", inner_folds: int = 5, random_state: int = 0) -> None:
        self._store_params(locals())  # hyper-parameters only (scikit-learn style)

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> None:
        if "radii" in params:
            r = params["radii"]
            if not (isinstance(r, (tuple, list)) and len(r) == 3 and all(isinstance(v, (int, float)) and v > 0
                                                                          for v in r)):
                raise ParameterError(f"radii must be three positive numbers (R_X, R_Y, R_T), got {r!r}")
        if "neighbours" in params and params["neighbours"] not in (4, 8, 16):
            raise ParameterError(f"neighbours must be 4, 8 or 16, got {params['neighbours']!r}")
        if "C" in params and not (params["C"] == "search" or (isinstance(params["C"], (int, float))
                                                              and params["C"] > 0)):
            raise ParameterError(f"C must be a positive number or 'search', got {params['C']!r}")

    def features(self, X: np.ndarray) -> np.ndarray:
        """LBP-TOP features ``(N, D)`` of clips ``(N, C, T, H, W)``.

        Raises:
            ValueError: not clips, or clips too small for the radii.
        """
        from mer_bench.preprocess import tim

        clips = _grey_clips(X, self.info.name)
        out = []
        for c in clips:
            if self.tim_frames is not None and len(c) != self.tim_frames:
                c = tim(c, self.tim_frames)
            out.append(lbp_top(c, tuple(self.radii), self.neighbours, self.blocks))
        return np.asarray(out)

    def fit(self, train: Samples) -> LBPTOPSVM:
        """Extract features, choose ``C`` by grouped CV over the training subjects, fit; returns self.

        Raises:
            ValueError: missing labels or a wrong input shape.
        """
        from sklearn.model_selection import GridSearchCV, GroupKFold
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import SVC

        if train.y is None:
            raise ValueError("fit needs labelled samples")
        feats = self.features(train.X)
        self.n_features_ = feats.shape[1]
        self.classes_ = np.arange(train.n_classes)
        pipe = make_pipeline(StandardScaler(), SVC(kernel="linear", class_weight=self.class_weight,
                                                   random_state=self.random_state))
        n_groups = len(set(train.subject.tolist()))
        if self.C == "search" and n_groups >= 2 and len(set(train.y.tolist())) >= 2:
            search = GridSearchCV(pipe, {"svc__C": list(self.C_grid)}, scoring="f1_macro",
                                  cv=GroupKFold(n_splits=min(self.inner_folds, n_groups)), error_score=0.0)
            search.fit(feats, train.y, groups=train.subject)
            self.C_ = float(search.best_params_["svc__C"])
        else:
            self.C_ = 1.0 if self.C == "search" else float(self.C)
        pipe.set_params(svc__C=self.C_)
        if len(set(train.y.tolist())) < 2:  # one class: an SVM cannot be fitted; predict it
            self.pipeline_ = None
            self.only_class_ = int(train.y[0])
        else:
            self.pipeline_ = pipe.fit(feats, train.y)
        return self

    def predict(self, test: Samples) -> np.ndarray:
        """Labels ``(N,)`` int64."""
        if not hasattr(self, "classes_"):
            raise RuntimeError("LBPTOPSVM is not fitted; call fit first")
        feats = self.features(test.X)
        if self.pipeline_ is None:
            return np.full(len(feats), self.only_class_, np.int64)
        return self.pipeline_.predict(feats).astype(np.int64)
