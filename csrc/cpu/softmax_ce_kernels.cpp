// Float work of the fused softmax cross-entropy, compiled once per ISA level (VQ_ISA).
//
// One thread owns a block of 16 queries. It transposes the block's 16 LUT rows into a local
// [D*K, 16] table (512 KiB at D=32, K=256: stays in L2), so that an item's 16 logits are the
// sum of D aligned 16-float rows: one zmm load + add per sub-space at AVX-512, the same loop
// as the code bag with the query lanes in place of H. The backward pass scatters dL/dLUT into
// a second local [D*K, 16] table the same way and transposes it out at the end.
//
// The forward log-sum-exp is online over sub-tiles of kTile items: the tile's logits are
// kept, its lane-wise max found, the running sum rescaled once per tile, so each logit costs
// one exp. exp is a Cephes-style polynomial (about 1 ulp) with intrinsics at AVX2/AVX-512 and
// std::exp at the scalar level. No globals, no std templates (see code_bag_kernels.cpp).
#include <cmath>
#include <cstring>

#include "cpu/softmax_ce.h"

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#ifndef VQ_ISA
#error "VQ_ISA must name the ISA namespace"
#endif

namespace vqrec {
namespace VQ_ISA {
namespace {

constexpr int64_t L = kCeLanes;
constexpr int64_t kTile = 32;  // items per log-sum-exp rescale

inline int64_t code_at(const void* codes, CodeType ct, int64_t idx) {
  return ct == CodeType::u8 ? static_cast<const uint8_t*>(codes)[idx] : static_cast<const int32_t*>(codes)[idx];
}

// Cephes expf constants: x = n ln2 + r with ln2 split in two for an exact n*ln2_hi.
constexpr float kLog2e = 1.44269504088896341f, kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
constexpr float kP0 = 1.9875691500e-4f, kP1 = 1.3981999507e-3f, kP2 = 8.3334519073e-3f, kP3 = 4.1665795894e-2f,
                kP4 = 1.6666665459e-1f, kP5 = 5.0000001201e-1f;
// Inputs are clamped to [kExpLo, kExpHi]; exp(kExpLo) ~ 1e-38 stands in for 0, which is
// harmless here: every sum it joins holds a term >= 1 (the max) or multiplies a gradient.
constexpr float kExpLo = -87.3f, kExpHi = 88.3f;

#if defined(__AVX512F__)
inline __m512 exp_v(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(kExpLo)), _mm512_set1_ps(kExpHi));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(kLog2e)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Hi), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Lo), r);
  __m512 p = _mm512_set1_ps(kP0);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP1));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP2));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP3));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP4));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP5));
  const __m512 y = _mm512_add_ps(_mm512_fmadd_ps(_mm512_mul_ps(p, r), r, r), _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(y, n);
}
// y[0:16] = exp(x[0:16])
inline void exp16(const float* x, float* y) { _mm512_storeu_ps(y, exp_v(_mm512_loadu_ps(x))); }
#elif defined(__AVX2__)
inline __m256 exp_v(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(kExpLo)), _mm256_set1_ps(kExpHi));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), r);
  __m256 p = _mm256_set1_ps(kP0);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP1));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP2));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP3));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP4));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP5));
  const __m256 y = _mm256_add_ps(_mm256_fmadd_ps(_mm256_mul_ps(p, r), r, r), _mm256_set1_ps(1.0f));
  // 2^n through the exponent field; n >= -126 thanks to the clamp.
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}
inline void exp16(const float* x, float* y) {
  _mm256_storeu_ps(y, exp_v(_mm256_loadu_ps(x)));
  _mm256_storeu_ps(y + 8, exp_v(_mm256_loadu_ps(x + 8)));
}
#else
inline void exp16(const float* x, float* y) {
  for (int64_t j = 0; j < L; ++j) y[j] = std::exp(x[j] < kExpLo ? kExpLo : (x[j] > kExpHi ? kExpHi : x[j]));
}
#endif

// Per-thread scratch: the block's LUT (and, backward, its gradient) as [D*K, 16].
struct BlockTables {
  float* lut = nullptr;
  float* grad = nullptr;
  int64_t DK = 0;
  BlockTables(int64_t DK_, bool with_grad) : DK(DK_) {
    lut = new float[DK * L];
    if (with_grad) grad = new float[DK * L];
  }
  ~BlockTables() {
    delete[] lut;
    delete[] grad;
  }
  BlockTables(const BlockTables&) = delete;
  BlockTables& operator=(const BlockTables&) = delete;
};

// lanes of block blk that are real queries (the last block may be partial)
inline int64_t lanes_of(int64_t blk, int64_t B) { return B - blk * L < L ? B - blk * L : L; }

// out[dk * 16 + j] = lut[(b0 + j) * DK + dk]; missing lanes are zero.
void load_block(const float* lut, int64_t b0, int64_t nl, int64_t DK, float* out) {
  if (nl < L) std::memset(out, 0, sizeof(float) * DK * L);
  for (int64_t dk = 0; dk < DK; ++dk)
    for (int64_t j = 0; j < nl; ++j) out[dk * L + j] = lut[(b0 + j) * DK + dk];
}

// s[0:16] = alpha * sum_d T[d*K + code(n, d)] (the order of the sum is fixed: d = 0, 1, ...;
// the entry point recomputes target logits in the same order).
inline void item_logits(const float* T, const CeScanArgs& a, int64_t n, float* s) {
  const int64_t base = n * a.D;
  float acc[L];
  const float* r0 = T + code_at(a.codes, a.ct, base) * L;
  for (int64_t j = 0; j < L; ++j) acc[j] = r0[j];
  for (int64_t d = 1; d < a.D; ++d) {
    const float* r = T + (d * a.K + code_at(a.codes, a.ct, base + d)) * L;
    for (int64_t j = 0; j < L; ++j) acc[j] += r[j];
  }
  const float al = a.alpha[n];
  for (int64_t j = 0; j < L; ++j) s[j] = acc[j] * al;
}

// Online log-sum-exp of one block over all items; writes lse for its real lanes.
void forward_block(const CeScanArgs& a, int64_t blk, const float* T) {
  const int64_t b0 = blk * L, nl = lanes_of(blk, a.B);
  float m[L], sum[L];
  for (int64_t j = 0; j < L; ++j) {
    const bool has_extra = a.extra != nullptr && j < nl;
    m[j] = has_extra ? a.extra[b0 + j] : -INFINITY;
    sum[j] = has_extra ? 1.0f : 0.0f;
  }
  float s[kTile][L];
  float x[L], e[L];
  for (int64_t n0 = 0; n0 < a.N; n0 += kTile) {
    const int64_t cnt = a.N - n0 < kTile ? a.N - n0 : kTile;
    float tmax[L];
    for (int64_t j = 0; j < L; ++j) tmax[j] = m[j];
    for (int64_t i = 0; i < cnt; ++i) {
      item_logits(T, a, n0 + i, s[i]);
      for (int64_t j = 0; j < L; ++j) tmax[j] = s[i][j] > tmax[j] ? s[i][j] : tmax[j];
    }
    // rescale the running sum to the new max (m = -inf only before the first tile with no extra:
    // then sum is 0 and the clamped exp keeps 0 * tiny = 0)
    for (int64_t j = 0; j < L; ++j) x[j] = m[j] - tmax[j];
    exp16(x, e);
    for (int64_t j = 0; j < L; ++j) sum[j] *= e[j];
    for (int64_t i = 0; i < cnt; ++i) {
      for (int64_t j = 0; j < L; ++j) x[j] = s[i][j] - tmax[j];
      exp16(x, e);
      for (int64_t j = 0; j < L; ++j) sum[j] += e[j];
    }
    for (int64_t j = 0; j < L; ++j) m[j] = tmax[j];
  }
  for (int64_t j = 0; j < nl; ++j) a.lse[b0 + j] = m[j] + std::log(sum[j]);
}

// Recomputes the block's logits, scatters g * p * alpha into G and writes rho partials.
void backward_block(const CeScanArgs& a, int64_t blk, const float* T, float* G) {
  const int64_t b0 = blk * L, nl = lanes_of(blk, a.B);
  std::memset(G, 0, sizeof(float) * a.D * a.K * L);
  float lse[L], g[L];
  for (int64_t j = 0; j < L; ++j) {
    lse[j] = j < nl ? a.lse[b0 + j] : 0.0f;
    g[j] = j < nl ? a.g[b0 + j] : 0.0f;
  }
  float* rho = a.rho_part + (blk - a.blk_begin) * a.N;
  float s[L], x[L], dl[L];
  for (int64_t n = 0; n < a.N; ++n) {
    item_logits(T, a, n, s);
    for (int64_t j = 0; j < L; ++j) x[j] = s[j] - lse[j];
    exp16(x, dl);
    float r = 0.0f;
    for (int64_t j = 0; j < L; ++j) {
      dl[j] *= g[j];
      r += dl[j] * s[j];
    }
    rho[n] = r;
    const float al = a.alpha[n];
    for (int64_t j = 0; j < L; ++j) dl[j] *= al;
    const int64_t base = n * a.D;
    for (int64_t d = 0; d < a.D; ++d) {
      float* row = G + (d * a.K + code_at(a.codes, a.ct, base + d)) * L;
      for (int64_t j = 0; j < L; ++j) row[j] += dl[j];
    }
  }
  const int64_t DK = a.D * a.K;
  for (int64_t j = 0; j < nl; ++j) {
    float* out = a.grad_lut + (b0 + j) * DK;
    for (int64_t dk = 0; dk < DK; ++dk) out[dk] = G[dk * L + j];
  }
}

}  // namespace

void ce_scan_forward(const CeScanArgs& a) {
  const int64_t DK = a.D * a.K;
#pragma omp parallel num_threads(a.nthreads)
  {
    BlockTables t(DK, false);
#pragma omp for schedule(dynamic, 1)
    for (int64_t blk = a.blk_begin; blk < a.blk_end; ++blk) {
      load_block(a.lut, blk * L, lanes_of(blk, a.B), DK, t.lut);
      forward_block(a, blk, t.lut);
    }
  }
}

void ce_scan_backward(const CeScanArgs& a) {
  const int64_t DK = a.D * a.K;
#pragma omp parallel num_threads(a.nthreads)
  {
    BlockTables t(DK, true);
#pragma omp for schedule(dynamic, 1)
    for (int64_t blk = a.blk_begin; blk < a.blk_end; ++blk) {
      load_block(a.lut, blk * L, lanes_of(blk, a.B), DK, t.lut);
      backward_block(a, blk, t.lut, t.grad);
    }
  }
}

}  // namespace VQ_ISA
}  // namespace vqrec
