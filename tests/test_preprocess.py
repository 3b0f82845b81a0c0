"""Preprocessing on generated frames (never real faces)."""

import numpy as np
import pytest

from mer_bench import preprocess as pp

cv2 = pytest.importorskip("cv2")


def _moving_square(dx=2, dy=0, size=64):
    a = np.zeros((size, size), np.uint8)
    a[20:40, 20:40] = 200
    a = cv2.GaussianBlur(a, (9, 9), 3)
    b = np.roll(np.roll(a, dx, axis=1), dy, axis=0)
    return a, b


@pytest.mark.parametrize("method", pp.FLOW_METHODS)
def test_flow_recovers_a_known_shift(method):
    a, b = _moving_square(dx=2)
    f = pp.optical_flow(a, b, method)
    inside = f[22:38, 22:38]
    assert f.shape == (64, 64, 2) and f.dtype == np.float32
    assert inside[..., 0].mean() == pytest.approx(2, abs=0.6) and abs(inside[..., 1].mean()) < 0.4


def test_flow_image_is_stored_like_the_composite():
    a, b = _moving_square(dx=2, dy=1)
    img = pp.flow_image(a, b, method="farneback")
    assert img.shape == (28, 28, 3) and img.dtype == np.uint8
    assert all(img[..., c].min() == 0 and img[..., c].max() == 255 for c in range(3))
    with pytest.raises(ValueError, match="unknown flow method"):
        pp.optical_flow(a, b, "lk")


def test_strain_of_a_pure_translation_is_zero_and_of_a_stretch_is_not():
    h, w = np.mgrid[0:32, 0:32].astype(np.float64)
    shift = np.dstack([np.full_like(w, 3.0), np.full_like(h, -1.0)])
    assert np.allclose(pp.optical_strain(shift), 0)
    stretch = np.dstack([0.1 * w, np.zeros_like(h)])  # ux = 0.1
    assert np.allclose(pp.optical_strain(stretch), 0.1)


def test_apex_window_replicates_edges_and_meranet_clip_normalises():
    assert pp.apex_window(5, 2, 8).tolist() == [0, 0, 0, 1, 2, 3, 4, 4]
    assert pp.apex_window(40, 20, 16).tolist() == list(range(12, 28))
    with pytest.raises(ValueError, match="outside"):
        pp.apex_window(5, 5)
    frames = np.random.default_rng(0).integers(0, 255, (10, 50, 40, 3), dtype=np.uint8)
    x = pp.meranet_clip(frames, apex_pos=4, length=16, size=112)
    assert x.shape == (3, 16, 112, 112) and x.dtype == np.float32
    assert np.allclose(x.mean(axis=(1, 2, 3)), 0, atol=1e-4) and np.allclose(x.std(axis=(1, 2, 3)), 1, atol=1e-3)


def test_resample_time_is_linear_and_keeps_the_ends():
    x = np.arange(5, dtype=np.float32)[:, None] * np.ones((5, 3), np.float32)
    y = pp.resample_time(x, 9)
    assert y.shape == (9, 3) and y[0, 0] == 0 and y[-1, 0] == 4 and y[1, 0] == pytest.approx(0.5)


def test_dynamic_image_weights_and_static_clip():
    a = pp.rank_pool_weights(5)
    assert a.sum() == pytest.approx(0) and a[0] < 0 < a[-1]
    static = np.full((6, 8, 8), 100, np.uint8)
    assert (pp.dynamic_image(static) == 0).all()
    ramp = np.stack([np.full((8, 8), t, np.uint8) for t in range(6)])
    ramp[:, :, :4] = 0  # left half still, right half brightens: the right half must come out brighter
    di = pp.dynamic_image(ramp)
    assert di[:, 4:].mean() > di[:, :4].mean()


def test_face_box_finds_no_face_in_noise_and_crop_keeps_the_clip():
    noise = np.random.default_rng(0).integers(0, 255, (120, 120), dtype=np.uint8)
    assert pp.face_box(noise) is None
    clip = np.zeros((4, 100, 80), np.uint8)
    assert pp.crop_clip(clip, None).shape == clip.shape
    assert pp.crop_clip(clip, (10, 20, 30, 40)).shape == (4, 40, 30)
