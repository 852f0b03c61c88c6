// Per-ISA helpers shared by the ADC scans (score_topk_kernels.cpp, score_topk_qm_kernels.cpp):
// the hand-written heaps, exclusions, exact scoring, and the quantized scans' shared thresholds
// and batched exact scoring of candidates. Included only by *_kernels.cpp files, so each level
// and file keeps its own internal copy (see code_bag_kernels.cpp for why these files avoid
// shared templates and globals).
#pragma once
#include <cmath>
#include <cstring>
#include <limits>

#include "cpu/score_topk.h"
#include "common/omp_thread.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VBMI__)
#include <immintrin.h>
#define VQ_SCORE_VBMI 1
#else
#define VQ_SCORE_VBMI 0
#endif

#ifndef VQ_ISA
#error "VQ_ISA must name the ISA namespace"
#endif

namespace vqrec {
namespace VQ_ISA {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

inline int64_t code_at(const void* codes, CodeType ct, int64_t idx) {
  return ct == CodeType::u8 ? static_cast<const uint8_t*>(codes)[idx] : static_cast<const int32_t*>(codes)[idx];
}

// The one place a sum of LUT entries becomes a score, so both scans round identically.
inline float finish(float sum, float scale, float inv_d) { return sum * (scale * inv_d); }

// Smallest and largest of x[0 .. n) (n >= 1). Sixteen running minima and maxima, folded at the
// end: the compiler vectorises that, while one running value is a loop-carried chain it may not
// reorder (the LUT quantization of a B = 256 batch took 1.3 ms that way).
inline void range_of(const float* x, int64_t n, float* lo_out, float* hi_out) {
  float lo = x[0], hi = x[0];
  int64_t c = 0;
  if (n >= 16) {
    float vlo[16], vhi[16];
    for (int i = 0; i < 16; ++i) vlo[i] = vhi[i] = x[i];
    for (c = 16; c + 16 <= n; c += 16)
      for (int i = 0; i < 16; ++i) {
        vlo[i] = x[c + i] < vlo[i] ? x[c + i] : vlo[i];
        vhi[i] = x[c + i] > vhi[i] ? x[c + i] : vhi[i];
      }
    for (int i = 0; i < 16; ++i) {
      lo = vlo[i] < lo ? vlo[i] : lo;
      hi = vhi[i] > hi ? vhi[i] : hi;
    }
  }
  for (; c < n; ++c) {
    lo = x[c] < lo ? x[c] : lo;
    hi = x[c] > hi ? x[c] : hi;
  }
  *lo_out = lo;
  *hi_out = hi;
}

// Min-heap of (score, id) with `cnt` entries out of capacity k; root = current k-th best.
inline void heap_push(float* hs, int64_t* hi, int64_t& cnt, int64_t k, float s, int64_t id) {
  int64_t i;
  if (cnt < k) {
    i = cnt++;
    while (i > 0) {  // sift up
      const int64_t p = (i - 1) / 2;
      if (hs[p] <= s) break;
      hs[i] = hs[p];
      hi[i] = hi[p];
      i = p;
    }
  } else {
    if (!(s > hs[0])) return;
    i = 0;
    for (;;) {  // sift down from the root
      int64_t c = 2 * i + 1;
      if (c >= k) break;
      // The smaller child without a branch (which one it is, is a coin toss): a missing right
      // child reads the left one again and loses the compare.
      const int64_t r = c + 1 < k ? c + 1 : c;
      c += hs[r] < hs[c];
      if (hs[c] >= s) break;
      hs[i] = hs[c];
      hi[i] = hi[c];
      i = c;
    }
  }
  hs[i] = s;
  hi[i] = id;
}

inline float heap_threshold(const float* hs, int64_t cnt, int64_t k) { return cnt < k ? -kInf : hs[0]; }

inline bool excluded(const ScanArgs& a, int64_t q, int64_t id) {
  if (a.excl_off == nullptr) return false;
  int64_t lo = a.excl_off[q], hi = a.excl_off[q + 1];
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (a.excl_ids[mid] < id)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < a.excl_off[q + 1] && a.excl_ids[lo] == id;
}

// Offers item n with score s to query q's heap of thread t; returns the new threshold.
inline float offer(const ScanArgs& a, int t, int64_t q, int64_t n, float s) {
  const int64_t slot = static_cast<int64_t>(t) * a.B + q;
  float* hs = a.heap_scores + slot * a.k;
  int64_t& cnt = a.heap_count[slot];
  if (s > heap_threshold(hs, cnt, a.k) && !excluded(a, q, n)) heap_push(hs, a.heap_ids + slot * a.k, cnt, a.k, s, n);
  return heap_threshold(hs, cnt, a.k);
}

inline float item_scale(const ScanArgs& a, int64_t n) { return a.item_scale ? a.item_scale[n] : 1.0f; }

// Exact float sum of query q's LUT over item n's codes, in sub-space order.
inline float exact_sum(const ScanArgs& a, int64_t q, int64_t n) {
  const float* l = a.lut + q * a.D * a.K;
  float s = 0.0f;
  for (int64_t d = 0; d < a.D; ++d) s += l[d * a.K + code_at(a.codes, a.ct, n * a.D + d)];
  return s;
}

// Threshold of the bound test for a query whose k-th best score is th: D * th, lowered by a
// relative margin that covers the float rounding of the bound arithmetic.
inline float bound_of(float th, int64_t D) {
  const float lim = th * static_cast<float>(D);
  return lim - (std::fabs(lim) * 1e-5f + 1e-30f);
}

// The largest k-th best exact score of query q that any thread has published (-inf until some
// thread's heap holds k items): a valid threshold for every thread, since k items reach it.
inline float published_best(const ScanArgs& a, int64_t q) {
  float best = -kInf;
  for (int u = 0; u < a.nthreads; ++u) {
    float v;
    __atomic_load(a.published + static_cast<int64_t>(u) * a.B + q, &v, __ATOMIC_RELAXED);
    best = v > best ? v : best;
  }
  return best;
}

inline void publish(const ScanArgs& a, int t, int64_t q, float v) {
  __atomic_store(a.published + static_cast<int64_t>(t) * a.B + q, &v, __ATOMIC_RELAXED);
}

// Up to eight (query, item) pairs that passed a quantized scan's float bound test, waiting to
// be scored exactly into thread t's heaps. Eight at a time, because one exact sum is a chain of
// D dependent adds (they must run in sub-space order, from 0, to match the float scan and
// exact_sum bit for bit): interleaved, eight chains cost about what one does alone.
// Scoring candidates as they come, instead of queueing them with quantized lower bounds for one
// re-rank at the end, keeps every threshold an exact k-th best score: the bound band is half as
// wide, so fewer items pass, and nothing is left to re-rank (B = 256, N = 1e6: 75.6 -> 73.5 ms).
struct ExactBatch {
  int m = 0;
  int64_t q[8];
  int64_t n[8];
  float thr[8];  // after score(): query q[i]'s heap threshold in thread t once pair i was offered

  bool add(int64_t query, int64_t item) {  // true when full
    q[m] = query;
    n[m] = item;
    return ++m == 8;
  }

  void score(const ScanArgs& a, int t) {
    const uint8_t* codes = static_cast<const uint8_t*>(a.codes);
    const float* l[8];
    const uint8_t* c[8];
    for (int i = 0; i < 8; ++i) {
      const int u = i < m ? i : 0;  // pad with a real pair
      l[i] = a.lut + q[u] * a.D * a.K;
      c[i] = codes + n[u] * a.D;
    }
    float acc[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    for (int64_t d = 0; d < a.D; ++d)
      for (int i = 0; i < 8; ++i) acc[i] += l[i][d * a.K + c[i][d]];
    const float inv_d = 1.0f / static_cast<float>(a.D);
    for (int i = 0; i < m; ++i) thr[i] = offer(a, t, q[i], n[i], finish(acc[i], item_scale(a, n[i]), inv_d));
  }
};

}  // namespace
}  // namespace VQ_ISA
}  // namespace vqrec
