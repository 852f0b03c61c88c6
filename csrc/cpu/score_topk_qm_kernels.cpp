// Query-major quantized ADC scan, compiled once per ISA level (VQ_ISA = scalar | avx2 | avx512).
//
// The block scan (score_topk_kernels.cpp) looks 64 items' codes up in one query's table with
// AVX-512 VBMI byte permutes; without them it falls back to one byte load per look-up. This scan
// turns the loop around: the uint8 tables of G queries are laid out as [d][code][G], so one
// vector load fetches an item's entry for G queries at once (G = 64 on AVX-512, 32 on AVX2, 16
// on the SSE2 baseline: one register of bytes). An item then costs D loads and ~2D vector adds
// per G queries, whatever the level, with no code transposition. The tables of one group
// (D * 256 * G bytes, 512 KiB at D = 32 on AVX-512) stay in L2 while the items stream past.
//
// Bounds, shared thresholds and exact scoring are the block scan's (score_topk_scan.h), so both
// scans return the same answer. What differs is the test that decides which items reach the
// float bound test: one unsigned 16-bit compare per query lane against an integer threshold
// (see Thresholds), so the float test runs only on the rare lanes that may pass.
#include "cpu/score_topk_scan.h"

#if defined(__AVX512BW__) || defined(__AVX2__) || defined(__SSE2__)
#include <immintrin.h>
#endif

namespace vqrec {
namespace VQ_ISA {
namespace {

#if defined(__AVX512BW__)
constexpr int G = 64;
#elif defined(__AVX2__)
constexpr int G = 32;
#else
constexpr int G = 16;
#endif
// Items between looks at the other threads' k-th best scores: a look reads G * nthreads shared
// floats, and the lanes that rose are recomputed for every scale class. At B = 256, N = 1e6
// (native scan, medians of 4 alternating processes) tiles of 64 / 256 / 1024 items ran 69.3 /
// 64.6 / 62.5 ms, and 256 / 1024 / 2048 / 4096 items 64.8 / 62.3 / 62.9 / 65.8 ms.
constexpr int64_t kTile = 1024;
constexpr int64_t kChunk = 4096;  // items per dynamically scheduled piece of work

// The 16-bit view of a byte vector below puts byte 2i in the low half of lane i.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the query-major scan assumes little-endian lanes");
typedef uint8_t vu8 __attribute__((vector_size(G)));
typedef uint16_t vu16 __attribute__((vector_size(G)));  // G / 2 lanes

inline vu8 load_row(const uint8_t* p) {
  vu8 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// Bit j set when query j's sum reaches its threshold: lane i of lo / hi is query i / G/2 + i.
inline uint64_t pass_mask(vu16 lo, vu16 th_lo, vu16 hi, vu16 th_hi) {
#if defined(__AVX512BW__)
  return static_cast<uint64_t>(_mm512_cmpge_epu16_mask((__m512i)lo, (__m512i)th_lo)) |
         (static_cast<uint64_t>(_mm512_cmpge_epu16_mask((__m512i)hi, (__m512i)th_hi)) << 32);
#elif defined(__AVX2__)
  // packs keeps 128-bit halves apart: its bytes are lo 0-7, hi 0-7, lo 8-15, hi 8-15.
  const uint32_t m = static_cast<uint32_t>(
      _mm256_movemask_epi8(_mm256_packs_epi16((__m256i)(lo >= th_lo), (__m256i)(hi >= th_hi))));
  if (m == 0) return 0;
  return (m & 0xffu) | ((m >> 8) & 0xff00u) | ((m << 8) & 0xff0000u) | (m & 0xff000000u);
#elif defined(__SSE2__)
  const __m128i m = _mm_packs_epi16((__m128i)(lo >= th_lo), (__m128i)(hi >= th_hi));  // lo 0-7, hi 0-7
  return static_cast<uint32_t>(_mm_movemask_epi8(m));
#else
  uint64_t m = 0;
  for (int i = 0; i < G / 2; ++i) {
    m |= static_cast<uint64_t>(lo[i] >= th_lo[i]) << i;
    m |= static_cast<uint64_t>(hi[i] >= th_hi[i]) << (G / 2 + i);
  }
  return m;
#endif
}

// Byte position of query j of a group in a table row. The 16-bit sums below add two adjacent
// bytes' look-ups into separate halves, so byte 2i ends in lane i of `lo` and byte 2i + 1 in lane
// i of `hi`: queries 0 .. G/2 - 1 go to the even bytes and G/2 .. G - 1 to the odd ones.
inline int lane_byte(int j) { return j < G / 2 ? 2 * j : 2 * (j - G / 2) + 1; }

// Sub-space d of the tables of queries q0 .. q0 + nq - 1 (nq <= G): 256 rows of G bytes at
// T + d * 256 * G, layout [code][G] (absent queries: 0), from each query's [D, 256] table in
// qlut (quantize_luts' plain layout).
void build_group_rows(const uint8_t* qlut, int64_t D, int64_t q0, int nq, int64_t d, uint8_t* T) {
  alignas(64) uint8_t tile[G][256];  // the group's tables of sub-space d, query-major
  for (int j = 0; j < G; ++j) {
    if (j < nq)
      std::memcpy(tile[j], qlut + ((q0 + j) * D + d) * 256, 256);
    else
      std::memset(tile[j], 0, 256);
  }
  uint8_t* rows = T + d * 256 * G;
  for (int c = 0; c < 256; ++c)
    for (int j = 0; j < G; ++j) rows[c * G + lane_byte(j)] = tile[j][c];
}

// Sums of one item's table entries for the G queries of a group: lane i of lo (hi) = query i
// (G/2 + i). Two sub-spaces are added in bytes (entries <= 127), then accumulated in 16-bit
// lanes: raw sums whole lanes (even byte + 256 * odd byte, wrapping) and hi sums the odd bytes,
// so the even bytes' sum is raw - 256 * hi (exact while D * 127 < 2^16).
inline void accumulate_pair(vu8 v, vu16& raw, vu16& h) {
  const vu16 w = (vu16)v;
  raw += w;
  h += w >> 8;
}

inline void group_sums(const uint8_t* T, const uint8_t* c, int64_t D, vu16& lo, vu16& hi) {
  vu16 raw = {}, h = {};
  int64_t d = 0;
  for (; d + 1 < D; d += 2)
    accumulate_pair(load_row(T + (d * 256 + c[d]) * G) + load_row(T + ((d + 1) * 256 + c[d + 1]) * G), raw, h);
  if (d < D) accumulate_pair(load_row(T + (d * 256 + c[d]) * G), raw, h);
  lo = raw - (h << 8);
  hi = h;
}

// Byte offset of the row of the code in byte b of x (little-endian) within its sub-space's
// table: code * G, taken out of x with one shift and one mask.
constexpr int kRowShift = G == 64 ? 6 : G == 32 ? 5 : 4;
static_assert(G == 1 << kRowShift, "rows are G bytes");
template <int b>
inline uint64_t row_offset(uint64_t x) {
  constexpr uint64_t mask = uint64_t{0xff} << kRowShift;
  return (b * 8 >= kRowShift ? x >> (b * 8 - kRowShift) : x << (kRowShift - b * 8)) & mask;
}

// Sub-spaces b and b + 1 of the eight whose codes are the bytes of x; Tw is the first one's table.
template <int b>
inline void accumulate_codes(const uint8_t* Tw, uint64_t x, vu16& raw, vu16& h) {
  accumulate_pair(load_row(Tw + b * 256 * G + row_offset<b>(x)) + load_row(Tw + (b + 1) * 256 * G + row_offset<b + 1>(x)),
                  raw, h);
}

// group_sums for the paper's D = 32, fully unrolled with constant table offsets. The codes are
// read eight at a time and split with shifts and masks instead of 32 byte loads: the loop is
// bound by its loads (32 table rows and the codes per item); a one-thread micro-benchmark of
// it went from 19.5 to 17.7 ms per 1M items.
inline void group_sums32(const uint8_t* T, const uint8_t* c, vu16& lo, vu16& hi) {
  vu16 raw = {}, h = {};
#pragma GCC unroll 4
  for (int w = 0; w < 4; ++w) {
    uint64_t x;
    std::memcpy(&x, c + 8 * w, sizeof(x));
    const uint8_t* Tw = T + w * 8 * 256 * G;  // sub-spaces 8w .. 8w + 7
    accumulate_codes<0>(Tw, x, raw, h);
    accumulate_codes<2>(Tw, x, raw, h);
    accumulate_codes<4>(Tw, x, raw, h);
    accumulate_codes<6>(Tw, x, raw, h);
  }
  lo = raw - (h << 8);
  hi = h;
}

// The items of a chunk in kClasses classes of scale, so that the pre-test's integer threshold
// (which must let through every item compared with it) is set from the scales of one class
// instead of those of the whole chunk. Cosine scales of random W spread over 0.27-0.40, and one
// threshold per 256-item tile, from the tile's extreme scales, let 2.3x as many query lanes
// reach the float test as equal scales would (counted). With 16 classes per 4,096-item chunk,
// B = 256, N = 1e6 went 73.7 -> 67.8 ms (those scales) and 84.6 -> 76.7 ms (scales spread 4x
// wider).
// Class c holds the items whose (s - smin) * inv_w rounds down to c (the last class also takes
// the top edge); that map is monotone in s, which is what makes the class edges below exact.
constexpr int kClasses = 16;

struct ScaleClasses {
  int n = 1;                 // classes in use: 1 without scales, or when they span under 0.1%
  float inv_lo[kClasses];    // 1 / a lower bound of the scales of class c (+inf for 0)
  float inv_hi[kClasses];    // 1 / an upper bound of them
  alignas(64) uint8_t of[kChunk];  // class of item c0 + i
  float smin = 0.0f, inv_w = 0.0f;

  int class_of(float x) const {
    const float v = (x - smin) * inv_w;
    return static_cast<int>(v < kClasses - 1 ? v : kClasses - 1);
  }

  void assign(const ScanArgs& a, int64_t c0, int64_t c1) {
    for (int c = 0; c < kClasses; ++c) inv_lo[c] = inv_hi[c] = 1.0f;  // classes not in use: any finite value
    const int64_t m = c1 - c0;
    const float* s = a.item_scale == nullptr ? nullptr : a.item_scale + c0;
    float lo = 1.0f, hi = 1.0f;
    if (s != nullptr) range_of(s, m, &lo, &hi);
    if (!(hi - lo > hi * 1e-3f)) {  // one class (also for equal or all-zero scales)
      n = 1;
      inv_lo[0] = 1.0f / lo;
      inv_hi[0] = 1.0f / hi;
      std::memset(of, 0, static_cast<size_t>(m));
      return;
    }
    n = kClasses;
    smin = lo;
    inv_w = static_cast<float>(kClasses) / (hi - lo);
    for (int64_t i = 0; i < m; ++i) of[i] = static_cast<uint8_t>(class_of(s[i]));
    // Edges: a value e below class c (class_of(e) < c) bounds its scales from below, one above
    // it from above. Start at the real-number edge and step one float at a time until the map
    // agrees (a step or two: classes are over 6e-5 * hi wide, far above the rounding).
    const float w = (hi - lo) / static_cast<float>(kClasses);
    inv_lo[0] = 1.0f / lo;
    inv_hi[kClasses - 1] = 1.0f / hi;
    for (int c = 1; c < kClasses; ++c) {
      float below = lo + static_cast<float>(c) * w, above = below;
      while (class_of(below) >= c) below = std::nextafter(below, -kInf);
      while (class_of(above) < c) above = std::nextafter(above, kInf);
      inv_lo[c] = 1.0f / below;
      inv_hi[c - 1] = 1.0f / above;
    }
  }
};

// Per-query integer thresholds of one group, per scale class of the current chunk: row c holds
// for query j the smallest U with which it may pass the float test
//   (step * U + offset) * scale >= bound
// for some item of class c (scales in [lo_c, hi_c]), lowered by a margin that covers float
// rounding; its first G/2 lanes are queries 0 .. G/2 - 1 and the rest G/2 .. G - 1, matching
// the lanes of the sums.
// The test needs step * U + offset >= bound / scale, whose smallest value over the class is
// bound / hi_c for bound > 0 and bound / lo_c otherwise. The arithmetic is plain float so the
// compiler vectorises it over the classes; the special cases fall out of IEEE rules: bound > 0
// with all scales 0 gives +inf (65535: no item passes; sums never exceed D * 127 <= 65532),
// bound < 0 with a zero scale -inf and bound 0 with a zero scale NaN (both 0: every item
// passes, as it may). Absent queries have bound +inf.
struct Thresholds {
  alignas(64) float bound[G];  // bound_of(threshold, D), the float test's right-hand side
  alignas(64) float off[G];
  alignas(64) float inv_step[G];
  alignas(64) uint16_t rows[kClasses][G];

  static float lane(float bound, float off, float inv_step, float inv_smin, float inv_smax) {
    float x = bound * (bound > 0.0f ? inv_smax : inv_smin);  // bound / scale at the class's extreme
    x = x > 1e30f ? 1e30f : x;                                  // +inf: stays huge, minus a finite margin
    float t = (x - off) * inv_step - (1.0f + 1e-5f * (std::fabs(x) + std::fabs(off)) * inv_step);
    t = t > 0.0f ? t : 0.0f;  // NaN -> 0
    return t < 65535.0f ? t : 65535.0f;
  }

  void init(const ScanArgs& a, int64_t q0, int nq) {
    for (int j = 0; j < G; ++j) {
      bound[j] = j < nq ? -kInf : kInf;
      off[j] = j < nq ? a.qoffset[q0 + j] : 0.0f;
      inv_step[j] = j < nq ? 1.0f / a.qstep[q0 + j] : 1.0f;
    }
  }

  // Query j's lane in every class in use.
  void update(int j, const ScaleClasses& cl) {
    float v[kClasses];
    for (int c = 0; c < kClasses; ++c) v[c] = lane(bound[j], off[j], inv_step[j], cl.inv_lo[c], cl.inv_hi[c]);
    for (int c = 0; c < cl.n; ++c) rows[c][j] = static_cast<uint16_t>(v[c]);
  }

  void update_all(const ScaleClasses& cl) {
    for (int c = 0; c < cl.n; ++c)
      for (int j = 0; j < G; ++j) rows[c][j] = static_cast<uint16_t>(lane(bound[j], off[j], inv_step[j], cl.inv_lo[c], cl.inv_hi[c]));
  }

  void test_row(int c, vu16& lo, vu16& hi) const {
    std::memcpy(&lo, rows[c], sizeof(lo));
    std::memcpy(&hi, rows[c] + G / 2, sizeof(hi));
  }
};

// Exact scores of the batch's pairs (all of this group); where this thread's k-th best score
// of a query rises above best[j] (the largest known here, this thread's or another's), the
// query's bounds (float and integer) rise and the other threads are told.
__attribute__((noinline)) void score_batch(const ScanArgs& a, int t, int64_t q0, ExactBatch& batch, float* best,
                                           Thresholds& th, const ScaleClasses& cl) {
  batch.score(a, t);
  for (int i = 0; i < batch.m; ++i) {
    const int j = static_cast<int>(batch.q[i] - q0);
    if (batch.thr[i] > best[j]) {
      best[j] = batch.thr[i];
      publish(a, t, batch.q[i], best[j]);
      th.bound[j] = bound_of(best[j], a.D);
      th.update(j, cl);
    }
  }
  batch.m = 0;
}

// Item n passed the pre-test for the queries whose bits are set in `pass` (U[j]: query q0 + j's
// sum): the float bound test per such query, and exact scoring where it passes. Out of line:
// inlined, it made the compiler keep both sum vectors in memory, two 64-byte stores for every
// item.
__attribute__((noinline)) void take_hits(const ScanArgs& a, int t, int64_t n, int64_t q0, uint64_t pass,
                                         const uint16_t* U, ExactBatch& batch, float* best, Thresholds& th,
                                         const ScaleClasses& cl) {
  const float s = item_scale(a, n);
  for (; pass != 0; pass &= pass - 1) {
    const int j = __builtin_ctzll(pass);
    const int64_t q = q0 + j;
    const float upper = a.qstep[q] * U[j] + a.qoffset[q];
    if (!(upper * s >= th.bound[j])) continue;
    if (batch.add(q, n)) score_batch(a, t, q0, batch, best, th, cl);
  }
}

// Items c0 .. c1 - 1 for the group of queries q0 .. q0 + nq - 1, whose tables are at T, into
// thread t's heaps.
void scan_chunk(const ScanArgs& a, int t, const uint8_t* T, int64_t q0, int nq, int64_t c0, int64_t c1) {
  const int64_t D = a.D;
  const uint8_t* codes = static_cast<const uint8_t*>(a.codes);
  ExactBatch batch;
  alignas(64) float best[G];
  for (int j = 0; j < G; ++j) best[j] = -kInf;
  Thresholds th;
  th.init(a, q0, nq);
  ScaleClasses cl;
  cl.assign(a, c0, c1);
  th.update_all(cl);
  for (int64_t t0 = c0; t0 < c1; t0 += kTile) {
    const int64_t t1 = c1 - t0 < kTile ? c1 : t0 + kTile;
    for (int j = 0; j < nq; ++j) {  // every thread's k-th best so far bounds this one's
      const float b = published_best(a, q0 + j);
      if (b > best[j]) {
        best[j] = b;
        th.bound[j] = bound_of(b, D);
        th.update(j, cl);
      }
    }
    for (int64_t n = t0; n < t1; ++n) {
      vu16 lo, hi, th_lo, th_hi;
      if (D == 32)
        group_sums32(T, codes + n * 32, lo, hi);
      else
        group_sums(T, codes + n * D, D, lo, hi);
      th.test_row(cl.of[n - c0], th_lo, th_hi);
      const uint64_t pass = pass_mask(lo, th_lo, hi, th_hi);
      if (pass == 0) continue;  // the usual case
      alignas(64) uint16_t U[G];
      std::memcpy(U, &lo, sizeof(lo));
      std::memcpy(U + G / 2, &hi, sizeof(hi));
      take_hits(a, t, n, q0, pass, U, batch, best, th, cl);
    }
    if (batch.m > 0) score_batch(a, t, q0, batch, best, th, cl);
  }
}

}  // namespace

void scan_topk_quantized_qm(const ScanArgs& a) {
  const int64_t D = a.D, N = a.N, B = a.B;
  const int64_t groups = (B + G - 1) / G;
  // Groups go whole to threads while every thread gets one: a query's heap then sees every item,
  // so its threshold is the k-th best of all items scored so far, not of one thread's share
  // (the larger of the threads' k-th best scores, each from about half the items, let about
  // twice as many items through). The groups left over (fewer than threads) are scanned one at
  // a time with the items split between the threads.
  const int64_t own_rounds = groups / a.nthreads;
  const int64_t shared_groups = groups - own_rounds * a.nthreads;
  // One group's tables per thread (own rounds) and one shared (leftover groups): 512 KiB each at
  // D = 32 on AVX-512, rebuilt for each group, so the memory does not grow with B.
  const int64_t table_bytes = D * 256 * G;
  const int64_t stride = static_cast<int64_t>(round_up_huge(static_cast<size_t>(table_bytes)));
  const int64_t buffers = (own_rounds > 0 ? a.nthreads : 0) + (shared_groups > 0 ? 1 : 0);
  const Scratch tables(static_cast<size_t>(buffers * stride));
  // First touch from one thread: faulted by two threads at once, a 2 MiB region came back in
  // 4 KiB pages and the scan's random row loads ran ~12% slower (99 vs 87 ms at B = 256,
  // N = 1e6); zeroing costs ~0.1 ms per table.
  for (int64_t i = 0; i < buffers; ++i) std::memset(tables.data() + i * stride, 0, static_cast<size_t>(table_bytes));
  uint8_t* const shared_T = reinterpret_cast<uint8_t*>(tables.data()) + (buffers - 1) * stride;

  auto group_size = [&](int64_t q0) { return static_cast<int>(B - q0 < G ? B - q0 : G); };
  auto chunk_end = [&](int64_t c0) { return N - c0 < kChunk ? N : c0 + kChunk; };
#pragma omp parallel num_threads(a.nthreads)
  {
    const int t = omp_thread_id();
    uint8_t* const own_T = reinterpret_cast<uint8_t*>(tables.data()) + t * stride;
    for (int64_t r = 0; r < own_rounds; ++r) {
      const int64_t q0 = (r * a.nthreads + t) * G;
      const int nq = group_size(q0);
      for (int64_t d = 0; d < D; ++d) build_group_rows(a.qlut, D, q0, nq, d, own_T);
      for (int64_t c0 = 0; c0 < N; c0 += kChunk) scan_chunk(a, t, own_T, q0, nq, c0, chunk_end(c0));
    }
    for (int64_t g = own_rounds * a.nthreads; g < groups; ++g) {
      const int64_t q0 = g * G;
      const int nq = group_size(q0);
      // (the barrier ending the previous group's scan keeps its tables until all are done)
#pragma omp for schedule(static)
      for (int64_t d = 0; d < D; ++d) build_group_rows(a.qlut, D, q0, nq, d, shared_T);
#pragma omp for schedule(dynamic, 1)
      for (int64_t c0 = 0; c0 < N; c0 += kChunk) scan_chunk(a, t, shared_T, q0, nq, c0, chunk_end(c0));
    }
  }
}

}  // namespace VQ_ISA
}  // namespace vqrec
