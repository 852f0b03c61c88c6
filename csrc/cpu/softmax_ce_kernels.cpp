// Float work of the fused softmax cross-entropy, compiled once per ISA level (VQ_ISA).
//
// One thread owns a block of 16 queries. It transposes the block's 16 LUT rows into a local
// [D*K, 16] table (512 KiB at D=32, K=256: stays in L2), so that an item's 16 logits are the
// sum of D aligned 16-float rows: one zmm load + add per sub-space at AVX-512, the same loop
// as the code bag with the query lanes in place of H. The backward pass accumulates dL/dLUT
// in a second local [D*K, 16] table, one bucket of items per (d, k) row and chunk (a gather,
// see softmax_ce.h), and transposes it out at the end.
//
// The forward log-sum-exp is online over sub-tiles of kTile items: the tile's logits are
// kept, its lane-wise max found, the running sum rescaled once per tile, so each logit costs
// one exp. exp is a Cephes-style polynomial (about 1 ulp) with intrinsics at AVX2/AVX-512 and
// std::exp at the scalar level. No globals, no std templates (see code_bag_kernels.cpp).
#include <cmath>
#include <cstring>

#include "cpu/softmax_ce.h"
#include "common/omp_thread.h"

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
static_assert(kCeLanes == 16, "V16 below holds one block of 16 query lanes");
constexpr int64_t kTile = 64;  // items per tile (log-sum-exp rescale, exp batch)

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

// V16: the 16 query lanes of a block as one zmm (AVX-512), two ymm (AVX2) or 16 floats. GCC
// does not vectorise the fixed 16-lane loops on its own (it emits scalar adds), hence these.
#if defined(__AVX512F__)
struct V16 {
  __m512 v;
};
inline V16 load(const float* p) { return {_mm512_loadu_ps(p)}; }
inline void store(float* p, V16 a) { _mm512_storeu_ps(p, a.v); }
inline V16 set1(float x) { return {_mm512_set1_ps(x)}; }
inline V16 add(V16 a, V16 b) { return {_mm512_add_ps(a.v, b.v)}; }
inline V16 sub(V16 a, V16 b) { return {_mm512_sub_ps(a.v, b.v)}; }
inline V16 mul(V16 a, V16 b) { return {_mm512_mul_ps(a.v, b.v)}; }
inline V16 vmax(V16 a, V16 b) { return {_mm512_max_ps(a.v, b.v)}; }
inline V16 vexp(V16 a) {
  __m512 x = _mm512_min_ps(_mm512_max_ps(a.v, _mm512_set1_ps(kExpLo)), _mm512_set1_ps(kExpHi));
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
  return {_mm512_scalef_ps(y, n)};
}
inline float hsum(V16 a) { return _mm512_reduce_add_ps(a.v); }
#elif defined(__AVX2__)
struct V16 {
  __m256 lo, hi;
};
inline V16 load(const float* p) { return {_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
inline void store(float* p, V16 a) {
  _mm256_storeu_ps(p, a.lo);
  _mm256_storeu_ps(p + 8, a.hi);
}
inline V16 set1(float x) { return {_mm256_set1_ps(x), _mm256_set1_ps(x)}; }
inline V16 add(V16 a, V16 b) { return {_mm256_add_ps(a.lo, b.lo), _mm256_add_ps(a.hi, b.hi)}; }
inline V16 sub(V16 a, V16 b) { return {_mm256_sub_ps(a.lo, b.lo), _mm256_sub_ps(a.hi, b.hi)}; }
inline V16 mul(V16 a, V16 b) { return {_mm256_mul_ps(a.lo, b.lo), _mm256_mul_ps(a.hi, b.hi)}; }
inline V16 vmax(V16 a, V16 b) { return {_mm256_max_ps(a.lo, b.lo), _mm256_max_ps(a.hi, b.hi)}; }
inline __m256 exp8(__m256 x) {
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
inline V16 vexp(V16 a) { return {exp8(a.lo), exp8(a.hi)}; }
inline float hsum(V16 a) {
  const __m256 s8 = _mm256_add_ps(a.lo, a.hi);
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
}
#else
struct V16 {
  float x[L];
};
inline V16 load(const float* p) {
  V16 r;
  std::memcpy(r.x, p, sizeof(r.x));
  return r;
}
inline void store(float* p, V16 a) { std::memcpy(p, a.x, sizeof(a.x)); }
inline V16 set1(float v) {
  V16 r;
  for (int64_t j = 0; j < L; ++j) r.x[j] = v;
  return r;
}
#define VQ_CE_LANEWISE(name, expr)                  \
  inline V16 name(V16 a, V16 b) {                   \
    V16 r;                                          \
    for (int64_t j = 0; j < L; ++j) r.x[j] = (expr); \
    return r;                                       \
  }
VQ_CE_LANEWISE(add, a.x[j] + b.x[j])
VQ_CE_LANEWISE(sub, a.x[j] - b.x[j])
VQ_CE_LANEWISE(mul, a.x[j] * b.x[j])
VQ_CE_LANEWISE(vmax, a.x[j] > b.x[j] ? a.x[j] : b.x[j])
#undef VQ_CE_LANEWISE
inline V16 vexp(V16 a) {
  V16 r;
  for (int64_t j = 0; j < L; ++j) r.x[j] = std::exp(a.x[j] < kExpLo ? kExpLo : (a.x[j] > kExpHi ? kExpHi : a.x[j]));
  return r;
}
inline float hsum(V16 a) {
  float r = a.x[0];
  for (int64_t j = 1; j < L; ++j) r += a.x[j];
  return r;
}
#endif

// Per-thread scratch: a [D*K, 16] table (the block's LUT, or a lane chunk of W), optionally
// a second one for gradients, and a tile of item vectors, on transparent huge pages: the scans
// read the 512 KiB table at random rows, and on 4 KiB pages that cost an L1 TLB miss on most
// loads (the forward scan ran ~25% faster on huge pages, measured). All threads' tables come
// from one Scratch made before the parallel region.
struct ThreadTables {
  size_t per_thread, tab;
  bool with_grad;
  Scratch mem;
  ThreadTables(int nthreads, int64_t DK, bool grad)
      : per_thread(thread_bytes(DK, grad)), tab(sizeof(float) * DK * L), with_grad(grad),
        mem(per_thread * static_cast<size_t>(nthreads)) {}
  // each thread's tables on their own huge pages
  static size_t thread_bytes(int64_t DK, bool grad) {
    constexpr size_t kHuge = size_t(2) << 20;
    const size_t bytes = sizeof(float) * DK * L * (grad ? 2 : 1) + sizeof(V16) * (grad ? kCeChunk : kTile);
    return (bytes + kHuge - 1) / kHuge * kHuge;
  }
  struct Slice {
    float* lut;
    float* grad;
    V16* tile;
  };
  Slice of(int thread) const {
    char* p = mem.data() + per_thread * static_cast<size_t>(thread);
    return {reinterpret_cast<float*>(p), with_grad ? reinterpret_cast<float*>(p + tab) : nullptr,
            reinterpret_cast<V16*>(p + tab * (with_grad ? 2 : 1))};
  }
};

// lanes of block blk that are real queries (the last block may be partial)
inline int64_t lanes_of(int64_t blk, int64_t B) { return B - blk * L < L ? B - blk * L : L; }

// out[dk * 16 + j] = lut[(b0 + j) * DK + dk]; missing lanes are zero.
void load_block(const float* lut, int64_t b0, int64_t nl, int64_t DK, float* out) {
  if (nl < L) std::memset(out, 0, sizeof(float) * DK * L);
  for (int64_t dk = 0; dk < DK; ++dk)
    for (int64_t j = 0; j < nl; ++j) out[dk * L + j] = lut[(b0 + j) * DK + dk];
}

// s = alpha_n * sum_d T[d*K + code(n, d)]. Four accumulators (sub-spaces d = r mod 4) hide
// the add latency; the sum order is fixed and mirrored by ce_item_logit(). Written out with
// named accumulators and the code width fixed per loop: with an accumulator array and the
// width tested per code, GCC kept the sums in memory and branched on every code.
template <typename Code>
inline V16 item_logits_t(const float* T, const Code* c, int64_t D, int64_t K, float alpha) {
  V16 a0 = set1(0.0f), a1 = a0, a2 = a0, a3 = a0;
  int64_t d = 0;
  for (; d + 4 <= D; d += 4) {
    a0 = add(a0, load(T + (d * K + c[d]) * L));
    a1 = add(a1, load(T + ((d + 1) * K + c[d + 1]) * L));
    a2 = add(a2, load(T + ((d + 2) * K + c[d + 2]) * L));
    a3 = add(a3, load(T + ((d + 3) * K + c[d + 3]) * L));
  }
  if (d < D) a0 = add(a0, load(T + (d * K + c[d]) * L));
  if (d + 1 < D) a1 = add(a1, load(T + ((d + 1) * K + c[d + 1]) * L));
  if (d + 2 < D) a2 = add(a2, load(T + ((d + 2) * K + c[d + 2]) * L));
  return mul(add(add(a0, a1), add(a2, a3)), set1(alpha));
}

// scale * sum_d T[d*K + code(n, d)] for item n of a [N, D] code table
inline V16 item_sum(const float* T, const void* codes, CodeType ct, int64_t D, int64_t K, int64_t n, float scale) {
  if (ct == CodeType::u8) return item_logits_t(T, static_cast<const uint8_t*>(codes) + n * D, D, K, scale);
  return item_logits_t(T, static_cast<const int32_t*>(codes) + n * D, D, K, scale);
}

inline V16 item_logits(const float* T, const CeScanArgs& a, int64_t n) {
  return item_sum(T, a.codes, a.ct, a.D, a.K, n, a.alpha[n]);
}

// s[i] = logits of items n0 + i, i < cnt
inline void tile_logits(const float* T, const CeScanArgs& a, int64_t n0, int64_t cnt, V16* s) {
  for (int64_t i = 0; i < cnt; ++i) s[i] = item_logits(T, a, n0 + i);
}

// Online log-sum-exp of one block over all items; writes lse for its real lanes.
void forward_block(const CeScanArgs& a, int64_t blk, const float* T, V16* s) {
  const int64_t b0 = blk * L, nl = lanes_of(blk, a.B);
  float m0[L], sum0[L];
  for (int64_t j = 0; j < L; ++j) {
    const bool has_extra = a.extra != nullptr && j < nl;
    m0[j] = has_extra ? a.extra[b0 + j] : -INFINITY;
    sum0[j] = has_extra ? 1.0f : 0.0f;
  }
  V16 m = load(m0), sum = load(sum0);
  for (int64_t n0 = 0; n0 < a.N; n0 += kTile) {
    const int64_t cnt = a.N - n0 < kTile ? a.N - n0 : kTile;
    tile_logits(T, a, n0, cnt, s);
    V16 tmax = m;
    for (int64_t i = 0; i < cnt; ++i) tmax = vmax(tmax, s[i]);
    // rescale the running sum to the new max (m = -inf only before the first tile with no
    // extra logit: then sum is 0 and the clamped exp keeps it 0)
    sum = mul(sum, vexp(sub(m, tmax)));
    for (int64_t i = 0; i < cnt; ++i) sum = add(sum, vexp(sub(s[i], tmax)));
    m = tmax;
  }
  store(m0, m);
  store(sum0, sum);
  for (int64_t j = 0; j < nl; ++j) a.lse[b0 + j] = m0[j] + std::log(sum0[j]);
}

// G[dk] += sum of the chunk's item vectors w over bucket dk (in bucket order), for every
// (d, k) row. (Four interleaved accumulator chains per bucket measured no faster.)
inline void add_buckets(float* G, const V16* w, const uint16_t* idx, const int32_t* off, int64_t DK) {
  for (int64_t dk = 0; dk < DK; ++dk) {
    const int32_t lo = off[dk], hi = off[dk + 1];
    if (lo == hi) continue;
    V16 acc = w[idx[lo]];
    for (int32_t j = lo + 1; j < hi; ++j) acc = add(acc, w[idx[j]]);
    float* row = G + dk * L;
    store(row, add(load(row), acc));
  }
}

// Recomputes the block's logits chunk by chunk, forms each item's weight g * p * alpha (w, one
// chunk at a time), writes rho partials and adds every bucket's sum of weights to its row of G.
void backward_block(const CeScanArgs& a, int64_t blk, const float* T, float* G, V16* w) {
  const int64_t b0 = blk * L, nl = lanes_of(blk, a.B), DK = a.D * a.K;
  std::memset(G, 0, sizeof(float) * DK * L);
  float lse0[L], g0[L];
  for (int64_t j = 0; j < L; ++j) {
    lse0[j] = j < nl ? a.lse[b0 + j] : 0.0f;
    g0[j] = j < nl ? a.g[b0 + j] : 0.0f;
  }
  const V16 lse = load(lse0), g = load(g0);
  float* rho = a.rho_part + (blk - a.blk_begin) * a.N;
  for (int64_t n0 = 0, c = 0; n0 < a.N; n0 += kCeChunk, ++c) {
    const int64_t cnt = a.N - n0 < kCeChunk ? a.N - n0 : kCeChunk;
    for (int64_t i = 0; i < cnt; ++i) {
      const V16 s = item_logits(T, a, n0 + i);
      const V16 dl = mul(g, vexp(sub(s, lse)));  // dlogit without the target's -g
      rho[n0 + i] = hsum(mul(dl, s));           // a fixed reduction tree per ISA level
      w[i] = mul(dl, set1(a.alpha[n0 + i]));
    }
    add_buckets(G, w, a.bucket_idx + n0 * a.D, a.bucket_off + c * (DK + 1), DK);
  }

  for (int64_t j = 0; j < nl; ++j) {
    float* out = a.grad_lut + (b0 + j) * DK;
    for (int64_t dk = 0; dk < DK; ++dk) out[dk] = G[dk * L + j];
  }
}

// out[dk * 16 + j] = W[dk * H + 16 c + j]: lane chunk c of the codebooks as a [D*K, 16] table,
// zero in the lanes past H. At D*K = 8192 it is 512 KiB, so a scan over all items reads it
// from L2, where whole [D, K, H] rows of a 9.8 MB W come from L3 (the code bag's bound).
void load_lane_chunk(const float* W, int64_t DK, int64_t H, int64_t c, float* out) {
  const int64_t h0 = c * L, nl = H - h0 < L ? H - h0 : L;
  for (int64_t dk = 0; dk < DK; ++dk) {
    float* dst = out + dk * L;
    std::memcpy(dst, W + dk * H + h0, sizeof(float) * nl);
    if (nl < L) std::memset(dst + nl, 0, sizeof(float) * (L - nl));
  }
}

}  // namespace

void ce_item_sumsq(const CeLaneArgs& a) {
  const int64_t DK = a.D * a.K, chunks = (a.H + L - 1) / L;
  const ThreadTables tables(a.nthreads, DK, false);
#pragma omp parallel num_threads(a.nthreads)
  {
    const ThreadTables::Slice t = tables.of(omp_thread_id());
    for (int64_t c = 0; c < chunks; ++c) {
      load_lane_chunk(a.W, DK, a.H, c, t.lut);
      // a static schedule gives every thread the same items for every chunk, so each item's
      // sum of squares is built by one thread, chunk by chunk, in a fixed order
#pragma omp for schedule(static) nowait
      for (int64_t n = 0; n < a.N; ++n) {
        const V16 v = item_sum(t.lut, a.codes, a.ct, a.D, a.K, n, 1.0f);
        const float sq = hsum(mul(v, v));
        a.out[n] = c == 0 ? sq : a.out[n] + sq;
      }
    }
  }
}

void ce_norm_grad(const CeLaneArgs& a) {
  const int64_t DK = a.D * a.K, chunks = (a.H + L - 1) / L;
  const ThreadTables tables(a.nthreads, DK, true);
#pragma omp parallel num_threads(a.nthreads)
  {
    const ThreadTables::Slice t = tables.of(omp_thread_id());
    // one thread per lane chunk: it owns columns [16 c, 16 c + 16) of out
#pragma omp for schedule(dynamic, 1)
    for (int64_t c = 0; c < chunks; ++c) {
      load_lane_chunk(a.W, DK, a.H, c, t.lut);
      std::memset(t.grad, 0, sizeof(float) * DK * L);
      for (int64_t n0 = 0, ch = 0; n0 < a.N; n0 += kCeChunk, ++ch) {
        const int64_t cnt = a.N - n0 < kCeChunk ? a.N - n0 : kCeChunk;
        for (int64_t i = 0; i < cnt; ++i) t.tile[i] = item_sum(t.lut, a.codes, a.ct, a.D, a.K, n0 + i, a.scale[n0 + i]);
        add_buckets(t.grad, t.tile, a.bucket_idx + n0 * a.D, a.bucket_off + ch * (DK + 1), DK);
      }
      const int64_t h0 = c * L, nl = a.H - h0 < L ? a.H - h0 : L;
      for (int64_t dk = 0; dk < DK; ++dk)
        for (int64_t j = 0; j < nl; ++j) a.out[dk * a.H + h0 + j] += t.grad[dk * L + j];
    }
  }
}

void ce_scan_forward(const CeScanArgs& a) {
  const int64_t DK = a.D * a.K;
  const ThreadTables tables(a.nthreads, DK, false);
#pragma omp parallel num_threads(a.nthreads)
  {
    const ThreadTables::Slice t = tables.of(omp_thread_id());
#pragma omp for schedule(dynamic, 1)
    for (int64_t blk = a.blk_begin; blk < a.blk_end; ++blk) {
      load_block(a.lut, blk * L, lanes_of(blk, a.B), DK, t.lut);
      forward_block(a, blk, t.lut, t.tile);
    }
  }
}

void ce_scan_backward(const CeScanArgs& a) {
  const int64_t DK = a.D * a.K;
  const ThreadTables tables(a.nthreads, DK, true);
#pragma omp parallel num_threads(a.nthreads)
  {
    const ThreadTables::Slice t = tables.of(omp_thread_id());
#pragma omp for schedule(dynamic, 1)
    for (int64_t blk = a.blk_begin; blk < a.blk_end; ++blk) {
      load_block(a.lut, blk * L, lanes_of(blk, a.B), DK, t.lut);
      backward_block(a, blk, t.lut, t.grad, t.tile);
    }
  }
}

}  // namespace VQ_ISA
}  // namespace vqrec
