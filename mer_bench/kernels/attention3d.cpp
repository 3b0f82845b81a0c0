// mer-bench: MERANet's channel and spatio-temporal attention (Gajjala et al., ICVGIP 2021,
// Eqs. 1-9) on the CPU, as the few passes over the block's activation that the maths needs.
//
//   y = x * a      a = sigmoid(S(avg_thw x) + S(max_thw x))          (N, C) channel attention
//   z = y * s      s = sigmoid(conv(mean_c y, max_c y))               (N, P) spatio-temporal attention
//
// PyTorch runs this as about twenty operators, each a pass over x (N, C, T, H, W); max's backward
// alone is three (compare, divide by the tie count, multiply). Here the large passes are the six
// kernels below (three forward, three backward); the small parts (S, the convolution, the sigmoids)
// stay PyTorch operators (mer_bench/kernels/attention3d.py). Layout: x in channels_last_3d, i.e.
// (N, P, C) with P = T * H * W positions and the channels innermost, so channel loops are SIMD vectors.
// Products are formed in the plain path's order ((x * a) * s; dL/dy = dL/dz * s, then * a); sums run
// in another order than PyTorch's (over positions: float32 blocks of 64 added up in float64), so
// results agree up to rounding. A maximum's gradient goes to its first occurrence in scan order
// (amax splits it among exact ties, which float activations do not have). A NaN in x makes the
// means, hence both maps and the loss, NaN (the trainer then stops), whichever maximum is kept.
// Threads: at::parallel_for over the batch; every output is per sample, so any thread count gives
// the same bits.

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

namespace {

// positions summed in float32 before the float64 total: short enough for float32, long enough to vectorise
constexpr int64_t kBlock = 64;

// out[c] = scale * sum over positions p of what row(p, part) adds into part[c]: float32 sums over
// blocks of kBlock positions, added up in float64 (the one summation of every kernel below)
template <typename Row>
void sum_over_positions(int64_t P, int64_t C, float* __restrict part, std::vector<double>& acc, float* out,
                        double scale, Row row) {
  for (int64_t c = 0; c < C; ++c) acc[c] = 0.0;
  for (int64_t p0 = 0; p0 < P; p0 += kBlock) {
    const int64_t p1 = std::min(P, p0 + kBlock);
    for (int64_t c = 0; c < C; ++c) part[c] = 0.f;
    for (int64_t p = p0; p < p1; ++p) row(p, part);
    for (int64_t c = 0; c < C; ++c) acc[c] += part[c];
  }
  for (int64_t c = 0; c < C; ++c) out[c] = static_cast<float>(acc[c] * scale);
}

void check_npc(const torch::Tensor& x, const char* what) {
  TORCH_CHECK(x.dim() == 3 && x.is_contiguous() && x.scalar_type() == torch::kFloat32,
              what, " must be a contiguous float32 (N, P, C) tensor");
}

}  // namespace

// avg and max over positions per (n, c), and where the max is: x (N, P, C) -> (N, C) x 3
std::vector<torch::Tensor> thw_stats(torch::Tensor x) {
  check_npc(x, "x");
  const int64_t N = x.size(0), P = x.size(1), C = x.size(2);
  auto avg = torch::empty({N, C}, x.options());
  auto mx = torch::empty({N, C}, x.options());
  auto arg = torch::empty({N, C}, x.options().dtype(torch::kInt64));
  const float* xp = x.data_ptr<float>();
  float* ap = avg.data_ptr<float>();
  float* mp = mx.data_ptr<float>();
  int64_t* ip = arg.data_ptr<int64_t>();
  at::parallel_for(0, N, 1, [&](int64_t n0, int64_t n1) {
    std::vector<double> sum(C);
    std::vector<float> part_(C), best_(C);
    std::vector<int32_t> where_(C);
    float* __restrict part = part_.data();
    float* __restrict best = best_.data();
    int32_t* __restrict where = where_.data();
    for (int64_t n = n0; n < n1; ++n) {
      const float* __restrict xn = xp + n * P * C;
      for (int64_t c = 0; c < C; ++c) { best[c] = -std::numeric_limits<float>::infinity(); where[c] = 0; }
      const double inv_p = 1.0 / static_cast<double>(P);
      sum_over_positions(P, C, part, sum, ap + n * C, inv_p, [&](int64_t p, float* __restrict s) {
        const float* __restrict row = xn + p * C;
        const int32_t pi = static_cast<int32_t>(p);
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) {
          const float v = row[c];
          s[c] += v;
          const bool gt = v > best[c];  // the first maximum in scan order
          best[c] = gt ? v : best[c];
          where[c] = gt ? pi : where[c];
        }
      });
      for (int64_t c = 0; c < C; ++c) {
        mp[n * C + c] = best[c];
        ip[n * C + c] = where[c];
      }
    }
  });
  return {avg, mx, arg};
}

// dL/dx of thw_stats: g_avg / P everywhere plus g_max at each (n, c)'s maximum
torch::Tensor thw_stats_backward(torch::Tensor g_avg, torch::Tensor g_max, torch::Tensor arg, int64_t P) {
  const int64_t N = g_avg.size(0), C = g_avg.size(1);
  auto gx = torch::empty({N, P, C}, g_avg.options());
  const float* ga = g_avg.data_ptr<float>();
  const float* gm = g_max.data_ptr<float>();
  const int64_t* ip = arg.data_ptr<int64_t>();
  float* gp = gx.data_ptr<float>();
  const float inv = 1.0f / static_cast<float>(P);
  at::parallel_for(0, N, 1, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      const float* gan = ga + n * C;
      float* gn = gp + n * P * C;
      for (int64_t p = 0; p < P; ++p) {
        float* row = gn + p * C;
        for (int64_t c = 0; c < C; ++c) row[c] = gan[c] * inv;
      }
      for (int64_t c = 0; c < C; ++c) gn[ip[n * C + c] * C + c] += gm[n * C + c];
    }
  });
  return gx;
}

// mean and max over channels of y = x * a per (n, p), and the max's channel: -> (N, P) x 3
std::vector<torch::Tensor> c_stats(torch::Tensor x, torch::Tensor a) {
  check_npc(x, "x");
  const int64_t N = x.size(0), P = x.size(1), C = x.size(2);
  auto mean = torch::empty({N, P}, x.options());
  auto mx = torch::empty({N, P}, x.options());
  auto arg = torch::empty({N, P}, x.options().dtype(torch::kInt32));
  const float* xp = x.data_ptr<float>();
  const float* apt = a.data_ptr<float>();
  float* mep = mean.data_ptr<float>();
  float* mxp = mx.data_ptr<float>();
  int32_t* ip = arg.data_ptr<int32_t>();
  const float invc = 1.0f / static_cast<float>(C);
  at::parallel_for(0, N, 1, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      const float* an = apt + n * C;
      for (int64_t p = 0; p < P; ++p) {
        const float* row = xp + (n * P + p) * C;
        float s = 0.f, best = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(+ : s) reduction(max : best)
        for (int64_t c = 0; c < C; ++c) {
          const float v = row[c] * an[c];
          s += v;
          best = v > best ? v : best;
        }
        int32_t where = 0;  // the first channel that attains it (C is small: the row is in cache)
        while (where + 1 < C && !(row[where] * an[where] == best)) ++where;
        mep[n * P + p] = s * invc;
        mxp[n * P + p] = best;
        ip[n * P + p] = where;
      }
    }
  });
  return {mean, mx, arg};
}

// dL/dx and dL/da of c_stats from dL/dmean, dL/dmax (N, P)
std::vector<torch::Tensor> c_stats_backward(torch::Tensor x, torch::Tensor a, torch::Tensor g_mean,
                                            torch::Tensor g_max, torch::Tensor arg) {
  check_npc(x, "x");
  const int64_t N = x.size(0), P = x.size(1), C = x.size(2);
  auto gx = torch::empty_like(x);
  auto ga = torch::empty({N, C}, x.options());
  const float* xp = x.data_ptr<float>();
  const float* apt = a.data_ptr<float>();
  const float* gmp = g_mean.data_ptr<float>();
  const float* gxp_ = g_max.data_ptr<float>();
  const int32_t* ip = arg.data_ptr<int32_t>();
  float* gxo = gx.data_ptr<float>();
  float* gao = ga.data_ptr<float>();
  const float invc = 1.0f / static_cast<float>(C);
  at::parallel_for(0, N, 1, [&](int64_t n0, int64_t n1) {
    std::vector<double> acc(C);
    std::vector<float> part_(C);
    float* __restrict part = part_.data();
    for (int64_t n = n0; n < n1; ++n) {
      const float* __restrict an = apt + n * C;
      sum_over_positions(P, C, part, acc, gao + n * C, 1.0, [&](int64_t p, float* __restrict ga_part) {
        const int64_t off = (n * P + p) * C;
        const float gm = gmp[n * P + p] * invc;
        const float* __restrict xr = xp + off;
        float* __restrict gr = gxo + off;
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) {
          gr[c] = gm * an[c];
          ga_part[c] += gm * xr[c];
        }
        const int64_t c = ip[n * P + p];
        const float gy = gxp_[n * P + p];
        gr[c] += gy * an[c];
        ga_part[c] += gy * xr[c];
      });
    }
  });
  return {gx, ga};
}

// z = (x * a) * s: x (N, P, C), a (N, C), s (N, P)
torch::Tensor scale(torch::Tensor x, torch::Tensor a, torch::Tensor s) {
  check_npc(x, "x");
  const int64_t N = x.size(0), P = x.size(1), C = x.size(2);
  auto z = torch::empty_like(x);
  const float* xp = x.data_ptr<float>();
  const float* apt = a.data_ptr<float>();
  const float* sp = s.data_ptr<float>();
  float* zp = z.data_ptr<float>();
  at::parallel_for(0, N, 1, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      const float* an = apt + n * C;
      for (int64_t p = 0; p < P; ++p) {
        const int64_t off = (n * P + p) * C;
        const float sv = sp[n * P + p];
        for (int64_t c = 0; c < C; ++c) zp[off + c] = (xp[off + c] * an[c]) * sv;
      }
    }
  });
  return z;
}

// dL/dx, dL/da (N, C) and dL/ds (N, P) of scale, from dL/dz
std::vector<torch::Tensor> scale_backward(torch::Tensor gz, torch::Tensor x, torch::Tensor a, torch::Tensor s) {
  check_npc(x, "x");
  check_npc(gz, "the gradient");
  const int64_t N = x.size(0), P = x.size(1), C = x.size(2);
  auto gx = torch::empty_like(x);
  auto ga = torch::empty({N, C}, x.options());
  auto gs = torch::empty({N, P}, x.options());
  const float* gp = gz.data_ptr<float>();
  const float* xp = x.data_ptr<float>();
  const float* apt = a.data_ptr<float>();
  const float* sp = s.data_ptr<float>();
  float* gxo = gx.data_ptr<float>();
  float* gao = ga.data_ptr<float>();
  float* gso = gs.data_ptr<float>();
  at::parallel_for(0, N, 1, [&](int64_t n0, int64_t n1) {
    std::vector<double> acc(C);
    std::vector<float> part_(C);
    float* __restrict part = part_.data();
    for (int64_t n = n0; n < n1; ++n) {
      const float* __restrict an = apt + n * C;
      sum_over_positions(P, C, part, acc, gao + n * C, 1.0, [&](int64_t p, float* __restrict ga_part) {
        const int64_t off = (n * P + p) * C;
        const float sv = sp[n * P + p];
        const float* __restrict gr = gp + off;
        const float* __restrict xr = xp + off;
        float* __restrict go = gxo + off;
        float gsum = 0.f;
#pragma omp simd reduction(+ : gsum)
        for (int64_t c = 0; c < C; ++c) {
          const float g = gr[c], xv = xr[c];
          const float gy = g * sv;     // dL/dy
          go[c] = gy * an[c];
          ga_part[c] += gy * xv;       // dL/da
          gsum += g * (xv * an[c]);    // dL/ds = sum_c dL/dz * y
        }
        gso[n * P + p] = gsum;
      });
    }
  });
  return {gx, ga, gs};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("thw_stats", &thw_stats, "mean and max over positions, with the max's position");
  m.def("thw_stats_backward", &thw_stats_backward, "gradient of thw_stats");
  m.def("c_stats", &c_stats, "mean and max over channels of x * a, with the max's channel");
  m.def("c_stats_backward", &c_stats_backward, "gradient of c_stats");
  m.def("scale", &scale, "(x * a) * s");
  m.def("scale_backward", &scale_backward, "gradient of scale");
}
