// CUDA ADC top-k: score every item of a code-composed catalogue against a batch of queries
// through per-query look-up tables, keeping only the best k per query. Items are never
// materialised: an item is its D code bytes (32 bytes at D = 32 instead of 600 for bf16 x 300).
//
// Layout and flow (one block = one group of 8 queries x one split of the items):
//  * The group's LUT (fp16 [D, K, 8], queries interleaved) is copied to shared memory: at
//    D = 32, K = 256 that is 128 KiB. One 16-byte shared load then yields the entry of all 8
//    queries for one (item, sub-space), so 8 scores cost 32 loads instead of 256.
//  * Each thread scores one item per step (codes read as 16-byte vectors, accumulated in fp32),
//    then compares each query's score with that query's current k-th best (the threshold) and
//    appends only hits to a per-query candidate buffer in shared memory, like faiss's
//    threshold-then-heap result handlers: after the first few thousand items almost nothing
//    passes, so top-k costs little more than the scan.
//  * When a buffer could overflow on the next step, warp q sorts query q's buffer (bitonic
//    sort, ties broken by smaller id so the result does not depend on arrival order), keeps the
//    best k and raises the threshold.
//  * Each block writes its k best per query; the host merges the S splits (a small top-k).
#include <cuda_fp16.h>

#include <cfloat>

#include "cuda/common.cuh"
#include "cuda/kernels.h"
#include "cuda/warp_sort.cuh"

namespace vqrec {
namespace cuda {
namespace {

constexpr int kQB = 8;         // queries per block (interleaved in one 16-byte LUT entry)
constexpr int kThreads = 256;  // items scored per step (8 warps: warp q owns query q's buffer)
constexpr int kCap = 512;      // candidate slots per query (power of two, for the bitonic sort)
constexpr int kMaxK = kCap - kThreads;  // after a compaction k entries remain + one full step
static_assert(kThreads / 32 == kQB, "one warp per query of the group");

__device__ __forceinline__ int64_t ceil_div_dev(int64_t a, int64_t b) { return (a + b - 1) / b; }

struct Cand {
  float* score;   // [kQB][kCap]
  int32_t* id;    // [kQB][kCap]
  int* count;     // [kQB]
  float* thresh;  // [kQB]
};

// Warp `lane`s sort the n entries of (s, id) best-first (warp_bitonic_sort; n must not exceed
// the buffer's power-of-two capacity) and keep the best k. Returns the number kept; `thresh`
// becomes the k-th score once k are kept (else -FLT_MAX). Every lane returns the same values.
__device__ int warp_sort_keep_buf(float* s, int32_t* id, int n, int k, int lane, float& thresh) {
  warp_bitonic_sort(s, id, n, lane);
  const int kept = min(n, k);
  thresh = kept == k ? s[k - 1] : -FLT_MAX;
  __syncwarp();
  return kept;
}

// The block-shared buffer of query q (see adc_topk_kernel), sorted by warp `lane`s.
__device__ void warp_sort_keep(Cand c, int q, int k, int lane) {
  float thresh;
  const int kept = warp_sort_keep_buf(c.score + q * kCap, c.id + q * kCap, c.count[q], k, lane, thresh);
  if (lane == 0) {
    c.count[q] = kept;
    c.thresh[q] = thresh;
  }
  __syncwarp();
}

// Scores one item for the 8 queries of the group: acc[q] = sum_d LUT_s[d, code_d].q
struct Scorer {
  const uint4* lut_s;
  int K;
  __device__ __forceinline__ void add(float (&acc)[kQB], int d, int code) const {
    const uint4 e = lut_s[d * K + code];
    const __half2* h = reinterpret_cast<const __half2*>(&e);
#pragma unroll
    for (int p = 0; p < 4; ++p) {
      const float2 f = __half22float2(h[p]);
      acc[2 * p] += f.x;
      acc[2 * p + 1] += f.y;
    }
  }
  // 16 codes packed in one uint4 (byte j of the 16 = sub-space d0 + j).
  // HALF: the 16 entries are summed in fp16 pairs (4 HADD2 per sub-space for the 8 queries
  // instead of 8 conversions and 8 fp32 adds) and converted once per 16 sub-spaces. The extra
  // rounding (<= 15 * 2^-11 of the partial sums) only perturbs candidate selection: callers
  // wanting exact scores re-score the candidates in fp32 (vqrec_fast.score_topk does).
  template <bool HALF>
  __device__ __forceinline__ void add16(float (&acc)[kQB], int d0, uint4 v) const {
    const uint32_t w[4] = {v.x, v.y, v.z, v.w};
    if constexpr (!HALF) {
#pragma unroll
      for (int j = 0; j < 16; ++j) add(acc, d0 + j, (w[j >> 2] >> (8 * (j & 3))) & 0xff);
    } else {
      add16_half(acc, d0, w);
    }
  }
  __device__ __forceinline__ void add16_half(float (&acc)[kQB], int d0, const uint32_t (&w)[4]) const {
    __half2 part[4];
#pragma unroll
    for (int p = 0; p < 4; ++p) part[p] = __float2half2_rn(0.f);
#pragma unroll
    for (int j = 0; j < 16; ++j) {
      const uint4 e = lut_s[(d0 + j) * K + ((w[j >> 2] >> (8 * (j & 3))) & 0xff)];
      const __half2* h = reinterpret_cast<const __half2*>(&e);
#pragma unroll
      for (int p = 0; p < 4; ++p) part[p] = __hadd2(part[p], h[p]);
    }
#pragma unroll
    for (int p = 0; p < 4; ++p) {
      const float2 f = __half22float2(part[p]);
      acc[2 * p] += f.x;
      acc[2 * p + 1] += f.y;
    }
  }
};

// NV > 0: D == 16 * NV, rows read as NV 16-byte vectors, and the next step's codes are loaded
// into registers before the current item is scored, hiding global-memory latency (only 8 warps
// fit per SM next to a 128 KiB LUT). NV == 0: any D, byte loads.
template <int NV, bool HALF>
__global__ void __launch_bounds__(kThreads, 1)
    adc_topk_kernel(const uint4* __restrict__ lut, int D, int K, const uint8_t* __restrict__ codes, int64_t N,
                    const float* __restrict__ item_scale, int k, int64_t per_split, float* __restrict__ out_scores,
                    int32_t* __restrict__ out_ids) {
  extern __shared__ uint4 smem[];
  const int S = gridDim.x, s = blockIdx.x, g = blockIdx.y;
  uint4* lut_s = smem;  // [D*K]
  Cand c;
  c.score = reinterpret_cast<float*>(lut_s + D * K);
  c.id = reinterpret_cast<int32_t*>(c.score + kQB * kCap);
  c.count = reinterpret_cast<int*>(c.id + kQB * kCap);
  c.thresh = reinterpret_cast<float*>(c.count + kQB);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;

  const uint4* lut_g = lut + static_cast<int64_t>(g) * D * K;
  for (int i = tid; i < D * K; i += kThreads) lut_s[i] = lut_g[i];
  if (tid < kQB) {
    c.count[tid] = 0;
    c.thresh[tid] = -FLT_MAX;
  }
  __syncthreads();
  const Scorer sc{lut_s, K};

  const int64_t begin = static_cast<int64_t>(s) * per_split;
  const int64_t end = min(N, begin + per_split);
  constexpr int NVR = NV > 0 ? NV : 1;
  uint4 next[NVR];
  if (NV > 0 && begin + tid < end) {
#pragma unroll
    for (int v = 0; v < NVR; ++v) next[v] = __ldg(reinterpret_cast<const uint4*>(codes + (begin + tid) * D) + v);
  }
  int full = 0;
  for (int64_t base = begin; base < end; base += kThreads) {
    const int64_t n = base + tid;
    if (n < end) {
      float acc[kQB];
#pragma unroll
      for (int q = 0; q < kQB; ++q) acc[q] = 0.f;
      if (NV > 0) {
        uint4 cur[NVR];
#pragma unroll
        for (int v = 0; v < NVR; ++v) cur[v] = next[v];
        if (n + kThreads < end) {
#pragma unroll
          for (int v = 0; v < NVR; ++v)
            next[v] = __ldg(reinterpret_cast<const uint4*>(codes + (n + kThreads) * D) + v);
        }
#pragma unroll
        for (int v = 0; v < NVR; ++v) sc.add16<HALF>(acc, 16 * v, cur[v]);
      } else {
        const uint8_t* row = codes + n * D;
        for (int d = 0; d < D; ++d) sc.add(acc, d, __ldg(row + d));
      }
      const float scale = item_scale ? __ldg(item_scale + n) : 1.f;
#pragma unroll
      for (int q = 0; q < kQB; ++q) {
        const float v = acc[q] * scale;
        if (v > c.thresh[q]) {  // NaN never passes
          const int pos = atomicAdd(c.count + q, 1);
          c.score[q * kCap + pos] = v;
          c.id[q * kCap + pos] = static_cast<int32_t>(n);
          // The buffer's final count exceeds kCap - kThreads iff some append landed there.
          full |= pos >= kCap - kThreads;
        }
      }
    }
    // One barrier per step; the compaction (and its second barrier) only when a buffer could
    // overflow on the next step. Warp q owns query q's buffer.
    if (__syncthreads_or(full)) {
      if (warp < kQB && c.count[warp] + kThreads > kCap) warp_sort_keep(c, warp, k, lane);
      __syncthreads();
    }
    full = 0;
  }
  if (warp < kQB) {
    warp_sort_keep(c, warp, k, lane);
    const int64_t q_global = static_cast<int64_t>(g) * kQB + warp;
    float* os = out_scores + (q_global * S + s) * k;
    int32_t* oi = out_ids + (q_global * S + s) * k;
    const int kept = c.count[warp];
    for (int i = lane; i < k; i += 32) {
      const bool real = i < kept;
      os[i] = real ? c.score[warp * kCap + i] : -INFINITY;
      oi[i] = real ? c.id[warp * kCap + i] : -1;
    }
  }
}

// Barrier-free variant for k <= kWarpMaxK: each warp scans its own share of the block's items
// (32 per step, one per lane) and owns one candidate buffer per query, appended to through
// ballots (no shared atomics) and compacted by the warp alone, so warps never wait for each
// other (Nsight Compute put half of adc_topk_kernel's stall cycles at its per-step barrier).
// Each warp writes its own best k per query as a separate split: out_* hold S * kWarps splits.
constexpr int kWarps = kThreads / 32;
constexpr int kWarpCap = 128;                   // per warp and query (power of two)
constexpr int kWarpMaxK = kWarpCap - 32;        // after a compaction k entries remain + one step

template <int NV, bool HALF>
__global__ void __launch_bounds__(kThreads, 1)
    adc_topk_warp_kernel(const uint4* __restrict__ lut, int D, int K, const uint8_t* __restrict__ codes, int64_t N,
                         const float* __restrict__ item_scale, int k, int64_t per_split,
                         float* __restrict__ out_scores, int32_t* __restrict__ out_ids) {
  extern __shared__ uint4 smem[];
  const int S = gridDim.x, s = blockIdx.x, g = blockIdx.y;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  uint4* lut_s = smem;  // [D*K]
  float* all_scores = reinterpret_cast<float*>(lut_s + D * K);                      // [kWarps][kQB][kWarpCap]
  int32_t* all_ids = reinterpret_cast<int32_t*>(all_scores + kWarps * kQB * kWarpCap);  // same shape
  float* wscore = all_scores + warp * kQB * kWarpCap;
  int32_t* wid = all_ids + warp * kQB * kWarpCap;

  const uint4* lut_g = lut + static_cast<int64_t>(g) * D * K;
  for (int i = tid; i < D * K; i += kThreads) lut_s[i] = lut_g[i];
  __syncthreads();  // the only block barrier
  const Scorer sc{lut_s, K};

  const int64_t begin = static_cast<int64_t>(s) * per_split;
  const int64_t end = min(N, begin + per_split);
  const int64_t span = end > begin ? end - begin : 0;
  const int64_t per_warp = ceil_div_dev(span, kWarps);
  const int64_t wb = begin + min(span, warp * per_warp);
  const int64_t we = begin + min(span, (warp + 1) * per_warp);

  int count[kQB];
  float thresh[kQB];
#pragma unroll
  for (int q = 0; q < kQB; ++q) {
    count[q] = 0;
    thresh[q] = -FLT_MAX;
  }
  constexpr int NVR = NV > 0 ? NV : 1;
  uint4 next[NVR];
  if (NV > 0 && wb + lane < we) {
#pragma unroll
    for (int v = 0; v < NVR; ++v) next[v] = __ldg(reinterpret_cast<const uint4*>(codes + (wb + lane) * D) + v);
  }
  const unsigned below = (1u << lane) - 1u;
  for (int64_t base = wb; base < we; base += 32) {
    const int64_t n = base + lane;
    const bool valid = n < we;
    float acc[kQB];
#pragma unroll
    for (int q = 0; q < kQB; ++q) acc[q] = 0.f;
    if (valid) {
      if (NV > 0) {
        uint4 cur[NVR];
#pragma unroll
        for (int v = 0; v < NVR; ++v) cur[v] = next[v];
        if (n + 32 < we) {
#pragma unroll
          for (int v = 0; v < NVR; ++v) next[v] = __ldg(reinterpret_cast<const uint4*>(codes + (n + 32) * D) + v);
        }
#pragma unroll
        for (int v = 0; v < NVR; ++v) sc.add16<HALF>(acc, 16 * v, cur[v]);
      } else {
        const uint8_t* row = codes + n * D;
        for (int d = 0; d < D; ++d) sc.add(acc, d, __ldg(row + d));
      }
    }
    const float scale = valid && item_scale ? __ldg(item_scale + n) : 1.f;
#pragma unroll
    for (int q = 0; q < kQB; ++q) {
      const float v = acc[q] * scale;
      const bool hit = valid && v > thresh[q];  // NaN never passes
      const unsigned mask = __ballot_sync(0xffffffffu, hit);
      if (mask) {  // warp-uniform
        if (hit) {
          const int pos = count[q] + __popc(mask & below);
          wscore[q * kWarpCap + pos] = v;
          wid[q * kWarpCap + pos] = static_cast<int32_t>(n);
        }
        count[q] += __popc(mask);
        if (count[q] > kWarpCap - 32)
          count[q] = warp_sort_keep_buf(wscore + q * kWarpCap, wid + q * kWarpCap, count[q], k, lane, thresh[q]);
      }
    }
  }
#pragma unroll  // constant indices keep count[] and thresh[] in registers
  for (int q = 0; q < kQB; ++q) {
    float t;
    const int kept = warp_sort_keep_buf(wscore + q * kWarpCap, wid + q * kWarpCap, count[q], k, lane, t);
    const int64_t q_global = static_cast<int64_t>(g) * kQB + q;
    const int64_t split = static_cast<int64_t>(s) * kWarps + warp;
    float* os = out_scores + (q_global * S * kWarps + split) * k;
    int32_t* oi = out_ids + (q_global * S * kWarps + split) * k;
    for (int i = lane; i < k; i += 32) {
      const bool real = i < kept;
      os[i] = real ? wscore[q * kWarpCap + i] : -INFINITY;
      oi[i] = real ? wid[q * kWarpCap + i] : -1;
    }
  }
}

}  // namespace

size_t adc_topk_smem_bytes(int64_t D, int64_t K) {
  return smem_if_fits(static_cast<size_t>(D * K) * sizeof(uint4) + kQB * kCap * (sizeof(float) + sizeof(int32_t)) +
                      2 * kQB * sizeof(int));
}

namespace {
size_t warp_kernel_smem_bytes(int64_t D, int64_t K) {
  return smem_if_fits(static_cast<size_t>(D * K) * sizeof(uint4) +
                      static_cast<size_t>(kWarps) * kQB * kWarpCap * (sizeof(float) + sizeof(int32_t)));
}
bool use_warp_kernel(int64_t D, int64_t K, int64_t k) { return k <= kWarpMaxK && warp_kernel_smem_bytes(D, K) > 0; }
}  // namespace

int64_t adc_topk_out_splits(int64_t D, int64_t K, int64_t k, int64_t S) {
  return use_warp_kernel(D, K, k) ? S * kWarps : S;
}

void adc_topk(const void* lut, int64_t G, int64_t D, int64_t K, const uint8_t* codes, int64_t N,
              const float* item_scale, int64_t k, int64_t S, float* out_scores, int32_t* out_ids, bool half_sums,
              void* stream) {
  require(G >= 1 && D >= 1 && K >= 1 && K <= 256 && N >= 0 && S >= 1,
          "adc_topk: need G, D, S >= 1 and 1 <= K <= 256 (got G=" + std::to_string(G) + ", D=" + std::to_string(D) +
              ", K=" + std::to_string(K) + ", S=" + std::to_string(S) + ")");
  require(k >= 1 && k <= kMaxK, "adc_topk: k must be in [1, " + std::to_string(kMaxK) + "], got " + std::to_string(k));
  require(N < (int64_t(1) << 31), "adc_topk: N must be < 2^31 (ids are int32)");
  require(G <= 65535 && S <= (int64_t(1) << 31) - 1, "adc_topk: too many query groups (G <= 65535)");
  require(lut && out_scores && out_ids && (codes || N == 0), "adc_topk: null pointer");
  check_cuda(cudaGetLastError(), "adc_topk: pending CUDA error before launch");
  const size_t smem = adc_topk_smem_bytes(D, K);
  require(smem > 0, "adc_topk: D*K = " + std::to_string(D * K) +
                        " LUT entries do not fit in this device's shared memory (need D*K*16 bytes + 41 KiB)");
  require(aligned16(lut), "adc_topk: lut must be 16-byte aligned");
  const int64_t per_split = std::max<int64_t>(1, ceil_div(N, S));
  cudaStream_t st = as_stream(stream);
  const dim3 grid(static_cast<unsigned>(S), static_cast<unsigned>(G));
  const bool warp_owned = use_warp_kernel(D, K, k);
  const size_t launch_smem = warp_owned ? warp_kernel_smem_bytes(D, K) : smem;
  with_code_vectors(D, codes, [&](auto nv) {
    constexpr int V = decltype(nv)::value;
    const auto kernel = warp_owned ? (half_sums ? adc_topk_warp_kernel<V, true> : adc_topk_warp_kernel<V, false>)
                                   : (half_sums ? adc_topk_kernel<V, true> : adc_topk_kernel<V, false>);
    allow_smem(kernel, launch_smem, "adc_topk: shared memory opt-in");
    kernel<<<grid, kThreads, launch_smem, st>>>(static_cast<const uint4*>(lut), int(D), int(K), codes, N, item_scale,
                                                int(k), per_split, out_scores, out_ids);
  });
  check_launch("adc_topk");
}

}  // namespace cuda
}  // namespace vqrec
