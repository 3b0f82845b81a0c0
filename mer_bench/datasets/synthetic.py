"""The embedded synthetic micro-expression dataset (``synthetic``), mer-bench's default.

It lets the whole suite run anywhere with no download and no licence. Clips are rendered
procedurally, deterministically from ``seed``, and cached on disk (``$MER_BENCH_CACHE``, default
``~/.cache/mer-bench``).

Generative model (version 3)
----------------------------
Each clip is ``T = 8`` RGB frames of ``32 x 32`` pixels, values in [0, 1], shape
``(3, 8, 32, 32)``: an aligned face crop around the expression, from before its onset to its
offset.

*Version 3* (changes from version 2, whose runs keep their fingerprint): the face fills the
frame (rendered :data:`FACE_SCALE` = 1.35 times larger about its centre, as a tight aligned face
crop; every displacement below scales with it), and the coded apex is one frame off the true one
with probability :data:`APEX_CODING_ERROR` = 0.3 (clamped strictly between onset and offset),
as human coders disagree on the apex. These were chosen on the development seeds
:data:`DEVELOPMENT_SEEDS` (1 and 2) only, comparing LBP-TOP+SVM, Off-ApexNet, 3D ResNet-18 and
MERANet under LOSO; the published boards use seed 0, the default, which was not looked at while
designing. Version 2 made the face ~21 x 26 px of the 32 x 32 frame, where the clip networks did
not learn the motion (MERANet UF1 .54-.59, Grad-CAM at chance) while flow networks reached .95;
larger amplitudes made every method, flow networks included, approach 100 %.

*Subjects* (``n_subjects``, default 12). A subject draws a face: skin and background colours,
face ellipse centre and axes, positions of brows, eyes, nose and mouth (each jittered by about
one pixel), a smooth low-frequency skin texture, and an *expressiveness* gain g ~ U(0.6, 1.4).
Identity therefore changes every pixel far more than any expression does: a method has to use
the change over time, not absolute appearance.

*Faces* are rendered analytically as a skin ellipse minus anisotropic Gaussian features (brows,
eyes, nose shading, a mouth made of seven Gaussians along a curve), so feature motion is
sub-pixel and exact.

*Classes* follow the MEGC composite: ``negative`` (p = 0.56), ``positive`` (0.25),
``surprise`` (0.19). Each clip has an AU-like localised motion of amplitude
``A = g * U(1.2, 3.2)`` pixels (intensity, not identity):

* surprise — AU1+2, inner and outer brow raiser: both brows move up by ``1.0 A``;
* positive — AU12, lip-corner puller: mouth corners move up by ``0.9 A`` and out by ``0.5 A``;
* negative — one of three, equally likely: AU4 brow lowerer (brows down ``0.7 A`` and inwards
  ``0.5 A``), AU9 nose wrinkler (horizontal wrinkle shading at the nose bridge, contrast
  ``0.12 A``), AU15 lip-corner depressor (corners down ``0.9 A``).

*Timing*: onset in frames 0-2, apex 2-3 frames later, offset 2-3 frames after the apex (at most
frame 7). Intensity is ``sin^2`` rising from onset to apex and falling to offset, 0 elsewhere.
The table's ``apex`` is the *coded* apex (see version 3 above): representations that pick the
apex frame (``apex``, ``flow``, ``regions``, ``mesti``) use the coded one, as on real data; clip
methods see every frame.

*Distractors*, independent of the class: a blink (p = 0.35, eyelids close over 2-3 frames at a
random time); small rigid head motion (a random walk of the whole face, 0.15 px per frame);
an unrelated weak AU from another class (p = 0.2, amplitude ``0.3 A``); frame-wise illumination
flicker (gain 1 +- 2 %); Gaussian sensor noise (sigma 0.03).

*Masks*: for each clip, :meth:`SyntheticMER.motion_mask` gives the ``(32, 32)`` boolean mask
of pixels that the class motion changes by more than 0.02 between the neutral and the apex
face (rendered without distractors), for saliency checks.

The table records onset, (coded) apex, offset, emotion (the class name) and the AU string.

*Shortcuts, stated*: flow methods are given the onset and the coded apex, the two frames where the
motion is; clip methods must find it among 8 frames with blinks, head motion and a weaker
unrelated AU. This is the advantage flow methods have on real data too (the MEGC 2019 composite's
flow images are computed from the annotated onset and apex), so it is kept; the apex coding error
keeps it from being exact. Subject appearance carries no class information (labels are drawn
independently of the face).
Representations: ``clip`` ``(N, 3, 8, 32, 32)``, ``apex`` ``(N, 3, 32, 32)`` and ``flow``
``(N, 3, 28, 28)``: u, v, optical strain from onset to apex, in the format of the MEGC 2019
composite flow images (each channel min-max scaled to [0, 1] per image, centre 28 x 28). The flow
here is *normal flow* (the component of the motion along the image gradient, from the brightness
constancy constraint ``Ix u + Iy v + It = 0``), a cheap dependency-free stand-in for TV-L1 so that
flow methods run anywhere; strain is ``sqrt(ux^2 + vy^2 + (uy + vx)^2 / 2)`` (Shreve et al. 2011).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from mer_bench.atomic import atomic_path
from mer_bench.data import Dataset, DatasetError, validate_table

__all__ = ["SyntheticMER", "cache_dir", "ABLATION_CONFIG", "ABLATION_PROTOCOL"]

GENERATOR_VERSION = 3
#: the development generator seed: every design choice of version 3 was made looking at seeds 1
#: and 2 only; seed 0 (the default, the published boards) was not looked at while designing
DEVELOPMENT_SEEDS = (1, 2)
#: the face is rendered this much larger about its centre than in version 2: an aligned face crop
#: that fills the frame, as MER pipelines crop faces (more pixels on each facial feature)
FACE_SCALE = 1.35
#: probability that the coded apex is one frame off the true one (coders disagree on the apex)
APEX_CODING_ERROR = 0.3
#: the larger configuration for ablations and saliency (``mer-bench ablate --ablation kernel|
#: shared|attention`` and ``mer-bench saliency`` use it unless given ``--dataset-set``), sized by a
#: power calculation (README, "Ablations with statistical power"): more subjects, under a
#: subject K-fold protocol so that its cost grows with the subjects, not with their square. Its
#: class motions are at 0.3 of the documented amplitude, so that the arms have headroom: at 1.0 the
#: clip networks classify .999 of the held-out clips (development seed 1), and at 0.5 still .987;
#: at 0.3 MERANet ``testbed`` scores UF1 .948 and LBP-TOP+SVM .791 on development seed 1 (README,
#: "Ablations with statistical power"). Chosen on development seed 1 only; seed 0 not looked at
ABLATION_CONFIG = {"n_subjects": 192, "min_clips": 12, "max_clips": 20, "amplitude": 0.3}
ABLATION_PROTOCOL = ("subject-kfold", {"k": 3})
SIZE = 32
FRAMES = 8
CLASSES = ("negative", "positive", "surprise")
CLASS_P = (0.56, 0.25, 0.19)


def cache_dir() -> Path:
    """``$MER_BENCH_CACHE`` or ``~/.cache/mer-bench``."""
    return Path(os.environ.get("MER_BENCH_CACHE") or Path.home() / ".cache" / "mer-bench")


def _gauss(xx, yy, cx, cy, sx, sy):
    return np.exp(-(((xx - cx) / sx) ** 2 + ((yy - cy) / sy) ** 2) / 2)


class _Face:
    """One subject's face; :meth:`render` draws it with given feature displacements."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.skin = np.array([0.78, 0.62, 0.52]) * rng.uniform(0.75, 1.15) + rng.normal(0, 0.03, 3)
        self.bg = rng.uniform(0.1, 0.5, 3)
        self.cx, self.cy = 16 + rng.normal(0, 0.8), 17 + rng.normal(0, 0.8)
        self.ax, self.ay = rng.uniform(9.5, 11.5), rng.uniform(12.0, 14.0)
        self.eye_y = self.cy - rng.uniform(3.0, 4.5)
        self.eye_dx = rng.uniform(3.8, 5.0)
        self.brow_y = self.eye_y - rng.uniform(2.4, 3.4)
        self.brow_len = rng.uniform(1.6, 2.4)
        self.brow_dark = rng.uniform(0.35, 0.6)
        self.mouth_y = self.cy + rng.uniform(5.0, 6.5)
        self.mouth_w = rng.uniform(2.8, 4.0)
        self.lip = rng.uniform(0.25, 0.45)
        self.gain = rng.uniform(0.6, 1.4)
        # smooth texture: a few random low-frequency cosines
        k = rng.normal(0, 0.25, (4, 2))
        ph = rng.uniform(0, 2 * np.pi, 4)
        amp = rng.uniform(0.01, 0.03, 4)
        yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(float)
        self.texture = sum(a * np.cos(kx * xx + ky * yy + p) for a, (kx, ky), p in zip(amp, k, ph))

    def render(self, shift=(0.0, 0.0), brow=(0.0, 0.0), corner=(0.0, 0.0), wrinkle=0.0, blink=0.0):
        """RGB image ``(3, SIZE, SIZE)`` in [0, 1].

        ``brow``: (inwards, down) px, ``corner``: (outwards, down) px, ``wrinkle``: contrast,
        ``blink``: eyelid closure 0..1, ``shift``: rigid (x, y) head motion in px.
        """
        yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(float)
        # face coordinates: FACE_SCALE about the face centre (displacements scale with it)
        xx = self.cx + (xx - shift[0] - self.cx) / FACE_SCALE
        yy = self.cy + (yy - shift[1] - self.cy) / FACE_SCALE
        r = ((xx - self.cx) / self.ax) ** 2 + ((yy - self.cy) / self.ay) ** 2
        inside = 1 / (1 + np.exp((r - 1) * 12))
        shade = np.zeros_like(xx)
        for side in (-1, 1):
            bx = self.cx + side * (self.eye_dx - brow[0])
            shade += self.brow_dark * _gauss(xx, yy, bx, self.brow_y + brow[1], self.brow_len, 0.65)
            eh = 0.75 * (1 - 0.85 * blink) + 1e-3
            shade += 0.55 * (1 - 0.6 * blink) * _gauss(xx, yy, self.cx + side * self.eye_dx, self.eye_y, 1.1, eh)
        shade += 0.12 * _gauss(xx, yy, self.cx, self.cy + 1.5, 0.9, 1.8)  # nose shading
        for dy in (-0.8, 0.8):  # AU9 wrinkles at the nose bridge
            shade += wrinkle * _gauss(xx, yy, self.cx, self.eye_y + 1.2 + dy, 1.6, 0.35)
        lips = np.zeros_like(xx)
        for u in np.linspace(-1, 1, 7):
            end = abs(u) ** 2
            mx = self.cx + u * (self.mouth_w + end * corner[0])
            my = self.mouth_y + end * corner[1]
            lips += _gauss(xx, yy, mx, my, 0.8, 0.55)
        lips = np.clip(lips, 0, 1) * self.lip
        face = self.skin[:, None, None] * (1 + self.texture - shade)[None]
        face[1:] -= lips[None] * 0.8
        face[0] -= lips * 0.2
        img = inside[None] * face + (1 - inside[None]) * self.bg[:, None, None]
        return np.clip(img, 0, 1)


_AUS = {"surprise": "1+2", "positive": "12", "AU4": "4", "AU9": "9", "AU15": "15"}


def _motion(kind: str, a: float) -> dict[str, Any]:
    """Feature displacements at full intensity for an AU-like motion of amplitude ``a``."""
    if kind == "surprise":
        return {"brow": (0.0, -1.0 * a)}
    if kind == "positive":
        return {"corner": (0.5 * a, -0.9 * a)}
    if kind == "AU4":
        return {"brow": (0.5 * a, 0.7 * a)}
    if kind == "AU9":
        return {"wrinkle": 0.12 * a}
    if kind == "AU15":
        return {"corner": (0.0, 0.9 * a)}
    raise ValueError(kind)


def _scale(m: dict[str, Any], s: float) -> dict[str, Any]:
    return {k: (tuple(s * x for x in v) if isinstance(v, tuple) else s * v) for k, v in m.items()}


def _add(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        if k in out:
            out[k] = tuple(x + y for x, y in zip(out[k], v)) if isinstance(v, tuple) else out[k] + v
        else:
            out[k] = v
    return out


def _profile(onset: int, apex: int, offset: int) -> np.ndarray:
    t = np.arange(FRAMES, dtype=float)
    p = np.zeros(FRAMES)
    up = (t >= onset) & (t <= apex)
    p[up] = np.sin(np.pi / 2 * (t[up] - onset) / max(apex - onset, 1)) ** 2
    down = (t > apex) & (t <= offset)
    p[down] = np.cos(np.pi / 2 * (t[down] - apex) / max(offset - apex, 1)) ** 2
    return p


class SyntheticMER(Dataset):
    """Procedural micro-expression clips; see the module docstring for the generative model.

    Args:
        seed: generator seed (the dataset, not the run); the same seed gives the same data.
        n_subjects: number of subjects (>= 2; LOSO has one fold per subject).
        amplitude: scales every class motion (difficulty; 1.0 is the documented model).
        min_clips, max_clips: clips per subject, drawn uniformly in this range.
        cache: cache the rendered arrays on disk (see :func:`cache_dir`).

    Raises:
        DatasetError: on invalid sizes.
    """

    name: ClassVar[str] = "synthetic"
    summary: ClassVar[str] = "embedded procedural micro-expression clips (no download; the default)"
    classes: ClassVar[tuple[str, ...]] = CLASSES
    representations: ClassVar[tuple[str, ...]] = ("clip", "apex", "flow", "dynamic", "mesti", "regions")
    sample_shapes: ClassVar[dict[str, tuple[int, ...]]] = {"clip": (3, 8, 32, 32), "apex": (3, 32, 32),
                                                           "flow": (3, 28, 28), "dynamic": (3, 32, 32),
                                                           "mesti": (3, 32, 32), "regions": (3, 28, 28)}
    #: ``testbed`` where a method declares one (tuned on the development seeds), else ``fast``
    suggested_preset: ClassVar[tuple[str, ...]] = ("testbed", "fast")

    def __init__(self, seed: int = 0, n_subjects: int = 12, min_clips: int = 12, max_clips: int = 20,
                 amplitude: float = 1.0, cache: bool = True) -> None:
        if n_subjects < 1 or min_clips < 1 or max_clips < min_clips:
            raise DatasetError(f"invalid synthetic sizes: n_subjects={n_subjects}, clips {min_clips}..{max_clips}")
        self.seed = int(seed)
        self.n_subjects = int(n_subjects)
        self.min_clips = int(min_clips)
        self.max_clips = int(max_clips)
        self.amplitude = float(amplitude)
        self.cache = cache
        self._data: dict[str, Any] | None = None

    def options(self) -> dict[str, Any]:
        return {"seed": self.seed, "n_subjects": self.n_subjects, "min_clips": self.min_clips,
                "max_clips": self.max_clips, "amplitude": self.amplitude}

    def fingerprint(self) -> str:
        blob = json.dumps({"v": GENERATOR_VERSION, **self.options()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    # -- generation -----------------------------------------------------------------------------
    def _generate(self) -> dict[str, Any]:
        rows, clips, masks = [], [], []
        for s in range(self.n_subjects):
            rng = np.random.default_rng([self.seed, s])
            face = _Face(rng)
            subject = f"s{s + 1:02d}"
            for c in range(int(rng.integers(self.min_clips, self.max_clips + 1))):
                label = int(rng.choice(3, p=CLASS_P))
                kind = CLASSES[label] if label else ["AU4", "AU9", "AU15"][int(rng.integers(3))]
                amp = self.amplitude * face.gain * rng.uniform(1.2, 3.2)
                onset = int(rng.integers(0, 3))
                apex = onset + int(rng.integers(2, 4))
                offset = min(apex + int(rng.integers(2, 4)), FRAMES - 1)
                main = _motion(kind, amp)
                extra: dict[str, Any] = {}
                if rng.random() < 0.2:
                    other = [k for k in ("surprise", "positive", "AU4", "AU9", "AU15") if k != kind]
                    extra = _motion(other[int(rng.integers(len(other)))], 0.3 * amp)
                blink = np.zeros(FRAMES)
                if rng.random() < 0.35:
                    b0, dur = int(rng.integers(0, FRAMES - 1)), int(rng.integers(2, 4))
                    n = min(dur, FRAMES - b0)
                    blink[b0:b0 + n] = [1.0, 0.7, 0.3][:n]
                walk = np.cumsum(rng.normal(0, 0.15, (FRAMES, 2)), axis=0)
                prof = _profile(onset, apex, offset)
                extra_prof = _profile(*sorted(int(x) for x in rng.choice(FRAMES, 3, replace=False)))
                frames = []
                for t in range(FRAMES):
                    m = _add(_scale(main, prof[t]), _scale(extra, extra_prof[t]))
                    img = face.render(shift=tuple(walk[t]), blink=blink[t], **m)
                    img = img * (1 + rng.normal(0, 0.02)) + rng.normal(0, 0.03, img.shape)
                    frames.append(img)
                clips.append(np.clip(np.stack(frames, axis=1), 0, 1).astype(np.float32))
                masks.append(np.abs(face.render(**main) - face.render()).max(axis=0) > 0.02)
                coded = apex  # the annotation: one frame off with probability APEX_CODING_ERROR
                if rng.random() < APEX_CODING_ERROR:
                    coded = int(np.clip(apex + rng.choice([-1, 1]), onset + 1, offset - 1))
                rows.append({
                    "sample_id": f"synthetic/{subject}/{subject}_{c + 1:02d}", "dataset": "synthetic",
                    "subject": subject, "clip": f"{subject}_{c + 1:02d}", "onset": onset, "apex": coded,
                    "offset": offset, "emotion": CLASSES[label], "aus": _AUS[kind], "label": label,
                })
        return {"table": pd.DataFrame(rows, columns=list(rows[0].keys())),
                "clips": np.stack(clips), "masks": np.stack(masks)}

    def _load_all(self) -> dict[str, Any]:
        if self._data is not None:
            return self._data
        path = cache_dir() / f"synthetic-{self.fingerprint()}.npz"
        data = None
        if self.cache and path.exists():
            try:
                with np.load(path, allow_pickle=False) as z:
                    table = pd.read_json(io.StringIO(str(z["table"])), orient="split", dtype=False)
                    data = {"table": table, "clips": z["clips"], "masks": z["masks"]}
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
                data = None  # a damaged cache entry is regenerated and replaced, never trusted
        if data is None:
            data = self._generate()
            if self.cache:
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    with atomic_path(path) as tmp:  # no temporary file is left behind on failure
                        with open(tmp, "wb") as f:
                            np.savez(f, table=data["table"].to_json(orient="split", index=False),
                                     clips=data["clips"], masks=data["masks"])
                except OSError:
                    pass  # an unwritable cache only costs regeneration time
        validate_table(data["table"], len(CLASSES), where=f"synthetic (seed {self.seed})")
        self._data = data
        return data

    # -- Dataset API ------------------------------------------------------------------------------
    def table(self) -> pd.DataFrame:
        """The clip table (:data:`mer_bench.data.SCHEMA`)."""
        return self._load_all()["table"]

    def load(self, representation: str, index: np.ndarray) -> np.ndarray:
        """``clip``: ``(N, 3, 8, 32, 32)``; ``apex``: ``(N, 3, 32, 32)``; ``flow``: ``(N, 3, 28, 28)``
        (u, v, strain; see the module docstring); ``dynamic``: ``(N, 3, 32, 32)`` (the dynamic image
        of onset..offset, :func:`mer_bench.preprocess.dynamic_image`); ``mesti``: ``(N, 3, 32, 32)``
        (:func:`mer_bench.preprocess.mesti` of onset..offset); ``regions``: ``(N, 3, 28, 28)``, HTNet's
        four flow regions at its fixed landmarks (:func:`mer_bench.preprocess.htnet_regions`); float32
        in [0, 1].

        Raises:
            DatasetError: another representation.
        """
        data = self._load_all()
        clips = data["clips"][index]
        if representation == "clip":
            return clips
        if representation == "apex":
            apex = data["table"]["apex"].to_numpy()[index]
            return clips[np.arange(len(index)), :, apex]
        if representation == "flow":
            t = data["table"]
            rows = np.arange(len(index))
            onset, apex = t["onset"].to_numpy()[index], t["apex"].to_numpy()[index]
            return normal_flow(clips[rows, :, onset], clips[rows, :, apex])
        if representation == "regions":  # HTNet's input at its fixed fallback landmarks (no faces here)
            from mer_bench import preprocess as pp

            flow = self.load("flow", index)
            points = pp.clamp_landmarks(np.repeat(pp.HTNET_FALLBACK_LANDMARKS[None], len(flow), axis=0))
            return pp.htnet_regions(flow, points)
        if representation in ("dynamic", "mesti"):
            from mer_bench import preprocess as pp

            t = data["table"]
            out = []
            for clip, on, ap, off in zip(clips, t["onset"].to_numpy()[index], t["apex"].to_numpy()[index],
                                         t["offset"].to_numpy()[index]):
                frames = clip[:, on:off + 1].transpose(1, 2, 3, 0)  # (T, H, W, C)
                img = pp.dynamic_image(frames) if representation == "dynamic" else pp.mesti(frames, ap - on)
                out.append(img.transpose(2, 0, 1))
            return np.asarray(out, np.float32) / 255.0
        raise DatasetError(f"synthetic provides {', '.join(self.representations)}, not {representation!r}")

    def motion_mask(self, index: np.ndarray) -> np.ndarray:
        """``(N, 32, 32)`` bool: where each clip's class motion is (see the module docstring)."""
        return self._load_all()["masks"][index]


def normal_flow(onset: np.ndarray, apex: np.ndarray, crop: int = 28) -> np.ndarray:
    """Normal flow and strain from onset to apex frames ``(N, C, H, W)`` -> ``(N, 3, crop, crop)``.

    Channels u, v, strain, each min-max scaled to [0, 1] per image (as the MEGC 2019 composite
    images are); see the module docstring. The centre ``crop`` x ``crop`` is kept.
    """
    i0, i1 = onset.mean(axis=1), apex.mean(axis=1)
    iy, ix = np.gradient((i0 + i1) / 2, axis=(1, 2))
    it = i1 - i0
    denom = ix ** 2 + iy ** 2 + 1e-2
    u, v = -it * ix / denom, -it * iy / denom
    uy, ux = np.gradient(u, axis=(1, 2))
    vy, vx = np.gradient(v, axis=(1, 2))
    strain = np.sqrt(ux ** 2 + vy ** 2 + 0.5 * (uy + vx) ** 2)
    out = np.stack([u, v, strain], axis=1)
    top = (out.shape[-1] - crop) // 2
    out = out[:, :, top:top + crop, top:top + crop]
    lo = out.min(axis=(2, 3), keepdims=True)
    hi = out.max(axis=(2, 3), keepdims=True)
    return ((out - lo) / np.maximum(hi - lo, 1e-12)).astype(np.float32)
