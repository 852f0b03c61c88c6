// Per-ISA helpers shared by the ADC scans (score_topk_kernels.cpp, score_topk_qm_kernels.cpp):
// the hand-written heaps, exclusions, exact re-scoring, and the quantized scans' candidate
// bookkeeping. Included only by *_kernels.cpp files, so each level and file keeps its own
// internal copy (see code_bag_kernels.cpp for why these files avoid shared templates and
// globals).
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

// Min-heap of (score, id) with `cnt` entries out of capacity k; root = current k-th best.
// hi == nullptr keeps scores only (the quantized scan's heap of lower bounds).
inline void heap_push(float* hs, int64_t* hi, int64_t& cnt, int64_t k, float s, int64_t id) {
  int64_t i;
  if (cnt < k) {
    i = cnt++;
    while (i > 0) {  // sift up
      const int64_t p = (i - 1) / 2;
      if (hs[p] <= s) break;
      hs[i] = hs[p];
      if (hi != nullptr) hi[i] = hi[p];
      i = p;
    }
  } else {
    if (!(s > hs[0])) return;
    i = 0;
    for (;;) {  // sift down from the root
      int64_t c = 2 * i + 1;
      if (c >= k) break;
      if (c + 1 < k && hs[c + 1] < hs[c]) ++c;
      if (hs[c] >= s) break;
      hs[i] = hs[c];
      if (hi != nullptr) hi[i] = hi[c];
      i = c;
    }
  }
  hs[i] = s;
  if (hi != nullptr) hi[i] = id;
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

// Exact float sums of one query's LUT l [D, K] for m <= 8 items of row-major uint8 codes
// [N, D]. Each sum adds in sub-space order from 0, exactly as exact_sum does, so the two agree
// bit for bit; eight independent chains at once instead of one latency-bound chain per item.
inline void exact_sums8(const float* l, int64_t D, int64_t K, const uint8_t* codes, const int64_t* ids, int m,
                        float* out) {
  constexpr int kLanes = 8;
  const uint8_t* c[kLanes];
  for (int j = 0; j < kLanes; ++j) c[j] = codes + ids[j < m ? j : 0] * D;  // pad with a real item
  float acc[kLanes] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  for (int64_t d = 0; d < D; ++d) {
    const float* ld = l + d * K;
    for (int j = 0; j < kLanes; ++j) acc[j] += ld[c[j][d]];
  }
  for (int j = 0; j < m; ++j) out[j] = acc[j];
}

// Per (thread, query) bookkeeping of the quantized scan. Exact scores are not computed while
// scanning: the k-th best *lower bound* (step * U + offset - 2 * slack) * scale seen so far is a
// valid threshold (k items score at least that), so it drives the bound test, and items that
// pass are queued with their upper bound. The queue is re-scored exactly once, at the end,
// keeping only items whose upper bound still reaches the final threshold: the query's float
// LUT is then read while it is in cache, instead of one cache-missing re-rank per candidate.
// The threshold is shared between threads through ScanArgs::published (the largest k-th lower
// bound of any thread is valid for all). A full queue is first pruned of items below the
// current threshold and, only if that frees too little, re-scored exactly on the spot.
struct Candidates {
  const ScanArgs& a;
  int t;
  int64_t q;
  float* lb;      // [k] min-heap of lower bounds (score units)
  int64_t* lb_n;  // its fill count
  int64_t* ids;   // queued item ids
  float* ub;      // their upper bounds (sum * scale units, compared with bound_of)
  int64_t* len;
  float th;       // current threshold (score units), -inf until some heap is full

  Candidates(const ScanArgs& args, int thread, int64_t query) : a(args), t(thread), q(query) {
    const int64_t slot = static_cast<int64_t>(t) * a.B + q;
    lb = a.lb_heap + slot * a.k;
    lb_n = a.lb_count + slot;
    ids = a.queue_ids + slot * a.queue_cap;
    ub = a.queue_ub + slot * a.queue_cap;
    len = a.queue_len + slot;
    th = -kInf;
    refresh();
  }

  // th = the largest published k-th lower bound (own included).
  void refresh() {
    for (int u = 0; u < a.nthreads; ++u) {
      float v;
      __atomic_load(a.published + static_cast<int64_t>(u) * a.B + q, &v, __ATOMIC_RELAXED);
      th = v > th ? v : th;
    }
  }

  // Item n passed the bound test: its quantized sum gives the upper bound `upper` (step * U +
  // offset, sum units) and its scale is s. It is queued with upper * s, and its lower bound
  // (upper - 2 * slack) * s, in score units and lowered by a margin that covers the float
  // rounding, is offered to the heap of lower bounds.
  void add(int64_t n, float upper, float s) {
    const float ubs = upper * s;
    const float low = (upper - 2.0f * a.qslack[q]) * s;
    const float lbs = (low - (std::fabs(low) * 1e-5f + 1e-30f)) / static_cast<float>(a.D);
    if (*len == a.queue_cap) make_room();
    ids[*len] = n;
    ub[(*len)++] = ubs;
    if (lbs > heap_threshold(lb, *lb_n, a.k) && !excluded(a, q, n)) {
      heap_push(lb, nullptr, *lb_n, a.k, lbs, n);
      const float own = heap_threshold(lb, *lb_n, a.k);
      if (own > th) {
        th = own;
        __atomic_store(a.published + static_cast<int64_t>(t) * a.B + q, &own, __ATOMIC_RELAXED);
      }
    }
  }

  // Drops queued items that can no longer reach th; if fewer than half go, re-scores the
  // queue exactly into the thread's heap.
  void make_room() {
    prune();
    if (*len > a.queue_cap / 2) flush_exact();
  }

  void prune() {
    const float bound = bound_of(th, a.D);
    int64_t w = 0;
    for (int64_t i = 0; i < *len; ++i)
      if (ub[i] >= bound) {
        ids[w] = ids[i];
        ub[w++] = ub[i];
      }
    *len = w;
  }

  // Exact re-rank of the queue into the thread's heap (the final answer comes from there).
  void flush_exact() {
    const float* l = a.lut + q * a.D * a.K;
    const uint8_t* codes = static_cast<const uint8_t*>(a.codes);
    const float inv_d = 1.0f / static_cast<float>(a.D);
    float sums[8];
    for (int64_t i = 0; i < *len; i += 8) {
      const int m = *len - i < 8 ? static_cast<int>(*len - i) : 8;
      exact_sums8(l, a.D, a.K, codes, ids + i, m, sums);
      for (int j = 0; j < m; ++j) {
        const float s = finish(sums[j], item_scale(a, ids[i + j]), inv_d);
        if (s >= th) offer(a, t, q, ids[i + j], s);
      }
    }
    *len = 0;
  }
};

}  // namespace
}  // namespace VQ_ISA
}  // namespace vqrec
