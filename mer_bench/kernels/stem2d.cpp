// mer-bench: STSTNet's stem on the CPU, fused, forward and backward.
//
//   Conv2d(Cin -> C, 3x3, stride 1) on an input already zero-padded by the convolution's padding
//   -> ReLU -> BatchNorm2d with batch statistics (training) -> MaxPool2d(3, stride 3, padding 1)
//
// The network of Liong et al., STSTNet (FG 2019; christy1206/STSTNet, main.py), whose three
// streams mer-bench runs as one C = 16 channel convolution (methods/ststnet.py). Plain PyTorch runs
// this block as seven passes over the (N, C, 30, 30) activation; here the forward is one (conv +
// ReLU + the batch statistics + each pooling window's largest and smallest activation, from which
// the normalised max-pool follows on the pooled-size tensors) and the backward one (the
// convolution's weight gradient accumulated straight from dL/dconv, never written to memory). Layout: NHWC,
// channels innermost, so the channel loops are SIMD vectors (C = 16: one AVX-512 register, two AVX2).
// Threads: at::parallel_for over the batch (torch's intra-op threads); per-thread partial sums are
// reduced in thread order, so a thread count gives the same bits every time.
// The Python side (mer_bench/kernels/stem2d.py) computes the BatchNorm parameter gradients and the
// coefficients a, b of dL/dconv = [r > 0] (a + b r + [argmax] k dL/dpooled) from small tensors.

#include <torch/extension.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <mutex>
#include <vector>

namespace {

#if defined(__AVX512F__)
constexpr int KH_AT_ONCE = 3;
#else
constexpr int KH_AT_ONCE = 1;
#endif

// per-thread partial sums (nt blocks of rows x cols doubles, thread t's at t * rows * cols), added
// up in thread order (the same bits for a thread count every time) -> (rows, cols) float64
torch::Tensor sum_thread_parts(const std::vector<double>& part, int nt, int64_t rows, int64_t cols) {
  auto out = torch::zeros({rows, cols}, torch::TensorOptions().dtype(torch::kFloat64));
  double* op = out.data_ptr<double>();
  for (int t = 0; t < nt; ++t)
    for (int64_t j = 0; j < rows * cols; ++j) op[j] += part[static_cast<size_t>(t * rows * cols + j)];
  return out;
}

// one output row's part of its MaxPool2d(3, 3, 1) windows: running largest / smallest activation of
// each window and channel with its offset kh * 3 + kw in the window (the first among equal ones);
// a function of its own, so that the convolution's loops around it compile as they do without it
// (the four of a window side by side, (4, C); a window's running values stay in registers over
// its three columns and are stored once)
template <int C>
__attribute__((noinline)) void window_stats_row(const float* __restrict row, int64_t OW, int64_t PW, int kh,
                                                float* __restrict st) {
  for (int64_t pw = 0; pw < PW; ++pw) {
    float* __restrict w = st + pw * 4 * C;  // largest, its offset, smallest, its offset
#if defined(__AVX2__)
    // written out: GCC's vectorised code for the same loop over running values ran 7x slower on an
    // AMD EPYC (a batch of 256 measured alone: 8.5 against 1.2 ms), more than the convolution itself
    static_assert(C % 8 == 0, "the stem kernel is built for 8, 16 or 32 channels");
    for (int c0 = 0; c0 < C; c0 += 8) {
      __m256 hi = _mm256_loadu_ps(w + c0), hk = _mm256_loadu_ps(w + C + c0);
      __m256 lo = _mm256_loadu_ps(w + 2 * C + c0), lk = _mm256_loadu_ps(w + 3 * C + c0);
      for (int kw = 0; kw < 3; ++kw) {
        const int64_t ow = pw * 3 - 1 + kw;
        if (ow < 0 || ow >= OW) continue;
        const __m256 k = _mm256_set1_ps(static_cast<float>(kh * 3 + kw));
        const __m256 v = _mm256_loadu_ps(row + ow * C + c0);
        const __m256 big = _mm256_cmp_ps(v, hi, _CMP_GT_OQ), small = _mm256_cmp_ps(v, lo, _CMP_LT_OQ);
        hi = _mm256_blendv_ps(hi, v, big);
        hk = _mm256_blendv_ps(hk, k, big);
        lo = _mm256_blendv_ps(lo, v, small);
        lk = _mm256_blendv_ps(lk, k, small);
      }
      _mm256_storeu_ps(w + c0, hi);
      _mm256_storeu_ps(w + C + c0, hk);
      _mm256_storeu_ps(w + 2 * C + c0, lo);
      _mm256_storeu_ps(w + 3 * C + c0, lk);
    }
#else
    for (int kw = 0; kw < 3; ++kw) {
      const int64_t ow = pw * 3 - 1 + kw;
      if (ow < 0 || ow >= OW) continue;
      const float k = static_cast<float>(kh * 3 + kw);
      const float* rv = row + ow * C;
      for (int c = 0; c < C; ++c) {
        const float v = rv[c];
        if (v > w[c]) { w[c] = v; w[C + c] = k; }
        if (v < w[2 * C + c]) { w[2 * C + c] = v; w[3 * C + c] = k; }
      }
    }
#endif
  }
}

template <int C>
std::vector<torch::Tensor> forward_conv_relu(torch::Tensor xpad, torch::Tensor wt, torch::Tensor bias) {
  const int64_t N = xpad.size(0), Cin = xpad.size(1), HP = xpad.size(2), WP = xpad.size(3);
  const int64_t OH = HP - 2, OW = WP - 2;
  const int64_t PH = (OH + 2 - 3) / 3 + 1, PW = (OW + 2 - 3) / 3 + 1;  // MaxPool2d(3, 3, padding 1)
  auto r = torch::empty({N, OH, OW, C}, xpad.options());
  // per pooling window and channel: the largest and the smallest activation, each with its offset
  // in the window (0..8, float), the first in scan order among equal ones
  auto stats = torch::empty({N, PH, PW, 4, C}, xpad.options());
  const float* xp_ = xpad.data_ptr<float>();
  const float* wp_ = wt.data_ptr<float>();
  const float* bp_ = bias.data_ptr<float>();
  float* rp_ = r.data_ptr<float>();
  float* st_ = stats.data_ptr<float>();
  const int nt = at::get_num_threads();
  std::vector<double> part(static_cast<size_t>(nt) * 2 * C, 0.0);
  at::parallel_for(0, N, 1, [&](int64_t n0, int64_t n1) {
    double* s = part.data() + static_cast<size_t>(at::get_thread_num()) * 2 * C;
    const float* __restrict xp = xp_;
    const float* __restrict wp = wp_;
    const float* __restrict bp = bp_;
    float* __restrict rp = rp_;
    for (int64_t n = n0; n < n1; ++n) {
      const float* xn = xp + n * Cin * HP * WP;
      float* __restrict st = st_ + n * PH * PW * 4 * C;
      for (int64_t j = 0; j < PH * PW; ++j)
        for (int c = 0; c < C; ++c) {
          st[j * 4 * C + c] = -std::numeric_limits<float>::infinity();
          st[j * 4 * C + C + c] = 0.f;
          st[j * 4 * C + 2 * C + c] = std::numeric_limits<float>::infinity();
          st[j * 4 * C + 3 * C + c] = 0.f;
        }
      for (int64_t oh = 0; oh < OH; ++oh) {
        float s1[C], s2[C];
        for (int c = 0; c < C; ++c) { s1[c] = 0.f; s2[c] = 0.f; }
        float* out = rp + (n * OH + oh) * OW * C;
        // P output pixels at a time: P independent accumulator chains
        constexpr int P = 5;
        int64_t ow0 = 0;
        for (; ow0 + P <= OW; ow0 += P) {
          float acc[P][C];
          for (int q = 0; q < P; ++q)
#pragma omp simd
            for (int c = 0; c < C; ++c) acc[q][c] = bp[c];
          for (int64_t ci = 0; ci < Cin; ++ci)
            for (int kh = 0; kh < 3; ++kh) {
              const float* __restrict xrow = xn + (ci * HP + oh + kh) * WP + ow0;
              const float* __restrict wk = wp + (ci * 3 + kh) * 3 * C;
              for (int kw = 0; kw < 3; ++kw)
                for (int q = 0; q < P; ++q) {
                  const float v = xrow[q + kw];
#pragma omp simd
                  for (int c = 0; c < C; ++c) acc[q][c] += v * wk[kw * C + c];
                }
            }
          for (int q = 0; q < P; ++q)
#pragma omp simd
            for (int c = 0; c < C; ++c) {
              const float v = acc[q][c] > 0.f ? acc[q][c] : 0.f;
              out[(ow0 + q) * C + c] = v;
            }
        }
        for (int64_t ow = ow0; ow < OW; ++ow) {
          float acc[C];
#pragma omp simd
          for (int c = 0; c < C; ++c) acc[c] = bp[c];
          for (int64_t ci = 0; ci < Cin; ++ci)
            for (int kh = 0; kh < 3; ++kh) {
              const float* __restrict xrow = xn + (ci * HP + oh + kh) * WP + ow;
              const float* __restrict wk = wp + (ci * 3 + kh) * 3 * C;
              for (int kw = 0; kw < 3; ++kw) {
                const float v = xrow[kw];
#pragma omp simd
                for (int c = 0; c < C; ++c) acc[c] += v * wk[kw * C + c];
              }
            }
#pragma omp simd
          for (int c = 0; c < C; ++c) {
            const float v = acc[c] > 0.f ? acc[c] : 0.f;
            out[ow * C + c] = v;
          }
        }
        // the row's statistics, shifted by its first value (no cancellation in E[r^2] - E[r]^2)
        float sh[C];
#pragma omp simd
        for (int c = 0; c < C; ++c) sh[c] = out[c];
        for (int64_t ow = 0; ow < OW; ++ow)
#pragma omp simd
          for (int c = 0; c < C; ++c) {
            const float d = out[ow * C + c] - sh[c];
            s1[c] += d;
            s2[c] += d * d;
          }
        for (int c = 0; c < C; ++c) {
          const double k = sh[c];
          s[c] += s1[c] + OW * k;
          s[C + c] += s2[c] + 2.0 * k * s1[c] + OW * k * k;
        }
        // the row's part of its pooling windows (rows 3 ph - 1 .. 3 ph + 1; a last row past them takes none)
        const int64_t ph = (oh + 1) / 3;
        if (ph < PH) window_stats_row<C>(out, OW, PW, static_cast<int>((oh + 1) % 3), st + ph * PW * 4 * C);
      }
    }
  });
  return {r, sum_thread_parts(part, nt, 2, C), stats};
}

// BatchNorm applied and the max-pool taken from conv_relu's window statistics: y = r * scale + shift
// is monotone in r, so a window's maximum of y is at its largest r where scale > 0 and at its
// smallest where scale < 0 (where scale = 0 every y is shift, and the first position is taken, as
// ATen does). Activations that differ but round to the same y: the gradient goes to the larger
// (smaller) r, as in exact arithmetic, where ATen takes the first in scan order.
template <int C>
std::vector<torch::Tensor> forward_pool_from_stats(torch::Tensor r, torch::Tensor stats, torch::Tensor scale,
                                                   torch::Tensor shift) {
  const int64_t N = stats.size(0), PH = stats.size(1), PW = stats.size(2), OH = r.size(1), OW = r.size(2);
  auto p = torch::empty({N, PH, PW, C}, r.options());
  auto rarg = torch::empty({N, PH, PW, C}, r.options());
  auto idx = torch::empty({N, PH, PW, C}, r.options());
  const float* st_ = stats.data_ptr<float>();
  const float* rp_ = r.data_ptr<float>();
  const float* sc_ = scale.data_ptr<float>();
  const float* sh_ = shift.data_ptr<float>();
  float* pp_ = p.data_ptr<float>();
  float* ap_ = rarg.data_ptr<float>();
  float* ip_ = idx.data_ptr<float>();
  at::parallel_for(0, N, 1, [&](int64_t n0, int64_t n1) {
    const float* __restrict sc = sc_;
    const float* __restrict sh = sh_;
    float* __restrict pp = pp_;
    float* __restrict ap = ap_;
    float* __restrict ip = ip_;
    for (int64_t n = n0; n < n1; ++n)
      for (int64_t w = 0; w < PH * PW; ++w) {
        const int64_t o = (n * PH * PW + w) * C;
        const float* __restrict wmax = st_ + (n * PH * PW + w) * 4 * C;
        const float* __restrict imax = wmax + C;
        const float* __restrict wmin = wmax + 2 * C;
        const float* __restrict imin = wmax + 3 * C;
#pragma omp simd
        for (int c = 0; c < C; ++c) {
          const bool neg = sc[c] < 0.f;
          const float v = neg ? wmin[c] : wmax[c];
          pp[o + c] = v * sc[c] + sh[c];
          ap[o + c] = v;
          ip[o + c] = neg ? imin[c] : imax[c];
        }
        for (int c = 0; c < C; ++c) {
          if (sc[c] != 0.f) continue;  // every y of the window equal: ATen's first position
          const int64_t ph = w / PW, pw = w % PW, kh = ph == 0 ? 1 : 0, kw = pw == 0 ? 1 : 0;
          const float v = rp_[((n * OH + ph * 3 - 1 + kh) * OW + pw * 3 - 1 + kw) * C + c];
          pp[o + c] = v * sc[c] + sh[c];
          ap[o + c] = v;
          ip[o + c] = static_cast<float>(kh * 3 + kw);
        }
      }
  });
  return {p, idx, rarg};
}

// p (N, PH, PW, C) max-pooled; noise (N, PH, PW, C): the dropout factors (0 or 1 / (1 - p));
// AvgPool2d(2) of p * noise -> (N, PH / 2, PW / 2, C), summed in ATen's order, then divided by 4
template <int C>
torch::Tensor forward_dropout_avgpool(torch::Tensor p, torch::Tensor noise) {
  const int64_t N = p.size(0), PH = p.size(1), PW = p.size(2), AH = PH / 2, AW = PW / 2;
  auto out = torch::empty({N, AH, AW, C}, p.options());
  const float* pp_ = p.data_ptr<float>();
  const float* np_ = noise.data_ptr<float>();
  float* op_ = out.data_ptr<float>();
  at::parallel_for(0, N, 1, [&](int64_t n0, int64_t n1) {
    const float* __restrict pp = pp_;
    const float* __restrict nz = np_;
    float* __restrict op = op_;
    for (int64_t n = n0; n < n1; ++n)
      for (int64_t ah = 0; ah < AH; ++ah)
        for (int64_t aw = 0; aw < AW; ++aw) {
          float sum[C];
#pragma omp simd
          for (int c = 0; c < C; ++c) sum[c] = 0.f;
          for (int kh = 0; kh < 2; ++kh)
            for (int kw = 0; kw < 2; ++kw) {
              const int64_t o = ((n * PH + 2 * ah + kh) * PW + 2 * aw + kw) * C;
#pragma omp simd
              for (int c = 0; c < C; ++c) sum[c] += pp[o + c] * nz[o + c];
            }
          float* dst = op + ((n * AH + ah) * AW + aw) * C;
#pragma omp simd
          for (int c = 0; c < C; ++c) dst[c] = sum[c] / 4.f;
        }
  });
  return out;
}

// ---- dropout masks drawn as torch.rand(..., dtype=torch.float64) < q draws them -------------------
// torch.rand on the CPU (ATen's uniform_ kernel) takes one random64() of the default generator per
// element, serially in the tensor's order: random64 = (first 32-bit word << 32) | second word of
// at::mt19937 (ATen/core/MT19937RNGEngine.h), u = (random64 & (2^53 - 1)) * 2^-53. Here the same
// words come from a copy of the generator's engine, whose 624-word state is advanced (the twist)
// and tempered in loops the compiler vectorises, then written back: the same numbers in the same
// order and the same generator state after, at a fraction of the scalar engine's cost (checked
// against torch.rand on first use, mer_bench/kernels/stem2d.py).
constexpr int MT_N = 624, MT_M = 397;

inline uint32_t mt_twist(uint32_t u, uint32_t v) {
  return (((u & 0x80000000u) | (v & 0x7fffffffu)) >> 1) ^ ((v & 1u) ? 0x9908b0dfu : 0u);
}

// at::mt19937_engine::next_state
void mt_next_state(uint32_t* __restrict s) {
  for (int i = 0; i < MT_N - MT_M; ++i) s[i] = s[i + MT_M] ^ mt_twist(s[i], s[i + 1]);
  for (int i = MT_N - MT_M; i < MT_N - 1; ++i) s[i] = s[i + MT_M - MT_N] ^ mt_twist(s[i], s[i + 1]);
  s[MT_N - 1] = s[MT_M - 1] ^ mt_twist(s[MT_N - 1], s[0]);
}

// the next `count` 32-bit outputs of the engine whose state is `d` (advanced as operator() would)
void mt_words(at::mt19937_data_pod& d, uint32_t* __restrict out, int64_t count) {
  int64_t i = 0;
  while (i < count) {
    if (d.left_ == 1) {  // operator(): --left_ == 0 -> next_state() (left_ = 624, next_ = 0), then a read
      mt_next_state(d.state_.data());
      d.left_ = MT_N + 1;
      d.next_ = 0;
    }
    const int64_t k = std::min<int64_t>(d.left_ - 1, count - i);
    const uint32_t* __restrict s = d.state_.data() + d.next_;
#pragma omp simd
    for (int64_t j = 0; j < k; ++j) {
      uint32_t y = s[j];
      y ^= (y >> 11);
      y ^= (y << 7) & 0x9d2c5680u;
      y ^= (y << 15) & 0xefc60000u;
      y ^= (y >> 18);
      out[i + j] = y;
    }
    i += k;
    d.next_ += static_cast<uint32_t>(k);
    d.left_ -= static_cast<int>(k);
  }
}

// keep[e] = (u_e < q) for the next `count` float64 uniforms u_e of torch.rand; u < q is decided
// exactly on the 53-bit integer m = u * 2^53: m < ceil(q * 2^53)
struct KeepDraws {
  at::CPUGeneratorImpl* gen;
  std::unique_lock<std::mutex> lock;
  at::mt19937_data_pod d;
  int64_t threshold;
  std::vector<uint32_t> words;

  explicit KeepDraws(double q)
      : gen(at::check_generator<at::CPUGeneratorImpl>(at::detail::getDefaultCPUGenerator())),
        lock(gen->mutex_), d(gen->engine().data()),
        threshold(static_cast<int64_t>(std::ceil(q * 9007199254740992.0))) {}
  // keep factors (`factor` or 0) for the next `count` elements, in draw order
  void next(float* __restrict out, int64_t count, float factor) {
    words.resize(static_cast<size_t>(2 * count));
    mt_words(d, words.data(), 2 * count);
    const uint32_t* __restrict w = words.data();
    const int64_t thr = threshold;
#pragma omp simd
    for (int64_t e = 0; e < count; ++e) {
      const int64_t m = static_cast<int64_t>(((static_cast<uint64_t>(w[2 * e]) << 32) | w[2 * e + 1]) &
                                             ((uint64_t{1} << 53) - 1));
      out[e] = m < thr ? factor : 0.f;
    }
  }
  ~KeepDraws() {  // hand the advanced state back, under the lock
    at::mt19937 engine = gen->engine();
    engine.set_data(d);
    gen->set_engine(engine);
  }
};

// p (N, PH, PW, C) max-pooled -> (AvgPool2d(2) of p * noise (N, PH / 2, PW / 2, C), noise (N, PH, PW, C)),
// noise drawn here as nn.Dropout draws it on the contiguous (N, C, PH, PW) batch
template <int C>
std::vector<torch::Tensor> forward_dropout_avgpool_draw(torch::Tensor p, double q, double factor) {
  const int64_t N = p.size(0), PH = p.size(1), PW = p.size(2);
  auto noise = torch::empty({N, PH, PW, C}, p.options());
  float* nz = noise.data_ptr<float>();
  {
    KeepDraws draws(q);
    std::vector<float> plane(static_cast<size_t>(C * PH * PW));
    for (int64_t n = 0; n < N; ++n) {
      draws.next(plane.data(), C * PH * PW, static_cast<float>(factor));  // (C, PH, PW) order
      float* dst = nz + n * PH * PW * C;
      for (int c = 0; c < C; ++c)
        for (int64_t j = 0; j < PH * PW; ++j) dst[j * C + c] = plane[c * PH * PW + j];
    }
  }
  return {forward_dropout_avgpool<C>(p, noise), noise};
}

// The backward of AvgPool2d(2) and dropout, and what BatchNorm's backward needs of it, in one pass:
// grad (N, C, AH, AW) -> g = (grad / 4 spread over each 2x2 window; 0 on an odd last row / column)
// * noise, both (N, PH, PW, C); returns (g * k, [sum g, sum g * xhat] (2, C) float64) with
// xhat = (r_at - mean) * invstd, in the float32 operations of the Python version it replaces
template <int C>
std::vector<torch::Tensor> backward_dropout_avgpool(torch::Tensor grad, torch::Tensor noise, torch::Tensor r_at,
                                                    torch::Tensor mean, torch::Tensor invstd, torch::Tensor k) {
  const int64_t N = noise.size(0), PH = noise.size(1), PW = noise.size(2);
  const int64_t AH = grad.size(2), AW = grad.size(3);
  auto gk = torch::empty({N, PH, PW, C}, noise.options());
  const float* gr_ = grad.data_ptr<float>();
  const float* nz_ = noise.data_ptr<float>();
  const float* ra_ = r_at.data_ptr<float>();
  const float* mu_ = mean.data_ptr<float>();
  const float* is_ = invstd.data_ptr<float>();
  const float* kk_ = k.data_ptr<float>();
  float* gk_ = gk.data_ptr<float>();
  const int nt = at::get_num_threads();
  std::vector<double> part(static_cast<size_t>(nt) * 2 * C, 0.0);
  at::parallel_for(0, N, 1, [&](int64_t n0, int64_t n1) {
    double* s = part.data() + static_cast<size_t>(at::get_thread_num()) * 2 * C;
    const float* __restrict gr = gr_;
    const float* __restrict nz = nz_;
    const float* __restrict ra = ra_;
    const float* __restrict mu = mu_;
    const float* __restrict is = is_;
    const float* __restrict kk = kk_;
    float* __restrict out = gk_;
    for (int64_t n = n0; n < n1; ++n) {
      double s1[C], s2[C];
      for (int c = 0; c < C; ++c) { s1[c] = 0.0; s2[c] = 0.0; }
      for (int64_t ph = 0; ph < PH; ++ph)
        for (int64_t pw = 0; pw < PW; ++pw) {
          const int64_t o = ((n * PH + ph) * PW + pw) * C;
          const bool inside = ph / 2 < AH && pw / 2 < AW;
          const int64_t gi = (n * C * AH + (ph / 2)) * AW + pw / 2;  // grad[n, c, ph / 2, pw / 2] at c = 0
#pragma omp simd
          for (int c = 0; c < C; ++c) {
            const float g = inside ? (gr[gi + c * AH * AW] / 4.f) * nz[o + c] : 0.f;
            const float xhat = (ra[o + c] - mu[c]) * is[c];
            s1[c] += g;
            s2[c] += static_cast<double>(g * xhat);
            out[o + c] = g * kk[c];
          }
        }
      for (int c = 0; c < C; ++c) { s[c] += s1[c]; s[C + c] += s2[c]; }
    }
  });
  return {gk, sum_thread_parts(part, nt, 2, C)};
}

template <int C>
std::vector<torch::Tensor> backward(torch::Tensor xpad, torch::Tensor r, torch::Tensor idx, torch::Tensor gpk,
                                    torch::Tensor a, torch::Tensor b) {
  const int64_t N = xpad.size(0), Cin = xpad.size(1), HP = xpad.size(2), WP = xpad.size(3);
  const int64_t OH = r.size(1), OW = r.size(2), PH = idx.size(1), PW = idx.size(2);
  const int64_t K = Cin * 9;
  const float* xp_ = xpad.data_ptr<float>();
  const float* rp_ = r.data_ptr<float>();
  const float* ip_ = idx.data_ptr<float>();
  const float* gp_ = gpk.data_ptr<float>();
  const float* ap_ = a.data_ptr<float>();
  const float* bp_ = b.data_ptr<float>();
  const int nt = at::get_num_threads();
  std::vector<double> part(static_cast<size_t>(nt) * (K + 1) * C, 0.0);
  at::parallel_for(0, N, 1, [&](int64_t n0, int64_t n1) {
    double* dst = part.data() + static_cast<size_t>(at::get_thread_num()) * (K + 1) * C;
    // local copies: pointers read through the lambda's captures would defeat vectorisation
    const float* __restrict xp = xp_;
    const float* __restrict rp = rp_;
    const float* __restrict ip = ip_;
    const float* __restrict gp = gp_;
    const float* __restrict ap = ap_;
    const float* __restrict bp = bp_;
    std::vector<float> gwv(static_cast<size_t>(K + 1) * C);
    std::vector<float> grow(static_cast<size_t>(OW) * C);
    float* gw = gwv.data();
    for (int64_t n = n0; n < n1; ++n) {
      std::fill(gwv.begin(), gwv.end(), 0.f);
      const float* xn = xp + n * Cin * HP * WP;
      for (int64_t oh = 0; oh < OH; ++oh) {
        const int64_t ph = (oh + 1) / 3, kh0 = (oh + 1) % 3;
        // dL/dconv of this output row, (OW, C)
        float* __restrict g = grow.data();
        for (int64_t ow = 0; ow < OW; ++ow) {
          const int64_t pw = (ow + 1) / 3;
          const float k = static_cast<float>(kh0 * 3 + (ow + 1) % 3);
          const float* __restrict rv = rp + ((n * OH + oh) * OW + ow) * C;
          float* __restrict go = g + ow * C;
          if (ph < PH && pw < PW) {  // the last row/column may lie outside every pooling window
            const int64_t po = ((n * PH + ph) * PW + pw) * C;
#pragma omp simd
            for (int c = 0; c < C; ++c) {
              // every operand loaded unconditionally, so the selects vectorise without masked loads (AVX2)
              const float gv = gp[po + c], iv = ip[po + c], rr = rv[c];
              const float extra = iv == k ? gv : 0.f;
              const float v = ap[c] + bp[c] * rr + extra;
              go[c] = rr > 0.f ? v : 0.f;
            }
          } else {
#pragma omp simd
            for (int c = 0; c < C; ++c) {
              const float v = ap[c] + bp[c] * rv[c];
              go[c] = rv[c] > 0.f ? v : 0.f;
            }
          }
        }
        // dL/dweight: KH_AT_ONCE kernel rows (3 x KH_AT_ONCE taps) of one input channel at once, as
        // independent accumulator chains that stay in registers (AVX-512: all 9 taps in 9 zmm;
        // AVX2: 3 taps, since 9 x 16 floats would need 18 ymm of its 16)
        for (int64_t ci = 0; ci < Cin; ++ci)
          for (int kh0 = 0; kh0 < 3; kh0 += KH_AT_ONCE) {
            float acc[3 * KH_AT_ONCE][C];
            for (int t = 0; t < 3 * KH_AT_ONCE; ++t)
#pragma omp simd
              for (int c = 0; c < C; ++c) acc[t][c] = 0.f;
            for (int64_t ow = 0; ow < OW; ++ow) {
              const float* __restrict gv = g + ow * C;
              float v[3 * KH_AT_ONCE];
              for (int r = 0; r < KH_AT_ONCE; ++r)
                for (int kw = 0; kw < 3; ++kw) v[r * 3 + kw] = xn[(ci * HP + oh + kh0 + r) * WP + ow + kw];
#pragma omp simd
              for (int c = 0; c < C; ++c) {
                const float gc = gv[c];
                for (int t = 0; t < 3 * KH_AT_ONCE; ++t) acc[t][c] += v[t] * gc;
              }
            }
            float* __restrict gk = gw + (ci * 9 + kh0 * 3) * C;
            for (int t = 0; t < 3 * KH_AT_ONCE; ++t)
#pragma omp simd
              for (int c = 0; c < C; ++c) gk[t * C + c] += acc[t][c];
          }
        float* __restrict gb = gw + K * C;
        for (int64_t ow = 0; ow < OW; ++ow)
#pragma omp simd
          for (int c = 0; c < C; ++c) gb[c] += g[ow * C + c];
      }
      for (int64_t j = 0; j < (K + 1) * C; ++j) dst[j] += gw[j];
    }
  });
  return {sum_thread_parts(part, nt, K + 1, C)};
}

}  // namespace

#define MB_DISPATCH(C_, CALL)                                                         \
  switch (C_) {                                                                       \
    case 8: { constexpr int C = 8; return CALL; }                                     \
    case 16: { constexpr int C = 16; return CALL; }                                   \
    case 32: { constexpr int C = 32; return CALL; }                                   \
    default: TORCH_CHECK(false, "stem2d kernel: ", C_, " channels (built for 8, 16, 32)"); \
  }

static void check_f32(const torch::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == torch::kFloat32 && t.is_contiguous(), "stem2d kernel: ",
              name, " must be a contiguous float32 CPU tensor");
}

// xpad (N, Cin, H + 2p, W + 2p), wt (Cin * 9, C) [tap (ci, kh, kw) major], bias (C)
// -> r (N, OH, OW, C) = relu(conv), sums (2, C) float64: sum r, sum r^2, and per MaxPool2d(3, 3, 1)
// window stats (N, PH, PW, 4, C): largest r, its offset in the window, smallest r, its offset
std::vector<torch::Tensor> conv_relu(torch::Tensor xpad, torch::Tensor wt, torch::Tensor bias) {
  check_f32(xpad, "input"); check_f32(wt, "weight"); check_f32(bias, "bias");
  TORCH_CHECK(xpad.dim() == 4 && wt.size(0) == xpad.size(1) * 9 && bias.size(0) == wt.size(1) &&
              xpad.size(2) >= 3 && xpad.size(3) >= 3, "stem2d kernel: shapes do not match");
  MB_DISPATCH(wt.size(1), forward_conv_relu<C>(xpad, wt, bias));
}

// r (N, OH, OW, C), stats from conv_relu; y = r * scale + shift; MaxPool2d(3, 3, padding 1) -> pooled
// (N, PH, PW, C), the argmax's offset in its window (0..8, float32), r at the argmax; no pass over r
std::vector<torch::Tensor> pool_from_stats(torch::Tensor r, torch::Tensor stats, torch::Tensor scale,
                                           torch::Tensor shift) {
  check_f32(r, "activation"); check_f32(stats, "window statistics"); check_f32(scale, "scale");
  check_f32(shift, "shift");
  TORCH_CHECK(stats.dim() == 5 && stats.size(3) == 4 && stats.size(0) == r.size(0) && stats.size(4) == r.size(3),
              "stem2d kernel: window statistics of another shape");
  MB_DISPATCH(r.size(3), forward_pool_from_stats<C>(r, stats, scale, shift));
}

torch::Tensor dropout_avgpool(torch::Tensor p, torch::Tensor noise) {
  check_f32(p, "pooled"); check_f32(noise, "noise");
  TORCH_CHECK(p.sizes() == noise.sizes() && p.dim() == 4, "stem2d kernel: dropout factors of another shape");
  MB_DISPATCH(p.size(3), forward_dropout_avgpool<C>(p, noise));
}

// p (N, PH, PW, C) -> (avgpool(p * noise), noise): the dropout factors (factor where kept, else 0)
// drawn from the default generator exactly as torch.rand(N, C, PH, PW, dtype=float64) < q draws them
std::vector<torch::Tensor> dropout_avgpool_draw(torch::Tensor p, double q, double factor) {
  check_f32(p, "pooled");
  TORCH_CHECK(p.dim() == 4 && q > 0.0 && q < 1.0, "stem2d kernel: dropout_avgpool_draw needs (N, PH, PW, C), 0 < q < 1");
  MB_DISPATCH(p.size(3), forward_dropout_avgpool_draw<C>(p, q, factor));
}

// the keep mask (1 / 0, uint8) of the next `count` draws torch.rand(count, dtype=float64) < q would make
torch::Tensor rand_keep(int64_t count, double q) {
  TORCH_CHECK(count >= 0 && q > 0.0 && q < 1.0, "stem2d kernel: rand_keep needs count >= 0, 0 < q < 1");
  auto out = torch::empty({count}, torch::TensorOptions().dtype(torch::kFloat32));
  { KeepDraws draws(q); draws.next(out.data_ptr<float>(), count, 1.f); }
  return out.to(torch::kUInt8);
}

// grad (N, C, AH, AW), noise / r_at (N, PH, PW, C), mean / invstd / k (C) -> (g * k, sums (2, C) float64)
std::vector<torch::Tensor> dropout_avgpool_backward(torch::Tensor grad, torch::Tensor noise, torch::Tensor r_at,
                                                    torch::Tensor mean, torch::Tensor invstd, torch::Tensor k) {
  check_f32(grad, "gradient"); check_f32(noise, "noise"); check_f32(r_at, "activation at the argmax");
  check_f32(mean, "mean"); check_f32(invstd, "invstd"); check_f32(k, "k");
  TORCH_CHECK(grad.dim() == 4 && noise.dim() == 4 && r_at.sizes() == noise.sizes() && grad.size(0) == noise.size(0) &&
              grad.size(1) == noise.size(3) && grad.size(2) == noise.size(1) / 2 && grad.size(3) == noise.size(2) / 2,
              "stem2d kernel: dropout_avgpool_backward shapes do not match");
  MB_DISPATCH(noise.size(3), backward_dropout_avgpool<C>(grad, noise, r_at, mean, invstd, k));
}

// -> (Cin * 9 + 1, C) float64: dL/dweight (rows = taps) and, last, dL/dbias
std::vector<torch::Tensor> backward_weight(torch::Tensor xpad, torch::Tensor r, torch::Tensor idx, torch::Tensor gpk,
                                           torch::Tensor a, torch::Tensor b) {
  check_f32(xpad, "input"); check_f32(r, "activation"); check_f32(idx, "argmax"); check_f32(gpk, "gradient");
  check_f32(a, "a"); check_f32(b, "b");
  MB_DISPATCH(r.size(3), backward<C>(xpad, r, idx, gpk, a, b));
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("conv_relu", &conv_relu, "conv 3x3 + ReLU + batch statistics (NHWC out)");
  m.def("pool_from_stats", &pool_from_stats, "BatchNorm apply + MaxPool2d(3, 3, 1) from conv_relu's window stats");
  m.def("dropout_avgpool", &dropout_avgpool, "dropout (given factors) + AvgPool2d(2)");
  m.def("dropout_avgpool_draw", &dropout_avgpool_draw, "dropout factors drawn as torch.rand < q + AvgPool2d(2)");
  m.def("rand_keep", &rand_keep, "torch.rand(count, float64) < q, drawn as torch.rand draws it");
  m.def("dropout_avgpool_backward", &dropout_avgpool_backward, "AvgPool2d + dropout backward, BatchNorm's sums");
  m.def("backward_weight", &backward_weight, "dL/dweight and dL/dbias of the convolution");
}
