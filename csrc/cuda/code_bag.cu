// CUDA code bag: forward gather-mean and a deterministic backward (sort + segment sum).
//
// Forward: one warp per output row. The warp reads the row's D codes once per chunk of H
// (lane j holds code j, broadcast with shuffles) and sums the D code rows of W, which at the
// training shape (32 x 256 x 300 floats = 9.8 MB) stays resident in L2.
//
// Backward: each sub-space has only K = 256 rows and every item touches one of them, so atomics
// on grad_W would be heavily contended and their summation order would vary from run to run.
// Instead: key (d, code) for every (row, d) pair, stable radix sort (CUB), find each key's
// segment, and let one block per (d, k) row add its grad_out rows in increasing row order.
// Same inputs -> bit-identical grad_W.
#include <cub/device/device_radix_sort.cuh>

#include <algorithm>

#include "cuda/common.cuh"
#include "cuda/kernels.h"

namespace vqrec {
namespace cuda {
namespace {

constexpr int kWarpsPerBlock = 4;

template <int VEC>
struct VecT;
template <>
struct VecT<1> {
  using T = float;
  __device__ static void add(T& a, const T& b) { a += b; }
  __device__ static T zero() { return 0.f; }
  __device__ static T scale(T a, float s) { return a * s; }
};
template <>
struct VecT<4> {
  using T = float4;
  __device__ static void add(T& a, const T& b) {
    a.x += b.x;
    a.y += b.y;
    a.z += b.z;
    a.w += b.w;
  }
  __device__ static T zero() { return make_float4(0.f, 0.f, 0.f, 0.f); }
  __device__ static T scale(T a, float s) { return make_float4(a.x * s, a.y * s, a.z * s, a.w * s); }
};

// Source code row of output row r, or -1 for a zero row (padding id 0 or an id outside [0, I)).
__device__ __forceinline__ int64_t source_row(const int64_t* row_of, int64_t r, int64_t I) {
  if (row_of == nullptr) return r;
  const int64_t s = row_of[r];
  return (s <= 0 || s >= I) ? -1 : s;
}

template <int VEC>
__global__ void bag_forward_kernel(const float* __restrict__ W, int D, int K, int H, const void* __restrict__ codes,
                                   int code_type, int64_t I, const int64_t* __restrict__ row_of, int64_t R,
                                   float inv_d, float* __restrict__ out) {
  using V = VecT<VEC>;
  using T = typename V::T;
  const int lane = threadIdx.x & 31;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  if (r >= R) return;
  const int64_t src = source_row(row_of, r, I);
  const int HV = H / VEC;  // H is a multiple of VEC
  T* out_row = reinterpret_cast<T*>(out + r * H);
  const T* Wv = reinterpret_cast<const T*>(W);
  // Every lane runs every chunk (the shuffles need the whole warp); lanes past H only idle.
  for (int h0 = 0; h0 < HV; h0 += 32) {
    const int h = h0 + lane;
    const bool active = h < HV;
    T acc = V::zero();
    if (src >= 0) {
      for (int d0 = 0; d0 < D; d0 += 32) {
        const int dn = min(32, D - d0);
        const int mine = lane < dn ? load_code(codes, code_type, src * D + d0 + lane) : 0;
        for (int j = 0; j < dn; ++j) {
          const int c = __shfl_sync(0xffffffffu, mine, j);
          // Out-of-range codes (never produced by validated inputs) contribute nothing
          // instead of reading outside W.
          if (active && c >= 0 && c < K) V::add(acc, __ldg(Wv + (static_cast<int64_t>(d0 + j) * K + c) * HV + h));
        }
      }
    }
    if (active) out_row[h] = V::scale(acc, inv_d);
  }
}

// One (key, value) pair per (row, d): key = d*K + code (D*K for rows that contribute nothing),
// value = row. Pairs are laid out row-major, so a stable sort keeps rows increasing per key.
__global__ void make_keys_kernel(const void* __restrict__ codes, int code_type, int64_t I,
                                 const int64_t* __restrict__ row_of, int64_t R, int D, int K,
                                 uint32_t* __restrict__ keys, int32_t* __restrict__ vals) {
  const int64_t total = R * D;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / D;
    const int d = static_cast<int>(i - r * D);
    const int64_t src = source_row(row_of, r, I);
    uint32_t key = static_cast<uint32_t>(D) * K;
    if (src >= 0) {
      const int c = load_code(codes, code_type, src * D + d);
      if (c >= 0 && c < K) key = static_cast<uint32_t>(d) * K + c;
    }
    keys[i] = key;
    vals[i] = static_cast<int32_t>(r);
  }
}

// Segment [start[key], end[key]) of each key in the sorted array (untouched keys stay [0, 0)).
__global__ void segment_bounds_kernel(const uint32_t* __restrict__ keys, int64_t n, uint32_t num_keys,
                                      int32_t* __restrict__ start, int32_t* __restrict__ end) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint32_t k = keys[i];
    if (k >= num_keys) continue;
    if (i == 0 || keys[i - 1] != k) start[k] = static_cast<int32_t>(i);
    if (i == n - 1 || keys[i + 1] != k) end[k] = static_cast<int32_t>(i + 1);
  }
}

// grad_W row (d, k) = inv_d * sum over its segment, in sorted (= increasing row) order.
template <int VEC>
__global__ void segment_sum_kernel(const float* __restrict__ grad_out, int H, const int32_t* __restrict__ rows,
                                   const int32_t* __restrict__ start, const int32_t* __restrict__ end, float inv_d,
                                   float* __restrict__ grad_W) {
  using V = VecT<VEC>;
  using T = typename V::T;
  const int key = blockIdx.x;
  const int HV = H / VEC;
  const int b = start[key], e = end[key];
  const T* g = reinterpret_cast<const T*>(grad_out);
  T* dst = reinterpret_cast<T*>(grad_W) + static_cast<int64_t>(key) * HV;
  for (int h = threadIdx.x; h < HV; h += blockDim.x) {
    // Four interleaved partial sums keep four row loads in flight (a popular row's segment can
    // hold thousands of rows); the combination order is fixed, so the result stays deterministic.
    T acc[4] = {V::zero(), V::zero(), V::zero(), V::zero()};
    int j = b;
    for (; j + 4 <= e; j += 4) {
#pragma unroll
      for (int u = 0; u < 4; ++u) V::add(acc[u], __ldg(g + static_cast<int64_t>(rows[j + u]) * HV + h));
    }
    for (; j < e; ++j) V::add(acc[0], __ldg(g + static_cast<int64_t>(rows[j]) * HV + h));
    V::add(acc[0], acc[1]);
    V::add(acc[2], acc[3]);
    V::add(acc[0], acc[2]);
    dst[h] = V::scale(acc[0], inv_d);
  }
}

void check_shapes(const char* what, int64_t D, int64_t K, int64_t H, int code_type, int64_t I, int64_t R) {
  require(D >= 1 && K >= 1 && H >= 0 && I >= 0 && R >= 0,
          std::string(what) + ": need D >= 1, K >= 1 and non-negative H, I, R (got D=" + std::to_string(D) +
              ", K=" + std::to_string(K) + ", H=" + std::to_string(H) + ", I=" + std::to_string(I) +
              ", R=" + std::to_string(R) + ")");
  require(code_type == 0 || code_type == 1, std::string(what) + ": code_type must be 0 (uint8) or 1 (int32)");
  require(H < (int64_t(1) << 31) && D < (int64_t(1) << 31), std::string(what) + ": H and D must fit in int32");
}

// Workspace layout: keys_in, keys_out (uint32 [R*D]), vals_in, vals_out (int32 [R*D]),
// start, end (int32 [D*K]), then CUB's temporary storage. Each piece 256-byte aligned.
struct Workspace {
  uint32_t *keys_in, *keys_out;
  int32_t *vals_in, *vals_out, *start, *end;
  void* temp;
  size_t temp_bytes;
  size_t total;
};

size_t align256(size_t x) { return (x + 255) & ~size_t(255); }

size_t cub_temp_bytes(int64_t n) {
  size_t bytes = 0;
  check_cuda(cub::DeviceRadixSort::SortPairs(nullptr, bytes, static_cast<const uint32_t*>(nullptr),
                                             static_cast<uint32_t*>(nullptr), static_cast<const int32_t*>(nullptr),
                                             static_cast<int32_t*>(nullptr), static_cast<int>(n)),
             "cub::DeviceRadixSort::SortPairs (size query)");
  return bytes;
}

Workspace carve(void* base, int64_t R, int64_t D, int64_t K) {
  const size_t n = static_cast<size_t>(R * D);
  Workspace w{};
  char* p = static_cast<char*>(base);
  size_t off = 0;
  auto take = [&](size_t bytes) {
    char* q = p ? p + off : nullptr;
    off += align256(bytes);
    return q;
  };
  w.keys_in = reinterpret_cast<uint32_t*>(take(n * 4));
  w.keys_out = reinterpret_cast<uint32_t*>(take(n * 4));
  w.vals_in = reinterpret_cast<int32_t*>(take(n * 4));
  w.vals_out = reinterpret_cast<int32_t*>(take(n * 4));
  w.start = reinterpret_cast<int32_t*>(take(static_cast<size_t>(D * K) * 4));
  w.end = reinterpret_cast<int32_t*>(take(static_cast<size_t>(D * K) * 4));
  w.temp_bytes = std::max<size_t>(cub_temp_bytes(static_cast<int64_t>(n)), 1);
  w.temp = take(w.temp_bytes);
  w.total = off;
  return w;
}

int grid_for(int64_t n, int threads) { return static_cast<int>(std::min<int64_t>(ceil_div(n, threads), 65535 * 8)); }

}  // namespace

void code_bag_forward(const float* W, int64_t D, int64_t K, int64_t H, const void* codes, int code_type, int64_t I,
                      const int64_t* row_of, int64_t R, float* out, void* stream) {
  check_shapes("code_bag_forward", D, K, H, code_type, I, R);
  if (R == 0 || H == 0) return;
  require(W && codes && out, "code_bag_forward: null pointer");
  require(row_of != nullptr || I >= R, "code_bag_forward: codes has fewer rows than the output");
  const dim3 grid(static_cast<unsigned>(ceil_div(R, kWarpsPerBlock)));
  const float inv_d = 1.0f / static_cast<float>(D);
  cudaStream_t s = as_stream(stream);
  if (H % 4 == 0 && aligned16(W) && aligned16(out)) {
    bag_forward_kernel<4><<<grid, 32 * kWarpsPerBlock, 0, s>>>(W, int(D), int(K), int(H), codes, code_type, I,
                                                                row_of, R, inv_d, out);
  } else {
    bag_forward_kernel<1><<<grid, 32 * kWarpsPerBlock, 0, s>>>(W, int(D), int(K), int(H), codes, code_type, I,
                                                                row_of, R, inv_d, out);
  }
  check_launch("code_bag_forward");
}

size_t code_bag_backward_workspace_bytes(int64_t R, int64_t D, int64_t K) {
  require(R >= 0 && D >= 1 && K >= 1, "code_bag_backward_workspace_bytes: bad sizes");
  require(R * D < (int64_t(1) << 31) - 1, "code_bag_backward: R*D must be < 2^31 (split the batch)");
  require(D * K < (int64_t(1) << 31) - 1, "code_bag_backward: D*K must be < 2^31");
  return carve(nullptr, R, D, K).total;
}

void code_bag_backward(const float* grad_out, int64_t D, int64_t K, int64_t H, const void* codes, int code_type,
                       int64_t I, const int64_t* row_of, int64_t R, float* grad_W, void* workspace,
                       size_t workspace_bytes, void* stream) {
  check_shapes("code_bag_backward", D, K, H, code_type, I, R);
  cudaStream_t s = as_stream(stream);
  if (H == 0) return;
  require(grad_W != nullptr, "code_bag_backward: grad_W is null");
  if (R == 0) {
    check_cuda(cudaMemsetAsync(grad_W, 0, static_cast<size_t>(D * K * H) * sizeof(float), s), "memset grad_W");
    return;
  }
  require(grad_out && codes && workspace, "code_bag_backward: null pointer");
  require(row_of != nullptr || I >= R, "code_bag_backward: codes has fewer rows than grad_out");
  const size_t need = code_bag_backward_workspace_bytes(R, D, K);
  require(workspace_bytes >= need, "code_bag_backward: workspace has " + std::to_string(workspace_bytes) +
                                       " bytes, needs " + std::to_string(need));
  Workspace w = carve(workspace, R, D, K);
  const int64_t n = R * D;
  const uint32_t num_keys = static_cast<uint32_t>(D * K);
  int end_bit = 1;
  while (end_bit < 32 && (uint64_t(1) << end_bit) <= num_keys) ++end_bit;  // sentinel D*K must fit too

  make_keys_kernel<<<grid_for(n, 256), 256, 0, s>>>(codes, code_type, I, row_of, R, int(D), int(K), w.keys_in,
                                                      w.vals_in);
  check_launch("code_bag_backward: make_keys");
  check_cuda(cub::DeviceRadixSort::SortPairs(w.temp, w.temp_bytes, w.keys_in, w.keys_out, w.vals_in, w.vals_out,
                                             static_cast<int>(n), 0, end_bit, s),
             "code_bag_backward: radix sort");
  check_cuda(cudaMemsetAsync(w.start, 0, num_keys * sizeof(int32_t), s), "memset start");
  check_cuda(cudaMemsetAsync(w.end, 0, num_keys * sizeof(int32_t), s), "memset end");
  segment_bounds_kernel<<<grid_for(n, 256), 256, 0, s>>>(w.keys_out, n, num_keys, w.start, w.end);
  check_launch("code_bag_backward: segment_bounds");
  const float inv_d = 1.0f / static_cast<float>(D);
  if (H % 4 == 0 && aligned16(grad_out) && aligned16(grad_W)) {
    const int threads = static_cast<int>(std::min<int64_t>(128, std::max<int64_t>(32, ceil_div(H / 4, 32) * 32)));
    segment_sum_kernel<4><<<num_keys, threads, 0, s>>>(grad_out, int(H), w.vals_out, w.start, w.end, inv_d, grad_W);
  } else {
    const int threads = static_cast<int>(std::min<int64_t>(256, std::max<int64_t>(32, ceil_div(H, 32) * 32)));
    segment_sum_kernel<1><<<num_keys, threads, 0, s>>>(grad_out, int(H), w.vals_out, w.start, w.end, inv_d, grad_W);
  }
  check_launch("code_bag_backward: segment_sum");
}

}  // namespace cuda
}  // namespace vqrec
