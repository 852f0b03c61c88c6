// CUDA quantized ADC scans for an exact top-k: from uint8 look-up tables with a rigorous error
// bound, every item that could still be among a query's best kk by exact ADC score. The caller
// re-scores the candidates in fp32 (vqrec_fast/ops/score_topk_gpu.py), so the final top-k is
// exact, not "exact up to fp16 rounding" as with the fp16 scan of adc_topk.cu. Two kernels:
//  * adc_candidates_kernel (the list kernel) finds the candidates on its own: per query, lists
//    of items near the best kk, with thresholds that rise as the scan goes. Used for catalogues
//    below 2^18 items, and on a 2^17-item sample of larger ones.
//  * adc_threshold_kernel (the threshold kernel) scans the rest of a large catalogue with a
//    fixed per-query bound taken from the sample's exact kk-th best score. It keeps no lists,
//    so its blocks hold 16 warps instead of 4. On an H200 at B = 256, N = 10^7: list kernel
//    alone 23-25 ms (Nsight Compute: 5.3 cycles per instruction, one warp per scheduler),
//    sample + threshold kernel 1.8 + 6.8 ms.
//
// Shared by both:
//  * One 16-byte LUT entry holds (d, code) of 16 queries as uint8, twice the queries per read of
//    the fp16 tables. At D = 32 the block's table is 32 x 256 x 16 B = 128 KiB.
//  * A 16-byte shared load is served per quarter warp (8 lanes); lanes that hit the same 16-byte
//    bank group with different addresses are serialised. With one item per lane, codes are
//    random, so 8 lanes would collide ~2.5 times per read. Here entry (d, code) sits in bank
//    group d % 8 (layout [D/8][256][8][16 B]) and, at step b of each 8-sub-space chunk, lane j
//    reads sub-space 8a + (b + j) % 8: the 8 lanes of a quarter warp use 8 distinct bank groups
//    by construction. Each lane rotates its item's code bytes by j once, so byte b of the
//    rotated chunk is the code it needs at step b.
//  * Sums stay packed: a 32-bit word of an entry holds 4 queries' bytes; masking and a byte
//    permute split it into two words of 2 x uint16 partial sums (<= 32 x 255 < 2^15). With
//    GROUP = 2 (7-bit tables, entries <= 127) two entries are added as bytes first.
//  * The per-query threshold test is done on the packed sums: (acc | 0x80008000) - T leaves bit
//    15 (31) set iff the low (high) sum reaches its integer threshold. Only when some lane of the
//    warp passes for some query does the warp compute float estimates (an out-of-line path).
//
// List kernel's candidate rule (per query): est_n = s_n * (off + step * U_n) is within win / 2
// of the exact score of item n (the host derives win from the quantisation step, the item-scale
// maximum and float rounding). With e_kk the kk-th best estimate, every item that can be among
// the best kk by exact score has est_n >= e_kk - win. Each warp keeps, per query, a list of its
// items with est_n >= thr, where thr is the best known value of (a kk-th best estimate of some
// set of items) - win; each such value is <= e_kk - win, so no needed item is ever dropped.
// Lists are compacted (sorted, pruned to >= thr) when a step could overflow them; the warps of
// a block share their bounds through shared memory (see compact). A list that cannot be pruned
// to kListKeep entries (many near-ties) keeps its best kListKeep and flags the query in
// `overflow`: the host then answers that query another way.
#include <cfloat>
#include <cmath>

#include <cuda_pipeline.h>

#include "cuda/common.cuh"
#include "cuda/kernels.h"
#include "cuda/warp_sort.cuh"

namespace vqrec {
namespace cuda {
namespace {

constexpr int kQ = 16;                     // queries per block (one byte each in a 16-byte entry)
constexpr int kWarpsC = 4;                 // warps per block (the table + lists fill shared memory)
constexpr int kThreadsC = 32 * kWarpsC;
constexpr int kListCap = 128;              // candidate slots per (warp, query)
constexpr int kListKeep = kListCap - 32;   // most entries a compaction keeps: room for one step
constexpr int kMaxKK = 64;                 // kk leaves room for near-ties in a list
constexpr int kStageItems = 8;             // items per lane whose codes are in flight (cp.async ring)
constexpr int kMarks = 8;                  // published marks per (warp, query): ranks 8, 16, ..., 64
static_assert(kWarpsC * kMarks == 32, "one mark per lane when a warp reads a query's marks");
static_assert(kMaxKK <= 8 * kMarks, "marks must reach rank kk");

__device__ __forceinline__ int ordered(float f) {
  const int i = __float_as_int(f);
  return i >= 0 ? i : i ^ 0x7fffffff;
}
__device__ __forceinline__ float unordered(int i) { return __int_as_float(i >= 0 ? i : i ^ 0x7fffffff); }

struct QueryParams {
  const float* off;   // [kQ] sum_d min_k LUT[q, d, k]
  const float* step;  // [kQ] quantisation step (> 0)
  const float* win;   // [kQ] candidate window (2 x the estimate's error bound)
  float inv_smax;     // 1 / max item scale (1 without scales)
  bool has_scale;
};

// Smallest integer sum U an item needs to reach estimate `thr`, lowered for float rounding:
// 0 lets every item through, 0x8000 none (sums never exceed 32 x 255 < 0x8000).
__device__ __forceinline__ uint32_t int_threshold(float thr, float off, float step, const QueryParams& p) {
  if (p.has_scale && !(thr > 0.f)) return 0;  // a zero or small scale can lift any sum to thr <= 0
  const float t = p.has_scale ? thr * p.inv_smax : thr;
  const float u = (t - off) / step;
  const float margin = 1.f + (fabsf(t) + fabsf(off)) / step * 1e-6f;
  const float v = u - margin;
  if (!(v >= 0.f)) return 0;  // also -inf and NaN
  if (v >= 32768.f) return 0x8000u;
  return static_cast<uint32_t>(v);
}

// Number of leading entries of a sorted list with s >= thr (every lane returns it).
__device__ __forceinline__ int count_at_least(const float* s, int n, float thr, int lane) {
  int keep = 0;
  for (int i0 = 0; i0 < n; i0 += 32) {
    const int i = i0 + lane;
    keep += __popc(__ballot_sync(0xffffffffu, i < n && s[i] >= thr));
  }
  return keep;
}

struct Kept {
  int count;  // entries kept (best first)
  float thr;  // the list's threshold from now on
};

// Shared state of query q's lists in a block.
struct BlockBound {
  int* best;   // ordered float: the best known bound (some kk-th estimate - win)
  int* marks;  // [kWarpsC][kMarks] ordered floats: warp w's (8 i + 8)-th best estimate
};

// The c-th largest of the 32 values v (one per lane; every lane returns it). Ties are ranked
// by lane, so exactly one lane has each rank.
__device__ __forceinline__ float kth_largest_of_warp(float v, int c, int lane) {
  int rank = 0;
  for (int o = 0; o < 32; ++o) {
    const float u = __shfl_sync(0xffffffffu, v, o);
    rank += (u > v || (u == v && o < lane)) ? 1 : 0;
  }
  const unsigned who = __ballot_sync(0xffffffffu, rank == c - 1);
  return __shfl_sync(0xffffffffu, v, __ffs(who) - 1);
}

// Sorts list (s, id) of n entries and prunes it to entries >= the best known bound (and >= thr).
// Bounds, all <= (the catalogue's kk-th best estimate) - win:
//  * this list's own kk-th estimate - win;
//  * from the marks: warp w has at least 8 i items at or above its i-th mark, so the
//    ceil(kk / 8)-th largest mark of the block has at least kk distinct items at or above it.
//    This tracks the block's kk-th best, so each list keeps about kk / kWarpsC entries plus
//    near-ties instead of its own kk plus near-ties, which overflowed 128-slot lists.
// The better bound is shared with the block. On overflow keeps the best `limit`, moves the
// threshold above them and flags the query. Not inlined: it runs rarely.
__device__ __noinline__ Kept compact(float* s, int32_t* id, int n, int kk, float win, float thr, BlockBound bb,
                                     int warp, int* overflow, int limit, int lane) {
  warp_bitonic_sort(s, id, n, lane);
  if (lane < kMarks && 8 * lane + 8 <= n) atomicMax(bb.marks + warp * kMarks + lane, ordered(s[8 * lane + 7]));
  __syncwarp();
  const float mark = unordered(*reinterpret_cast<volatile int*>(bb.marks + lane));  // kWarpsC * kMarks == 32
  float x = kth_largest_of_warp(mark, (kk + 7) / 8, lane) - win;  // -inf until enough marks exist
  if (n >= kk) x = fmaxf(x, s[kk - 1] - win);
  if (x > thr) thr = x;
  if (lane == 0) atomicMax(bb.best, ordered(x));
  const float shared = unordered(*reinterpret_cast<volatile int*>(bb.best));
  if (shared > thr) thr = shared;
  int keep = count_at_least(s, n, thr, lane);
  if (keep > limit) {
    keep = limit;
    thr = nextafterf(s[limit - 1], INFINITY);  // only strictly better items from now on
    if (lane == 0) atomicExch(overflow, 1);
  }
  __syncwarp();
  return Kept{keep, thr};
}

// Packed per-query uint16 values of the 16 queries: query q in word q / 4 of `lo` (q % 4 in
// {0, 2}) or `hi` (q % 4 in {1, 3}), low half for q % 4 < 2.
struct Packed {
  uint32_t lo[4], hi[4];
  __device__ __forceinline__ uint32_t get(int q) const {
    const uint32_t w = (q & 1) ? hi[q >> 2] : lo[q >> 2];
    return (q & 2) ? (w >> 16) : (w & 0xffffu);
  }
};

// What a warp's rare paths need (lives in shared memory or is passed once).
struct WarpCtx {
  float* list_s;       // [kQ][kListCap] this warp's lists
  int32_t* list_i;
  int* cnt;            // [kQ] entries per list
  float* thr;          // [kQ] the lists' thresholds
  const float* off;    // [kQ] per-query constants (shared memory)
  const float* stp;
  const float* win;
  int* best;           // [kQ] block bounds
  int* marks;          // [kQ][kWarpsC][kMarks]
  int* overflow;       // [kQ] this group's flags (global)
  const float* item_scale;
  QueryParams qp;
  int kk, warp, lane;
};

// Integer thresholds of all 16 queries from the warp's float thresholds.
__device__ Packed pack_thresholds(const float* thr, const float* off, const float* stp, const QueryParams& qp) {
  Packed t{{0, 0, 0, 0}, {0, 0, 0, 0}};
#pragma unroll
  for (int q = 0; q < kQ; ++q) {
    const uint32_t v = int_threshold(thr[q], off[q], stp[q], qp);
    uint32_t& w = (q & 1) ? t.hi[q >> 2] : t.lo[q >> 2];
    w |= (q & 2) ? (v << 16) : v;
  }
  return t;
}

__device__ Packed thresholds_of(const WarpCtx& c) { return pack_thresholds(c.thr, c.off, c.stp, c.qp); }

// Adopts better bounds found by the block's other warps; returns the new integer thresholds.
__device__ __noinline__ Packed refresh(const WarpCtx& c) {
  if (c.lane < kQ) {
    const float b = unordered(*reinterpret_cast<volatile int*>(c.best + c.lane));
    if (b > c.thr[c.lane]) c.thr[c.lane] = b;
  }
  __syncwarp();
  return thresholds_of(c);
}

// Some lane's item passed some query's integer test: estimate, append hits with ballots,
// compact full lists. Returns the new integer thresholds.
__device__ __noinline__ Packed on_hits(const WarpCtx& c, Packed sums, Packed pass, bool valid, int64_t n) {
  const float sc = (valid && c.item_scale) ? __ldg(c.item_scale + n) : 1.f;
  const unsigned below = (1u << c.lane) - 1u;
#pragma unroll 1
  for (int q = 0; q < kQ; ++q) {
    const int cnt = c.cnt[q];
    const float thr = c.thr[q];
    bool hit = false;
    float est = 0.f;
    if (valid && pass.get(q) != 0) {  // the pass bits sit at bit 15 of each half
      est = fmaf(c.stp[q], static_cast<float>(sums.get(q)), c.off[q]) * sc;
      hit = est >= thr;
    }
    const unsigned mask = __ballot_sync(0xffffffffu, hit);
    if (!mask) continue;  // warp-uniform
    float* ls = c.list_s + q * kListCap;
    int32_t* li = c.list_i + q * kListCap;
    if (hit) {
      const int pos = cnt + __popc(mask & below);
      ls[pos] = est;
      li[pos] = static_cast<int32_t>(n);
    }
    int now = cnt + __popc(mask);
    __syncwarp();
    if (now > kListKeep) {
      const Kept k = compact(ls, li, now, c.kk, c.win[q], thr, BlockBound{c.best + q, c.marks + q * kWarpsC * kMarks},
                             c.warp, c.overflow + q, kListKeep, c.lane);
      now = k.count;
      if (c.lane == 0) c.thr[q] = k.thr;
    }
    if (c.lane == 0) c.cnt[q] = now;
    __syncwarp();
  }
  return thresholds_of(c);
}

// Adds item `cur`'s D table entries for the 16 queries into acc (packed uint16 sums).
template <int A, int GROUP>
__device__ __forceinline__ void add_item(Packed& acc, const uint2 (&cur)[A], const uint4* lut_s,
                                         const uint32_t (&offb)[8], uint32_t rot) {
#pragma unroll
  for (int a = 0; a < A; ++a) {
    const uint64_t x = (static_cast<uint64_t>(cur[a].y) << 32) | cur[a].x;
    const uint64_t r = (x >> rot) | (x << ((64u - rot) & 63u));  // byte b = code of 8a + (b + j) % 8
    const uint32_t rw[2] = {static_cast<uint32_t>(r), static_cast<uint32_t>(r >> 32)};
#pragma unroll
    for (int b0 = 0; b0 < 8; b0 += GROUP) {
      uint32_t sum[4] = {0, 0, 0, 0};
#pragma unroll
      for (int b = b0; b < b0 + GROUP; ++b) {
        // Byte address code * 128 + offb[b]: one shift and one and-or (the offset bits 4-6 do
        // not overlap the code bits 7-14).
        const uint32_t word = rw[b >> 2];
        const int sh = 8 * (b & 3) - 7;  // constant after unrolling
        const uint32_t c128 = sh < 0 ? (word << 7) : (word >> (sh < 0 ? 0 : sh));
        const uint32_t addr = (c128 & 0x7f80u) | offb[b];
        const uint4 e = *reinterpret_cast<const uint4*>(reinterpret_cast<const char*>(lut_s + a * 2048) + addr);
        sum[0] += e.x;
        sum[1] += e.y;
        sum[2] += e.z;
        sum[3] += e.w;
      }
#pragma unroll
      for (int w = 0; w < 4; ++w) {
        acc.lo[w] += sum[w] & 0x00ff00ffu;             // bytes 0, 2 -> uint16 halves
        acc.hi[w] += __byte_perm(sum[w], 0u, 0x4341);  // bytes 1, 3 -> uint16 halves
      }
    }
  }
}

// A: sub-space chunks (D = 8 A); GROUP: entries added as bytes before widening (1: 8-bit tables,
// 2: 7-bit tables); ITEMS: items per lane per step. With one block (4 warps) per SM a warp must
// hide its own latencies (Nsight Compute: 5.3 cycles per instruction), so independent items per
// lane were tried; on an H200 at N = 10^7 they did not help (1 item: 24.0-24.8 ms, 2: 24.7-25.1,
// 4: 36.0), and 7-bit tables widened the windows until most lists overflowed. The threshold
// kernel (more warps per block) is what made large catalogues fast.
template <int A, int GROUP, int ITEMS>
__global__ void __launch_bounds__(kThreadsC, 1)
    adc_candidates_kernel(const uint4* __restrict__ lut, const uint8_t* __restrict__ codes, int64_t N,
                          const float* __restrict__ item_scale, QueryParams qp, int kk, int64_t per_split,
                          float* __restrict__ out_est, int32_t* __restrict__ out_ids, int* __restrict__ overflow) {
  constexpr int kLut = A * 256 * 8;  // 16-byte entries
  constexpr int kDepth = kStageItems / ITEMS;  // steps in flight
  extern __shared__ uint4 smem[];
  uint4* lut_s = smem;
  uint2* stage = reinterpret_cast<uint2*>(lut_s + kLut);                      // [warps][kStageItems][A][32]
  float* list_s = reinterpret_cast<float*>(stage + kWarpsC * kStageItems * A * 32);  // [warps][kQ][cap]
  int32_t* list_i = reinterpret_cast<int32_t*>(list_s + kWarpsC * kQ * kListCap);  // same shape
  int* best = reinterpret_cast<int*>(list_i + kWarpsC * kQ * kListCap);          // [kQ] ordered floats
  int* marks = best + kQ;                                                        // [kQ][kWarpsC][kMarks]
  int* wcnt = marks + kQ * kWarpsC * kMarks;                                     // [warps][kQ]
  float* wthr = reinterpret_cast<float*>(wcnt + kWarpsC * kQ);                   // [warps][kQ]
  float* par = wthr + kWarpsC * kQ;                                              // [3][kQ] off, step, win

  const int g = blockIdx.x, s = blockIdx.y, S = gridDim.y;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, j = lane & 7;
  const uint4* lut_g = lut + static_cast<int64_t>(g) * kLut;
  for (int i = tid; i < kLut; i += kThreadsC) lut_s[i] = lut_g[i];
  for (int i = tid; i < kQ * kWarpsC * kMarks; i += kThreadsC) marks[i] = ordered(-INFINITY);
  if (tid < kQ * kWarpsC) {
    wcnt[tid] = 0;
    wthr[tid] = -INFINITY;
  }
  if (tid < kQ) {
    best[tid] = ordered(-INFINITY);
    par[tid] = qp.off[g * kQ + tid];
    par[kQ + tid] = qp.step[g * kQ + tid];
    par[2 * kQ + tid] = qp.win[g * kQ + tid];
  }
  __syncthreads();  // the only block barrier
  const WarpCtx ctx{list_s + warp * kQ * kListCap, list_i + warp * kQ * kListCap, wcnt + warp * kQ,
                    wthr + warp * kQ, par, par + kQ, par + 2 * kQ, best, marks, overflow + g * kQ, item_scale, qp,
                    kk, warp, lane};

  uint32_t offb[8];  // byte offset of the 16-byte slot of sub-space 8a + (b + j) % 8 in an (a, code) row
#pragma unroll
  for (int b = 0; b < 8; ++b) offb[b] = ((b + j) & 7) * 16;
  const uint32_t rot = 8u * j;
  Packed T{{0, 0, 0, 0}, {0, 0, 0, 0}};  // integer thresholds: everything passes until lists fill

  const int64_t begin = static_cast<int64_t>(s) * per_split;
  const int64_t end = min(N, begin + per_split);
  constexpr int64_t stride = kThreadsC * ITEMS;  // items between a warp's consecutive steps
  // Codes arrive kDepth steps ahead by cp.async into this warp's staging ring (layout
  // [slot][item][a][lane]: conflict-free reads). The step loop stays rolled: one copy of its
  // long body (unrolling it for a register prefetch made the kernel 3x slower on an H200).
  uint2* my_stage = stage + warp * kStageItems * A * 32;
  auto issue = [&](int64_t first, int slot) {  // first = this lane's item 0 of the step
#pragma unroll
    for (int i = 0; i < ITEMS; ++i) {
      const int64_t item = first + 32 * i;
      if (item < end) {
        const uint2* src = reinterpret_cast<const uint2*>(codes + item * (8 * A));
#pragma unroll
        for (int a = 0; a < A; ++a)
          __pipeline_memcpy_async(my_stage + ((slot * ITEMS + i) * A + a) * 32 + lane, src + a, 8);
      }
    }
    __pipeline_commit();
  };
  for (int p = 0; p < kDepth; ++p) issue(begin + warp * 32 * ITEMS + p * stride + lane, p);
  int t = 0;
#pragma unroll 1
  for (int64_t step_base = begin + warp * 32 * ITEMS; step_base < end; step_base += stride, ++t) {
    const int slot = t % kDepth;
    __pipeline_wait_prior(kDepth - 1);  // this step's copies have landed
    uint2 cur[ITEMS][A];
#pragma unroll
    for (int i = 0; i < ITEMS; ++i)
#pragma unroll
      for (int a = 0; a < A; ++a) cur[i][a] = my_stage[((slot * ITEMS + i) * A + a) * 32 + lane];
    issue(step_base + lane + kDepth * stride, slot);

    Packed acc[ITEMS];
#pragma unroll
    for (int i = 0; i < ITEMS; ++i) {
      acc[i] = Packed{{0, 0, 0, 0}, {0, 0, 0, 0}};
      add_item<A, GROUP>(acc[i], cur[i], lut_s, offb, rot);
    }
#pragma unroll
    for (int i = 0; i < ITEMS; ++i) {
      const int64_t n = step_base + 32 * i + lane;
      const bool valid = n < end;
      // Bit 15 (31) of (acc | 0x80008000) - T is set iff the low (high) sum reaches its threshold.
      Packed pass;
      uint32_t any = 0;
#pragma unroll
      for (int w = 0; w < 4; ++w) {
        pass.lo[w] = ((acc[i].lo[w] | 0x80008000u) - T.lo[w]) & 0x80008000u;
        pass.hi[w] = ((acc[i].hi[w] | 0x80008000u) - T.hi[w]) & 0x80008000u;
        any |= pass.lo[w] | pass.hi[w];
      }
      if (__any_sync(0xffffffffu, valid && any != 0)) T = on_hits(ctx, acc[i], pass, valid, n);  // rare
    }
    if (((t + 1) * ITEMS) % 16 == 0) T = refresh(ctx);  // every 16 items per lane
  }
  __pipeline_wait_prior(0);
  // Final pruning and output: split (s, warp) of query (g, q) gets its list, best first.
#pragma unroll 1
  for (int q = 0; q < kQ; ++q) {
    float* ls = ctx.list_s + q * kListCap;
    int32_t* li = ctx.list_i + q * kListCap;
    const int keep = compact(ls, li, ctx.cnt[q], kk, ctx.win[q], ctx.thr[q],
                             BlockBound{best + q, marks + q * kWarpsC * kMarks}, warp, ctx.overflow + q, kListCap,
                             lane)
                         .count;
    const int64_t row = (static_cast<int64_t>(g) * kQ + q) * (static_cast<int64_t>(S) * kWarpsC) +
                        static_cast<int64_t>(s) * kWarpsC + warp;
    float* os = out_est + row * kListCap;
    int32_t* oi = out_ids + row * kListCap;
    for (int i = lane; i < kListCap; i += 32) {
      const bool real = i < keep;
      os[i] = real ? ls[i] : -INFINITY;
      oi[i] = real ? li[i] : -1;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Threshold scan: the second pass of a two-pass top-k. With a lower bound tau[q] of query q's
// exact kk-th best score in hand (from the first pass over a sample of the catalogue), every
// item whose estimate can still reach it (est >= tau - err, err = the estimate's error bound,
// passed in as thr[q] = tau - err) is appended to q's global buffer. No per-warp lists, no
// compaction: shared memory holds just the table, so a block runs kThreadsT threads (16 warps
// per SM instead of 4, which left each warp stalled on its own dependent instructions).
constexpr int kThreadsT = 512;

template <int A>
__global__ void __launch_bounds__(kThreadsT, 1)
    adc_threshold_kernel(const uint4* __restrict__ lut, const uint8_t* __restrict__ codes, int64_t n0, int64_t N,
                         const float* __restrict__ item_scale, QueryParams qp, const float* __restrict__ thr,
                         int64_t per_split, int cap, int32_t* __restrict__ out_ids, int* __restrict__ count) {
  constexpr int kLut = A * 256 * 8;
  extern __shared__ uint4 smem[];
  uint4* lut_s = smem;
  float* par = reinterpret_cast<float*>(lut_s + kLut);  // [3][kQ] off, step, thr
  const int g = blockIdx.x, s = blockIdx.y;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, j = lane & 7;
  const uint4* lut_g = lut + static_cast<int64_t>(g) * kLut;
  for (int i = tid; i < kLut; i += kThreadsT) lut_s[i] = lut_g[i];
  if (tid < kQ) {
    par[tid] = qp.off[g * kQ + tid];
    par[kQ + tid] = qp.step[g * kQ + tid];
    par[2 * kQ + tid] = thr[g * kQ + tid];
  }
  __syncthreads();
  const float* off = par;
  const float* stp = par + kQ;
  const float* th = par + 2 * kQ;
  const Packed T = pack_thresholds(th, off, stp, qp);
  uint32_t offb[8];
#pragma unroll
  for (int b = 0; b < 8; ++b) offb[b] = ((b + j) & 7) * 16;
  const uint32_t rot = 8u * j;
  const unsigned below = (1u << lane) - 1u;

  const int64_t begin = n0 + static_cast<int64_t>(s) * per_split;
  const int64_t end = min(N, begin + per_split);
  constexpr int64_t stride = kThreadsT;
  // One step of register prefetch: with 16 warps per SM a step lasts long enough to cover it.
  uint2 next[A];
  {
    const int64_t n = begin + warp * 32 + lane;
    if (n < end) {
#pragma unroll
      for (int a = 0; a < A; ++a) next[a] = __ldg(reinterpret_cast<const uint2*>(codes + n * (8 * A)) + a);
    }
  }
#pragma unroll 1
  for (int64_t step_base = begin + warp * 32; step_base < end; step_base += stride) {
    const int64_t n = step_base + lane;
    const bool valid = n < end;
    uint2 cur[A];
#pragma unroll
    for (int a = 0; a < A; ++a) cur[a] = next[a];
    if (n + stride < end) {
#pragma unroll
      for (int a = 0; a < A; ++a)
        next[a] = __ldg(reinterpret_cast<const uint2*>(codes + (n + stride) * (8 * A)) + a);
    }
    Packed acc{{0, 0, 0, 0}, {0, 0, 0, 0}};
    add_item<A, 1>(acc, cur, lut_s, offb, rot);
    uint32_t any = 0;
    Packed pass;
#pragma unroll
    for (int w = 0; w < 4; ++w) {
      pass.lo[w] = ((acc.lo[w] | 0x80008000u) - T.lo[w]) & 0x80008000u;
      pass.hi[w] = ((acc.hi[w] | 0x80008000u) - T.hi[w]) & 0x80008000u;
      any |= pass.lo[w] | pass.hi[w];
    }
    if (__any_sync(0xffffffffu, valid && any != 0)) {  // rare: float test, then append
      const float sc = (valid && item_scale) ? __ldg(item_scale + n) : 1.f;
#pragma unroll 1
      for (int q = 0; q < kQ; ++q) {
        bool hit = false;
        if (valid && pass.get(q) != 0) hit = fmaf(stp[q], static_cast<float>(acc.get(q)), off[q]) * sc >= th[q];
        const unsigned mask = __ballot_sync(0xffffffffu, hit);
        if (!mask) continue;
        int base = 0;
        if (lane == 0) base = atomicAdd(count + g * kQ + q, __popc(mask));
        base = __shfl_sync(0xffffffffu, base, 0);
        const int pos = base + __popc(mask & below);
        if (hit && pos < cap) out_ids[static_cast<int64_t>(g * kQ + q) * cap + pos] = static_cast<int32_t>(n);
      }
    }
  }
}

size_t smem_bytes_for(int64_t D) {
  const size_t A = static_cast<size_t>(D / 8);
  return A * 256 * 8 * 16 + kWarpsC * kStageItems * A * 32 * 8 +
         static_cast<size_t>(kWarpsC) * kQ * kListCap * (sizeof(float) + sizeof(int32_t)) +
         kQ * (1 + kWarpsC * kMarks + 2 * kWarpsC + 3) * sizeof(int);
}

}  // namespace

int64_t adc_candidates_slots() { return kListCap; }
int64_t adc_candidates_warps() { return kWarpsC; }
int64_t adc_candidates_max_kk() { return kMaxKK; }

size_t adc_candidates_smem_bytes(int64_t D) {
  if (D != 8 && D != 16 && D != 32) return 0;
  return smem_if_fits(smem_bytes_for(D));
}

void adc_candidates(const void* lut, int64_t G, int64_t D, const uint8_t* codes, int64_t N, const float* item_scale,
                    float inv_scale_max, const float* qoff, const float* qstep, const float* qwin, int64_t kk,
                    int64_t S, int bits, int items, float* out_est, int32_t* out_ids, int32_t* overflow,
                    void* stream) {
  require(G >= 1 && G <= (int64_t(1) << 31) - 1, "adc_candidates: need 1 <= G < 2^31, got G=" + std::to_string(G));
  require(S >= 1 && S <= 65535, "adc_candidates: need 1 <= S <= 65535, got S=" + std::to_string(S));
  require(D == 8 || D == 16 || D == 32, "adc_candidates: D must be 8, 16 or 32, got " + std::to_string(D));
  require(bits == 8 || D == 32, "adc_candidates: 7-bit tables need D = 32");
  require(N >= 0 && N < (int64_t(1) << 31), "adc_candidates: need 0 <= N < 2^31 (ids are int32)");
  require(kk >= 1 && kk <= kMaxKK, "adc_candidates: kk must be in [1, " + std::to_string(kMaxKK) + "], got " +
                                       std::to_string(kk));
  require(bits == 8 || bits == 7, "adc_candidates: bits must be 8 or 7, got " + std::to_string(bits));
  require(items == 1 || items == 2 || items == 4, "adc_candidates: items must be 1, 2 or 4, got " +
                                                      std::to_string(items));
  require(lut && qoff && qstep && qwin && out_est && out_ids && overflow && (codes || N == 0),
          "adc_candidates: null pointer");
  require(aligned16(lut), "adc_candidates: lut must be 16-byte aligned");
  require((reinterpret_cast<uintptr_t>(codes) & 7u) == 0, "adc_candidates: codes must be 8-byte aligned");
  require(inv_scale_max > 0.f && std::isfinite(inv_scale_max),
          "adc_candidates: inv_scale_max must be finite and > 0");
  const size_t smem = adc_candidates_smem_bytes(D);
  require(smem > 0, "adc_candidates: the D = " + std::to_string(D) + " table and lists (" +
                        std::to_string(smem_bytes_for(D)) + " bytes) do not fit in this device's shared memory");
  check_cuda(cudaGetLastError(), "adc_candidates: pending CUDA error before launch");
  const int64_t per_split = std::max<int64_t>(1, ceil_div(N, S));
  const QueryParams qp{qoff, qstep, qwin, inv_scale_max, item_scale != nullptr};
  const dim3 grid(static_cast<unsigned>(G), static_cast<unsigned>(S));  // groups fastest: they share codes in L2
  cudaStream_t st = as_stream(stream);
  auto launch = [&](auto kernel) {
    allow_smem(kernel, smem, "adc_candidates: shared memory opt-in");
    kernel<<<grid, kThreadsC, smem, st>>>(static_cast<const uint4*>(lut), codes, N, item_scale, qp, int(kk),
                                          per_split, out_est, out_ids, overflow);
  };
  // Instantiated sparingly (each variant costs seconds of nvcc): D = 32 with 1, 2 or 4 items per
  // lane (8-bit) or 2 (7-bit); D = 8 and 16 with 2 (8-bit).
  if (bits == 7)
    launch(adc_candidates_kernel<4, 2, 2>);
  else if (D == 32)
    items == 1 ? launch(adc_candidates_kernel<4, 1, 1>)
               : items == 4 ? launch(adc_candidates_kernel<4, 1, 4>) : launch(adc_candidates_kernel<4, 1, 2>);
  else if (D == 16)
    launch(adc_candidates_kernel<2, 1, 2>);
  else
    launch(adc_candidates_kernel<1, 1, 2>);
  check_launch("adc_candidates");
}

size_t adc_threshold_smem_bytes(int64_t D) {
  if (D != 8 && D != 16 && D != 32) return 0;
  return smem_if_fits(static_cast<size_t>(D / 8) * 256 * 8 * 16 + 3 * kQ * sizeof(float));
}

void adc_threshold_scan(const void* lut, int64_t G, int64_t D, const uint8_t* codes, int64_t n0, int64_t N,
                        const float* item_scale, float inv_scale_max, const float* qoff, const float* qstep,
                        const float* thr, int64_t S, int64_t cap, int32_t* out_ids, int32_t* count, void* stream) {
  require(G >= 1 && G <= (int64_t(1) << 31) - 1, "adc_threshold_scan: need 1 <= G < 2^31");
  require(S >= 1 && S <= 65535, "adc_threshold_scan: need 1 <= S <= 65535, got S=" + std::to_string(S));
  require(D == 8 || D == 16 || D == 32, "adc_threshold_scan: D must be 8, 16 or 32, got " + std::to_string(D));
  require(n0 >= 0 && n0 <= N && N < (int64_t(1) << 31), "adc_threshold_scan: need 0 <= n0 <= N < 2^31");
  require(cap >= 1 && cap <= (int64_t(1) << 30), "adc_threshold_scan: cap must be in [1, 2^30]");
  require(lut && qoff && qstep && thr && out_ids && count && (codes || N == 0), "adc_threshold_scan: null pointer");
  require(aligned16(lut), "adc_threshold_scan: lut must be 16-byte aligned");
  require((reinterpret_cast<uintptr_t>(codes) & 7u) == 0, "adc_threshold_scan: codes must be 8-byte aligned");
  require(inv_scale_max > 0.f && std::isfinite(inv_scale_max),
          "adc_threshold_scan: inv_scale_max must be finite and > 0");
  const size_t smem = adc_threshold_smem_bytes(D);
  require(smem > 0, "adc_threshold_scan: the D = " + std::to_string(D) + " table does not fit in shared memory");
  check_cuda(cudaGetLastError(), "adc_threshold_scan: pending CUDA error before launch");
  const int64_t per_split = std::max<int64_t>(1, ceil_div(N - n0, S));
  const QueryParams qp{qoff, qstep, nullptr, inv_scale_max, item_scale != nullptr};
  const dim3 grid(static_cast<unsigned>(G), static_cast<unsigned>(S));
  cudaStream_t st = as_stream(stream);
  auto launch = [&](auto kernel) {
    allow_smem(kernel, smem, "adc_threshold_scan: shared memory opt-in");
    kernel<<<grid, kThreadsT, smem, st>>>(static_cast<const uint4*>(lut), codes, n0, N, item_scale, qp, thr,
                                          per_split, int(cap), out_ids, count);
  };
  if (D == 32)
    launch(adc_threshold_kernel<4>);
  else if (D == 16)
    launch(adc_threshold_kernel<2>);
  else
    launch(adc_threshold_kernel<1>);
  check_launch("adc_threshold_scan");
}

}  // namespace cuda
}  // namespace vqrec
