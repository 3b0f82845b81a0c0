"""Python-only preprocessing of raw clips (OpenCV).

Every function works on numpy arrays; frames are ``(T, H, W)`` grey or ``(T, H, W, 3)`` BGR
``uint8`` as OpenCV reads them.

* :func:`face_box` / :func:`crop_clip`: the face found by OpenCV's bundled Haar cascade
  (Viola & Jones 2001) on the onset frame, applied to the whole clip (so the crop does not jitter);
* :func:`apex_window`, :func:`meranet_clip`: MERANet's input (Gajjala et al. 2021, section 4.2):
  ``length`` frames centred on the apex, edge frames replicated when the clip is short, resized
  to ``size`` x ``size``, per-channel mean/std normalised -> float32 ``(C, T, size, size)``;
* :func:`resample_time`: uniform linear temporal resampling to ``n`` frames;
* :func:`tim`: the temporal interpolation model (TIM; Zhou, Zhao, Pietikainen, CVPR 2011, as used
  for SMIC by Pfister et al., ICCV 2011): frames are placed on the path-graph (curve) embedding and
  ``n`` frames are sampled uniformly along it;
* :func:`temporal_clip`: a clip of ``n`` frames by any of these rules (``apex`` window, ``tim``,
  ``uniform``), resized and normalised like MERANet's input;
* :func:`optical_flow` (``tvl1``: Zach, Pock, Bischof 2007 via ``cv2.optflow``; ``dis``: Kroeger
  et al. 2016; ``farneback``: Farneback 2003), :func:`optical_strain` and :func:`flow_image`:
  the onset-to-apex flow image stored like the MEGC 2019 composite images (28 x 28, R = u,
  G = v, B = strain, each channel min-max scaled to 0..255 per image);
* :func:`dynamic_image`: approximate rank pooling (Bilen et al., CVPR 2016), LEARNet's input;
* :func:`mesti`: mer-bench's stand-in for MEGANet's MESTI image (the paper defines MESTI only as
  one image that keeps the micro-movements; see the function for the named choice).
"""

from __future__ import annotations

import numpy as np

__all__ = ["face_box", "crop_clip", "apex_window", "meranet_clip", "resample_time", "tim", "temporal_clip",
           "CLIP_RULES", "optical_flow",
           "optical_strain", "flow_image", "rank_pool_weights", "dynamic_image", "mesti", "FLOW_METHODS", "to_gray",
           "HTNET_FALLBACK_LANDMARKS", "htnet_regions", "clamp_landmarks"]

FLOW_METHODS = ("tvl1", "dis", "farneback")
#: how a fixed-length clip is taken from onset..offset (see :func:`temporal_clip`)
CLIP_RULES = ("apex", "tim", "uniform")


def _cv2():
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise ImportError("preprocessing needs OpenCV: pip install 'opencv-contrib-python-headless<5'") from exc
    return cv2


def to_gray(frame: np.ndarray) -> np.ndarray:
    """``(H, W)`` uint8 from a grey or BGR frame."""
    cv2 = _cv2()
    return frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)


def face_box(frame: np.ndarray, scale: float = 1.1, neighbours: int = 5,
             min_size: tuple[int, int] = (60, 60)) -> tuple[int, int, int, int] | None:
    """The largest face ``(x, y, w, h)`` in pixels found by the bundled frontal-face Haar cascade,
    or ``None`` when there is none."""
    cv2 = _cv2()
    path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise RuntimeError(f"OpenCV's Haar cascade {path} is missing: install opencv-contrib-python-headless<5 "
                           f"(OpenCV 5 wheels ship no cascades)")
    faces = cascade.detectMultiScale(to_gray(frame), scaleFactor=scale, minNeighbors=neighbours, minSize=min_size)
    if len(faces) == 0:
        return None
    x, y, w, h = max(faces, key=lambda f: f[2] * f[3])
    return int(x), int(y), int(w), int(h)


def crop_clip(frames: np.ndarray, box: tuple[int, int, int, int] | None) -> np.ndarray:
    """Frames ``(T, H, W[, C])`` cropped to ``box`` (``None``: unchanged)."""
    if box is None:
        return frames
    x, y, w, h = box
    return frames[:, y:y + h, x:x + w]


def apex_window(n_frames: int, apex_pos: int, length: int = 16) -> np.ndarray:
    """Indices of a ``length``-frame window centred on ``apex_pos`` (0-based position in the clip),
    edge frames replicated when the clip is shorter (MERANet).

    Raises:
        ValueError: an empty clip or an apex outside it.
    """
    if n_frames < 1 or not 0 <= apex_pos < n_frames:
        raise ValueError(f"apex position {apex_pos} outside a clip of {n_frames} frames")
    start = apex_pos - length // 2
    return np.clip(np.arange(start, start + length), 0, n_frames - 1)


def _normalised(picked: list[np.ndarray] | np.ndarray) -> np.ndarray:
    x = np.asarray(picked, np.float32)
    if x.ndim == 3:
        x = x[..., None]
    x = x.transpose(3, 0, 1, 2)
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    std = x.std(axis=(1, 2, 3), keepdims=True)
    return ((x - mean) / (std + 1e-6)).astype(np.float32)


def meranet_clip(frames: np.ndarray, apex_pos: int, length: int = 16, size: int = 112) -> np.ndarray:
    """MERANet input: float32 ``(C, length, size, size)``, per-channel zero mean and unit variance
    over the clip (C = 1 for grey, 3 for BGR frames)."""
    cv2 = _cv2()
    idx = apex_window(len(frames), apex_pos, length)
    return _normalised([cv2.resize(frames[i], (size, size), interpolation=cv2.INTER_AREA) for i in idx])


def temporal_clip(frames: np.ndarray, apex_pos: int, length: int = 16, size: int = 112,
                  rule: str = "apex") -> np.ndarray:
    """A fixed-length clip ``(C, length, size, size)`` float32, normalised per channel like
    :func:`meranet_clip`, from the frames ``(T, H, W[, C])`` of onset..offset.

    Args:
        rule: ``"apex"`` (MERANet: ``length`` frames centred on the apex, edges replicated),
            ``"tim"`` (the whole clip by :func:`tim`) or ``"uniform"`` (the whole clip by
            :func:`resample_time`).

    Raises:
        ValueError: an unknown rule, an empty clip or an apex outside it.
    """
    if rule == "apex":
        return meranet_clip(frames, apex_pos, length, size)
    if rule not in CLIP_RULES:
        raise ValueError(f"unknown clip rule {rule!r}; choose {', '.join(CLIP_RULES)}")
    cv2 = _cv2()
    small = np.asarray([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in frames])
    out = tim(small, length) if rule == "tim" else resample_time(small, length)
    return _normalised(out)


def resample_time(frames: np.ndarray, n: int) -> np.ndarray:
    """Linear temporal interpolation of ``(T, ...)`` to ``(n, ...)`` float32.

    Raises:
        ValueError: ``n < 1`` or an empty clip.
    """
    x = np.asarray(frames, np.float32)
    if n < 1 or len(x) == 0:
        raise ValueError(f"cannot resample {len(x)} frames to {n}")
    pos = np.linspace(0, len(x) - 1, n)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, len(x) - 1)
    w = (pos - lo).reshape(-1, *([1] * (x.ndim - 1)))
    return (1 - w) * x[lo] + w * x[hi]


def tim(frames: np.ndarray, n: int) -> np.ndarray:
    """The temporal interpolation model (TIM; Zhou, Zhao, Pietikainen, CVPR 2011): ``(T, ...)``
    frames to ``(n, ...)`` float32.

    The ``T`` frames are the vertices of a path graph; its Laplacian's non-constant eigenvectors
    give the curve embedding ``y_k(t) = sin(pi k t / T + pi (T - k) / (2 T))``, ``k = 1..T-1``,
    ``t = 1..T``. The frames (mean removed) are mapped linearly onto that embedding, and ``n``
    points spaced uniformly along the curve, ``t`` in ``linspace(1, T, n)``, are mapped back. The
    paper fits the map after PCA; since the centred frames and the embedding span the same
    ``T - 1``-dimensional space of zero-sum vectors, the map is exactly ``Y(t) Y^+ (X - mean)``,
    computed here without PCA (the same frames, without a rank cut). ``n = T`` reproduces the
    input. A one-frame clip is repeated.

    Raises:
        ValueError: ``n < 1`` or an empty clip.
    """
    x = np.asarray(frames, np.float64)
    t = len(x)
    if n < 1 or t == 0:
        raise ValueError(f"cannot interpolate {t} frames to {n}")
    if t == 1:
        return np.repeat(x, n, axis=0).astype(np.float32)
    flat = x.reshape(t, -1)
    mean = flat.mean(axis=0)
    k = np.arange(1, t)

    def embed(pos: np.ndarray) -> np.ndarray:
        return np.sin(np.pi * np.outer(pos, k) / t + np.pi * (t - k) / (2 * t))

    y = embed(np.arange(1, t + 1, dtype=np.float64))
    out = embed(np.linspace(1, t, n)) @ (np.linalg.pinv(y) @ (flat - mean)) + mean
    return out.reshape(n, *x.shape[1:]).astype(np.float32)


def optical_flow(prev: np.ndarray, nxt: np.ndarray, method: str = "tvl1") -> np.ndarray:
    """Dense flow ``(H, W, 2)`` float32 (u = x, v = y, pixels) from ``prev`` to ``nxt``.

    Raises:
        ValueError: an unknown method. RuntimeError: TV-L1 without OpenCV's contrib modules.
    """
    cv2 = _cv2()
    a, b = to_gray(prev), to_gray(nxt)
    if method == "tvl1":
        make = getattr(getattr(cv2, "optflow", None), "DualTVL1OpticalFlow_create", None)
        if make is None:
            raise RuntimeError("TV-L1 needs cv2.optflow: install opencv-contrib-python-headless<5 "
                               "(not opencv-python-headless)")
        return make().calc(a, b, None)
    if method == "dis":
        return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(a, b, None)
    if method == "farneback":
        return cv2.calcOpticalFlowFarneback(a, b, None, pyr_scale=0.5, levels=3, winsize=15, iterations=3,
                                            poly_n=5, poly_sigma=1.2, flags=0)
    raise ValueError(f"unknown flow method {method!r}; choose {', '.join(FLOW_METHODS)}")


def optical_strain(flow: np.ndarray) -> np.ndarray:
    """Strain magnitude ``sqrt(ux^2 + vy^2 + (uy + vx)^2 / 2)`` ``(H, W)`` of a flow ``(H, W, 2)``
    (Shreve et al. 2011)."""
    u, v = flow[..., 0].astype(np.float64), flow[..., 1].astype(np.float64)
    uy, ux = np.gradient(u)
    vy, vx = np.gradient(v)
    return np.sqrt(ux ** 2 + vy ** 2 + 0.5 * (uy + vx) ** 2)


def _minmax_u8(a: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    lo, hi = float(a.min()), float(a.max())
    if hi - lo < eps:
        return np.zeros(a.shape, np.uint8)
    return np.round(255 * (a - lo) / (hi - lo)).astype(np.uint8)


def flow_image(onset: np.ndarray, apex: np.ndarray, size: int = 28, method: str = "tvl1") -> np.ndarray:
    """The STSTNet/HTNet input as an RGB ``uint8`` image ``(size, size, 3)``: R = u, G = v,
    B = strain, each channel resized (area) then min-max scaled to 0..255 per image."""
    cv2 = _cv2()
    f = optical_flow(onset, apex, method)
    chans = (f[..., 0], f[..., 1], optical_strain(f))
    return np.dstack([_minmax_u8(cv2.resize(c.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA))
                      for c in chans])


def rank_pool_weights(t: int) -> np.ndarray:
    """Approximate rank pooling weights ``alpha_i = sum_{k=i..T} (2k - T - 1) / k`` (sum to 0)."""
    k = np.arange(1, t + 1, dtype=np.float64)
    return np.cumsum(((2 * k - t - 1) / k)[::-1])[::-1]


def dynamic_image(frames: np.ndarray) -> np.ndarray:
    """The dynamic image of ``(T, H, W[, C])`` frames as ``uint8`` ``(H, W[, C])``; a static clip
    gives a constant (zero) image."""
    x = np.asarray(frames, np.float64)
    return _minmax_u8(np.tensordot(rank_pool_weights(len(x)), x, axes=1))


def mesti(frames: np.ndarray, apex_pos: int) -> np.ndarray:
    """A micro-expression spatio-temporal image ``(H, W, 3)`` ``uint8`` of ``(T, H, W[, C])``
    frames (onset first).

    MEGANet (Nguyen et al., arXiv 2509.00056) defines MESTI only as one image that preserves the
    micro-movements of a clip; its construction is unpublished. This is mer-bench's named choice
    ``mesti-v1``: channel 0 the apex frame (grey), channel 1 the absolute apex - onset difference,
    channel 2 the per-pixel temporal standard deviation over the clip; each channel min-max scaled to
    0..255 per image.

    Raises:
        ValueError: an empty clip or an apex outside it.
    """
    x = np.asarray(frames, np.float64)
    if len(x) == 0 or not 0 <= apex_pos < len(x):
        raise ValueError(f"apex position {apex_pos} outside a clip of {len(x)} frames")
    grey = x.mean(axis=-1) if x.ndim == 4 else x
    apex = grey[apex_pos]
    return np.dstack([_minmax_u8(apex), _minmax_u8(np.abs(apex - grey[0])), _minmax_u8(grey.std(axis=0))])


#: HTNet's fixed landmarks where MTCNN finds no face (``main_HTNet.py``, ``whole_face_block_coordinates``):
#: left eye, right eye, nose, left and right mouth corner, as (x, y) in the 28 x 28 apex face
HTNET_FALLBACK_LANDMARKS = np.array([[9.528073, 11.062551], [21.396168, 10.919773], [15.380184, 17.380562],
                                     [10.255435, 22.121233], [20.583706, 22.25584]])


def clamp_landmarks(points: np.ndarray) -> np.ndarray:
    """HTNet's landmark step after detection: every coordinate clamped to [7, 21] (so that a 14 x 14
    crop centred on it stays inside the 28 x 28 image), then truncated to int. ``(..., 5, 2)`` -> int64."""
    return np.clip(np.asarray(points, dtype=np.float64), 7, 21).astype(np.int64)


def htnet_regions(flow: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """HTNet's input (``main_HTNet.py``, ``crop_optical_flow_block`` and the tiling in ``main``):
    four 14 x 14 crops of each 28 x 28 flow image tiled 2 x 2, ``[left eye | right eye]`` over
    ``[left mouth corner | right mouth corner]`` (MTCNN's points 0, 1 / 3, 4; the nose, point 2, is
    unused).

    As released, a crop centred on the landmark ``(x, y)`` takes image **rows** ``x-7 .. x+6`` and
    columns ``y-7 .. y+6``: the first coordinate (MTCNN's x, a column) indexes rows, so the crops
    sit at the landmarks mirrored about the diagonal. This is reproduced, not corrected.

    Args:
        flow: ``(N, C, 28, 28)`` flow images.
        landmarks: ``(N, 5, 2)`` integer ``(x, y)`` in [7, 21] (:func:`clamp_landmarks`).

    Returns:
        ``(N, C, 28, 28)`` of the same dtype.

    Raises:
        ValueError: other shapes, or a landmark outside [7, 21].
    """
    flow, points = np.asarray(flow), np.asarray(landmarks)
    if flow.ndim != 4 or flow.shape[-2:] != (28, 28) or points.shape != (len(flow), 5, 2):
        raise ValueError(f"htnet_regions needs flow (N, C, 28, 28) and landmarks (N, 5, 2), got {flow.shape} and "
                         f"{points.shape}")
    if points.min(initial=7) < 7 or points.max(initial=21) > 21:
        raise ValueError("landmarks must lie in [7, 21] (clamp_landmarks) so that 14 x 14 crops fit the image")
    out = np.empty_like(flow)
    for i in range(len(flow)):
        crops = [flow[i, :, r - 7:r + 7, c - 7:c + 7] for r, c in points[i]]  # rows by x, as released
        out[i, :, :14, :14], out[i, :, :14, 14:] = crops[0], crops[1]
        out[i, :, 14:, :14], out[i, :, 14:, 14:] = crops[3], crops[4]
    return out
