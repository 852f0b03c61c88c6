// CUDA forward of the fused code-composed softmax cross-entropy: the log-sum-exp over every
// item of logits l[b, n] = scale[n] * sum_d LUT[b, d, codes[n, d]], computed by an ADC scan
// with an online (max, sum of exp) per query, so neither the N x H item matrix nor the B x N
// logits ever exist (the target logits and the backward are handled by the Python side).
//
// One block = 4 queries x one split of the items. The 4 queries' fp32 LUTs are interleaved
// ([D, K] float4, 128 KiB at D = 32, K = 256) in shared memory so that one 16-byte load serves
// all 4; fp32 rather than fp16 because logits are divided by a small temperature. Each thread
// keeps its own running (max, sum) per query; warps and then the block merge them.
#include <algorithm>
#include <cfloat>

#include "cuda/common.cuh"
#include "cuda/kernels.h"

namespace vqrec {
namespace cuda {
namespace {

constexpr int kQ = 4;          // queries per block
constexpr int kThreads = 256;  // 8 warps

// (m, s) represents sum_i exp(x_i) = s * exp(m); m = -inf means an empty sum.
__device__ __forceinline__ void lse_merge(float& m, float& s, float m2, float s2) {
  const float M = fmaxf(m, m2);
  if (M == -INFINITY) return;
  s = (m == -INFINITY ? 0.f : s * __expf(m - M)) + (m2 == -INFINITY ? 0.f : s2 * __expf(m2 - M));
  m = M;
}

__device__ __forceinline__ void lse_add(float& m, float& s, float x) {
  if (x > m) {
    s = (m == -INFINITY ? 0.f : s * __expf(m - x)) + 1.f;
    m = x;
  } else {
    s += __expf(x - m);
  }
}

__device__ __forceinline__ void add_entry(float (&acc)[kQ], const float4* lut_s, int K, int d, int code) {
  const float4 e = lut_s[d * K + code];
  acc[0] += e.x;
  acc[1] += e.y;
  acc[2] += e.z;
  acc[3] += e.w;
}

// acc[q] = sum_d LUT_s[d, codes[n, d]].q for the block's 4 queries.
// NV > 0: D == 16 * NV, codes read as 16-byte vectors; NV == 0: any D, byte loads.
template <int NV>
__device__ __forceinline__ void score_item(float (&acc)[kQ], const float4* lut_s, int D, int K,
                                           const uint8_t* __restrict__ codes, int64_t n) {
#pragma unroll
  for (int q = 0; q < kQ; ++q) acc[q] = 0.f;
  if (NV > 0) {
#pragma unroll
    for (int v = 0; v < (NV > 0 ? NV : 1); ++v) {
      const uint4 x = __ldg(reinterpret_cast<const uint4*>(codes + n * D) + v);
      const uint32_t w[4] = {x.x, x.y, x.z, x.w};
#pragma unroll
      for (int j = 0; j < 16; ++j) add_entry(acc, lut_s, K, 16 * v + j, (w[j >> 2] >> (8 * (j & 3))) & 0xff);
    }
  } else {
    for (int d = 0; d < D; ++d) add_entry(acc, lut_s, K, d, __ldg(codes + n * D + d));
  }
}

template <int NV>
__global__ void __launch_bounds__(kThreads, 1)
    ce_lse_kernel(const float4* __restrict__ lut, int D, int K, const uint8_t* __restrict__ codes, int64_t N,
                  const float* __restrict__ item_scale, int64_t per_split, float* __restrict__ part_m,
                  float* __restrict__ part_s) {
  extern __shared__ float4 lut_s[];  // [D*K], then kQ x 8 warps of (m, s) pairs
  const int S = gridDim.x, sp = blockIdx.x, g = blockIdx.y;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const float4* lut_g = lut + static_cast<int64_t>(g) * D * K;
  for (int i = tid; i < D * K; i += kThreads) lut_s[i] = lut_g[i];
  __syncthreads();

  float m[kQ], s[kQ];
#pragma unroll
  for (int q = 0; q < kQ; ++q) {
    m[q] = -INFINITY;
    s[q] = 0.f;
  }
  const int64_t begin = static_cast<int64_t>(sp) * per_split;
  const int64_t end = min(N, begin + per_split);
  for (int64_t n = begin + tid; n < end; n += kThreads) {
    float acc[kQ];
    score_item<NV>(acc, lut_s, D, K, codes, n);
    const float sc = item_scale ? __ldg(item_scale + n) : 1.f;
#pragma unroll
    for (int q = 0; q < kQ; ++q) lse_add(m[q], s[q], acc[q] * sc);
  }
  // Merge across the warp, then across the 8 warps through shared memory (fixed order).
#pragma unroll
  for (int q = 0; q < kQ; ++q) {
    for (int off = 16; off > 0; off >>= 1) {
      const float m2 = __shfl_down_sync(0xffffffffu, m[q], off);
      const float s2 = __shfl_down_sync(0xffffffffu, s[q], off);
      lse_merge(m[q], s[q], m2, s2);
    }
  }
  __syncthreads();  // done with the LUT: reuse the front of shared memory for the pairs
  float* pairs = reinterpret_cast<float*>(lut_s);  // [kQ][8 warps][2]
  if (lane == 0) {
#pragma unroll
    for (int q = 0; q < kQ; ++q) {
      pairs[(q * 8 + warp) * 2] = m[q];
      pairs[(q * 8 + warp) * 2 + 1] = s[q];
    }
  }
  __syncthreads();
  if (tid < kQ) {
    float M = -INFINITY, Ssum = 0.f;
    for (int w = 0; w < kThreads / 32; ++w) lse_merge(M, Ssum, pairs[(tid * 8 + w) * 2], pairs[(tid * 8 + w) * 2 + 1]);
    const int64_t qg = static_cast<int64_t>(g) * kQ + tid;
    part_m[qg * S + sp] = M;
    part_s[qg * S + sp] = Ssum;
  }
}

// Backward block of probabilities: out[b, n] = exp(l[b, n] - lse[b]) * wgt[b] for the items of a
// chunk, written row-major with row stride C (the chunk's item count); rows b >= B are skipped.
// Same LUT layout and scan as ce_lse_kernel; each thread scores one item for the 4 queries and
// writes 4 coalesced values (consecutive threads = consecutive items).
template <int NV>
__global__ void __launch_bounds__(kThreads, 1)
    ce_probs_kernel(const float4* __restrict__ lut, int D, int K, const uint8_t* __restrict__ codes, int64_t C,
                    const float* __restrict__ item_scale, const float* __restrict__ lse,
                    const float* __restrict__ wgt, int64_t B, int64_t per_split, float* __restrict__ out) {
  extern __shared__ float4 lut_s[];
  const int sp = blockIdx.x, g = blockIdx.y;
  const int tid = threadIdx.x;
  const float4* lut_g = lut + static_cast<int64_t>(g) * D * K;
  for (int i = tid; i < D * K; i += kThreads) lut_s[i] = lut_g[i];
  __syncthreads();
  float l0[kQ], w[kQ];
#pragma unroll
  for (int q = 0; q < kQ; ++q) {
    const int64_t b = static_cast<int64_t>(g) * kQ + q;
    l0[q] = b < B ? lse[b] : 0.f;
    w[q] = b < B ? wgt[b] : 0.f;
  }
  const int64_t begin = static_cast<int64_t>(sp) * per_split;
  const int64_t end = min(C, begin + per_split);
  for (int64_t n = begin + tid; n < end; n += kThreads) {
    float acc[kQ];
    score_item<NV>(acc, lut_s, D, K, codes, n);
    const float sc = item_scale ? __ldg(item_scale + n) : 1.f;
#pragma unroll
    for (int q = 0; q < kQ; ++q) {
      const int64_t b = static_cast<int64_t>(g) * kQ + q;
      if (b < B) out[b * C + n] = __expf(acc[q] * sc - l0[q]) * w[q];
    }
  }
}

}  // namespace

size_t softmax_ce_lse_smem_bytes(int64_t D, int64_t K) {
  // The block reuses the LUT's space for its kQ x 8 warps (m, s) pairs at the end.
  return smem_if_fits(std::max<size_t>(static_cast<size_t>(D * K) * sizeof(float4), kQ * 8 * 2 * sizeof(float)));
}

namespace {

// Checks shared by the two scans over N items with G groups of 4 queries; returns the launch's
// shared memory bytes.
size_t check_scan(const char* what, const float* lut, int64_t G, int64_t D, int64_t K, const uint8_t* codes,
                  int64_t N, int64_t S) {
  const std::string w(what);
  require(G >= 1 && D >= 1 && K >= 1 && K <= 256 && N >= 0 && S >= 1,
          w + ": need G, D, S >= 1 and 1 <= K <= 256 (got G=" + std::to_string(G) + ", D=" + std::to_string(D) +
              ", K=" + std::to_string(K) + ", S=" + std::to_string(S) + ")");
  require(G <= 65535, w + ": too many query groups (B <= 262140)");
  require(lut && (codes || N == 0), w + ": null pointer");
  require(aligned16(lut), w + ": lut must be 16-byte aligned");
  const size_t smem = softmax_ce_lse_smem_bytes(D, K);
  require(smem > 0, w + ": D*K = " + std::to_string(D * K) +
                        " fp32 LUT entries x 4 queries do not fit in this device's shared memory");
  return smem;
}

// Launches kernel_of(NV) over grid (S, G) with per_split = ceil(N / S) items per block.
template <typename KernelOf, typename... Args>
void launch_scan(const char* what, KernelOf kernel_of, size_t smem, int64_t G, int64_t D, const uint8_t* codes,
                 int64_t S, void* stream, Args... args) {
  const dim3 grid(static_cast<unsigned>(S), static_cast<unsigned>(G));
  with_code_vectors(D, codes, [&](auto nv) {
    const auto kernel = kernel_of(nv);
    allow_smem(kernel, smem, what);
    kernel<<<grid, kThreads, smem, as_stream(stream)>>>(args...);
  });
  check_launch(what);
}

}  // namespace

void softmax_ce_lse(const float* lut, int64_t G, int64_t D, int64_t K, const uint8_t* codes, int64_t N,
                    const float* item_scale, int64_t S, float* part_m, float* part_s, void* stream) {
  const size_t smem = check_scan("softmax_ce_lse", lut, G, D, K, codes, N, S);
  require(part_m && part_s, "softmax_ce_lse: null pointer");
  const int64_t per_split = std::max<int64_t>(1, ceil_div(N, S));
  launch_scan(
      "softmax_ce_lse", [](auto nv) { return ce_lse_kernel<decltype(nv)::value>; }, smem, G, D, codes, S, stream,
      static_cast<const float4*>(static_cast<const void*>(lut)), int(D), int(K), codes, N, item_scale, per_split,
      part_m, part_s);
}

void softmax_ce_probs(const float* lut, int64_t G, int64_t D, int64_t K, const uint8_t* codes, int64_t C,
                      const float* item_scale, const float* lse, const float* wgt, int64_t B, int64_t S, float* out,
                      void* stream) {
  const size_t smem = check_scan("softmax_ce_probs", lut, G, D, K, codes, C, S);
  require(B >= 0 && B <= G * kQ, "softmax_ce_probs: need 0 <= B <= 4 G (got B=" + std::to_string(B) + ")");
  require(lse && wgt && (out || B * C == 0), "softmax_ce_probs: null pointer");
  if (C == 0 || B == 0) return;
  const int64_t per_split = std::max<int64_t>(1, ceil_div(C, S));
  launch_scan(
      "softmax_ce_probs", [](auto nv) { return ce_probs_kernel<decltype(nv)::value>; }, smem, G, D, codes, S,
      stream, static_cast<const float4*>(static_cast<const void*>(lut)), int(D), int(K), codes, C, item_scale, lse,
      wgt, B, per_split, out);
}

}  // namespace cuda
}  // namespace vqrec
