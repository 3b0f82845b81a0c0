"""LBP-TOP: the vectorised :func:`lbp_top` against the per-voxel reference loop, in one run.

    python benchmarks/bench_lbptop.py            # 16 x 112 x 112, MEGC parameters and the P = 8 variant
    pytest benchmarks/bench_lbptop.py --benchmark-only --benchmark-enable

Both give identical histograms (asserted here and in tests/test_lbptop.py). Compare the ratio, not
the absolute times: the machine is shared.
"""

from __future__ import annotations

import time

import numpy as np

from mer_bench.methods.lbptop import lbp_top, lbp_top_reference


def _clip(shape=(16, 112, 112)) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, shape).astype(np.float32)


def test_lbp_top_megc_16x112x112(benchmark):
    clip = _clip()
    benchmark(lbp_top, clip)


def main() -> None:
    try:
        import threadpoolctl

        threadpoolctl.threadpool_limits(1)
    except ImportError:
        pass
    clip = _clip()
    for radii, p in (((1, 1, 4), 4), ((1, 1, 1), 8)):
        lbp_top(clip, radii, p)  # warm-up
        n = 20
        t0 = time.perf_counter()
        for _ in range(n):
            fast = lbp_top(clip, radii, p)
        vec = (time.perf_counter() - t0) / n
        t0 = time.perf_counter()
        ref = lbp_top_reference(clip, radii, p)
        loop = time.perf_counter() - t0
        assert np.array_equal(fast, ref), "the implementations disagree"
        print(f"LBP-TOP radii={radii} P={p} on 16x112x112: vectorised {vec * 1e3:.1f} ms, per-voxel reference "
              f"{loop:.2f} s, {loop / vec:.0f}x faster; histograms identical")


if __name__ == "__main__":
    main()
