"""Preprocessing speed on this machine: crop + clip extraction, flow pairs per method, and the
cache (a second pass over a dataset reads ``$MER_BENCH_CACHE`` instead of recomputing).

    python benchmarks/bench_preprocess.py            # a generated CASME II tree (textured frames, no faces)

Flow and clip numbers are throughput on generated 280 x 340 frames (the size of a CASME II face
crop); the cache pass uses a generated tree of 640 x 480 JPEG frames like the CASME II release.
Compare methods as ratios measured in one run, the machine being shared.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np


def _tree(root: Path, n_clips: int, n_frames: int) -> None:
    import cv2
    import pandas as pd

    rng = np.random.default_rng(0)
    rows = []
    for i in range(n_clips):
        sub, clip = f"sub{i % 5 + 1:02d}", f"EP{i:02d}_01"
        folder = root / "CASME2_RAW_selected" / sub / clip
        folder.mkdir(parents=True)
        base = cv2.GaussianBlur(rng.integers(0, 255, (480, 640), dtype=np.uint8), (9, 9), 3)
        for t in range(n_frames):
            cv2.imwrite(str(folder / f"img{t + 1}.jpg"), np.dstack([np.roll(base, t // 4, axis=1)] * 3))
        rows.append([sub[3:], clip, 1, n_frames // 2, n_frames, "4", "disgust"])
    pd.DataFrame(rows, columns=["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units",
                                "Estimated Emotion"]).to_excel(root / "CASME2-coding-20140508.xlsx", index=False)


def main() -> None:
    import cv2

    from mer_bench import preprocess as pp
    from mer_bench.datasets.casme import CASME2

    cv2.setNumThreads(1)
    rng = np.random.default_rng(0)
    a = cv2.GaussianBlur(rng.integers(0, 255, (340, 280), dtype=np.uint8), (9, 9), 3)
    b = np.roll(a, 1, axis=1)
    print("flow pairs per second (one thread):")
    for size in (112, 224):
        x, y = cv2.resize(a, (size, size)), cv2.resize(b, (size, size))
        for method in pp.FLOW_METHODS:
            n = 3 if method == "tvl1" else 20
            t0 = time.perf_counter()
            for _ in range(n):
                pp.flow_image(x, y, method=method)
            print(f"  {method:10s} {size}x{size}: {n / (time.perf_counter() - t0):8.1f}")
    frames = np.stack([np.dstack([np.roll(a, t, axis=1)] * 3) for t in range(40)])
    t0 = time.perf_counter()
    for _ in range(5):
        box = pp.face_box(frames[0])
        pp.meranet_clip(pp.crop_clip(frames, box), 20, 16, 112)
    dt = time.perf_counter() - t0
    print(f"crop (Haar on the onset frame) + 16-frame MERANet clip: {5 * 16 / dt:.0f} output frames/s")

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MER_BENCH_CACHE"] = str(Path(tmp) / "cache")
        root = Path(tmp) / "CASME2"
        _tree(root, n_clips=10, n_frames=60)  # CASME II-like: 640x480 JPEGs, ~60 frames onset..offset
        idx = np.arange(10)
        t0 = time.perf_counter()
        CASME2(data_root=str(root)).load("clip", idx)
        CASME2(data_root=str(root)).load("flow", idx)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        CASME2(data_root=str(root)).load("clip", idx)
        CASME2(data_root=str(root)).load("flow", idx)
        second = time.perf_counter() - t0
        print(f"10 clips of 60 640x480 frames x (clip + DIS flow): first pass {first:.2f} s, "
              f"second pass (cache) {second:.3f} s, {first / second:.0f}x faster")


if __name__ == "__main__":
    main()
