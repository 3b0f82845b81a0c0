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


def test_tim_reproduces_the_frames_and_interpolates_smoothly():
    from mer_bench.preprocess import tim

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (9, 12, 10, 3)).astype(np.uint8)
    np.testing.assert_allclose(tim(frames, 9), frames, atol=1e-3)  # n = T gives the input back
    ramp = np.linspace(0, 80, 7)[:, None, None] * np.ones((7, 4, 4))
    between = tim(ramp, 13)[:, 0, 0]  # every second output is an input frame, the rest lie on the curve
    np.testing.assert_allclose(between[::2], np.linspace(0, 80, 7), atol=1e-3)
    assert np.all(np.diff(between) > 0) and np.abs(between - np.linspace(0, 80, 13)).max() < 1.0
    assert tim(frames, 16).shape == (16, 12, 10, 3)  # up-sampling, as for short 25-100 fps clips
    assert tim(frames[:1], 4).shape == (4, 12, 10, 3)
    with pytest.raises(ValueError, match="cannot interpolate"):
        tim(frames[:0], 4)


def test_temporal_clip_rules():
    from mer_bench.preprocess import temporal_clip

    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (30, 40, 36, 3)).astype(np.uint8)
    for rule in ("apex", "tim", "uniform"):
        x = temporal_clip(frames, apex_pos=12, length=8, size=16, rule=rule)
        assert x.shape == (3, 8, 16, 16) and abs(float(x.mean())) < 1e-4
    a = temporal_clip(frames, 12, 8, 16, "apex")
    t = temporal_clip(frames, 12, 8, 16, "tim")
    assert not np.allclose(a, t)  # the apex window covers 8 frames, TIM the whole clip
    with pytest.raises(ValueError, match="unknown clip rule"):
        temporal_clip(frames, 12, rule="middle")
