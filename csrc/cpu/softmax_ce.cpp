// Fused softmax cross-entropy entry points: argument checks, target logits and target terms
// (index work, done here in query order so the result is deterministic), the bounded rho
// buffer and its fixed-order reduction, and dispatch of the scans (softmax_ce_kernels.cpp).
#include "cpu/softmax_ce.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace vqrec {
namespace {

// A chunk's bucket offsets are int32: kCeChunk * D entries must stay below 2^31.
constexpr int64_t kMaxBucketedSubspaces = int64_t(1) << 16;
static_assert(kCeChunk * kMaxBucketedSubspaces < (int64_t(1) << 31), "bucket_off holds int32 offsets");

void require(bool ok, const std::string& msg) {
  if (!ok) throw std::invalid_argument(msg);
}

inline int64_t code_at(const void* codes, CodeType ct, int64_t idx) {
  return ct == CodeType::u8 ? static_cast<const uint8_t*>(codes)[idx] : static_cast<const int32_t*>(codes)[idx];
}

void check_args(const float* lut, int64_t B, int64_t D, int64_t K, const void* codes, CodeType ct, int64_t N,
                const float* alpha, const int64_t* target, int nthreads) {
  require(B >= 0 && D >= 1 && K >= 1, "code_softmax_ce: need B >= 0, D >= 1, K >= 1 (got B=" + std::to_string(B) +
                                          ", D=" + std::to_string(D) + ", K=" + std::to_string(K) + ")");
  require(N >= 1 && N <= std::numeric_limits<int32_t>::max(), "code_softmax_ce: need 1 <= N < 2^31 items, got N=" +
                                                                  std::to_string(N));
  require(D <= kMaxBucketedSubspaces, "code_softmax_ce: need D <= " + std::to_string(kMaxBucketedSubspaces) +
                                          " sub-spaces, got D=" + std::to_string(D));
  check_thread_count(nthreads, "code_softmax_ce");
  if (B == 0) return;
  require(lut != nullptr && alpha != nullptr && target != nullptr, "code_softmax_ce: null pointer argument");
  check_codes_in_range(codes, ct, N, D, K, "codes");
  for (int64_t b = 0; b < B; ++b)
    require(target[b] == -1 || (target[b] >= 0 && target[b] < N),
            "target[" + std::to_string(b) + "] = " + std::to_string(target[b]) + " is outside [0, " +
                std::to_string(N) + ") (-1 marks an ignored query)");
}

CeScanArgs scan_args(const float* lut, int64_t B, int64_t D, int64_t K, const void* codes, CodeType ct, int64_t N,
                     const float* alpha, int nthreads) {
  CeScanArgs a{};
  a.lut = lut;
  a.B = B;
  a.D = D;
  a.K = K;
  a.N = N;
  a.codes = codes;
  a.ct = ct;
  a.alpha = alpha;
  a.nthreads = nthreads;
  return a;
}

// rho partials are [blocks, N]; blocks per call are capped so the buffer stays near 64 MiB
// (at N = 1e6 that is 16 blocks of 16 queries) but never below the thread count.
constexpr int64_t kRhoBudgetFloats = int64_t(16) << 20;
static_assert(kCeChunk <= 65536, "bucket_idx holds chunk-local indices in uint16");

// Stable counting sort of each chunk's items by code, per sub-space (layout in softmax_ce.h).
void bucket_chunks(const void* codes, CodeType ct, int64_t N, int64_t D, int64_t K, std::vector<uint16_t>& idx,
                   std::vector<int32_t>& off, int nthreads) {
  const int64_t chunks = (N + kCeChunk - 1) / kCeChunk, DK = D * K;
  idx.resize(static_cast<size_t>(N * D));
  off.assign(static_cast<size_t>(chunks * (DK + 1)), 0);
#pragma omp parallel for schedule(static) num_threads(nthreads)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t n0 = c * kCeChunk, cnt = std::min(kCeChunk, N - n0);
    int32_t* o = off.data() + c * (DK + 1);
    for (int64_t i = 0; i < cnt; ++i)
      for (int64_t d = 0; d < D; ++d) ++o[d * K + code_at(codes, ct, (n0 + i) * D + d) + 1];
    for (int64_t s = 0; s < DK; ++s) o[s + 1] += o[s];
    std::vector<int32_t> cursor(o, o + DK);
    uint16_t* out = idx.data() + n0 * D;
    for (int64_t i = 0; i < cnt; ++i)
      for (int64_t d = 0; d < D; ++d) out[cursor[d * K + code_at(codes, ct, (n0 + i) * D + d)]++] = uint16_t(i);
  }
}

}  // namespace

float ce_item_logit(const float* lut_row, int64_t n, int64_t D, int64_t K, const void* codes, CodeType ct,
                    const float* alpha) {
  float acc[kCeAccumulators] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int64_t d = 0; d < D; ++d) acc[d % kCeAccumulators] += lut_row[d * K + code_at(codes, ct, n * D + d)];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) * alpha[n];
}

void code_softmax_ce_forward(const float* lut, int64_t B, int64_t D, int64_t K, const void* codes, CodeType ct,
                             int64_t N, const float* alpha, const int64_t* target, const float* extra, float* lse,
                             float* tgt_logit, int nthreads) {
  check_args(lut, B, D, K, codes, ct, N, alpha, target, nthreads);
  if (B == 0) return;
  require(lse != nullptr && tgt_logit != nullptr, "code_softmax_ce: null output pointer");
  CeScanArgs a = scan_args(lut, B, D, K, codes, ct, N, alpha, nthreads);
  a.extra = extra;
  a.lse = lse;
  a.blk_begin = 0;
  a.blk_end = (B + kCeLanes - 1) / kCeLanes;
  VQ_DISPATCH(ce_scan_forward, a);
  for (int64_t b = 0; b < B; ++b)
    tgt_logit[b] = target[b] < 0 ? 0.0f : ce_item_logit(lut + b * D * K, target[b], D, K, codes, ct, alpha);
}

void code_softmax_ce_backward(const float* lut, int64_t B, int64_t D, int64_t K, const void* codes, CodeType ct,
                              int64_t N, const float* alpha, const int64_t* target, const float* lse, const float* g,
                              float* grad_lut, float* rho, int nthreads) {
  check_args(lut, B, D, K, codes, ct, N, alpha, target, nthreads);
  require(rho != nullptr, "code_softmax_ce backward: rho is a null pointer");
  std::fill(rho, rho + N, 0.0f);
  if (B == 0) return;
  require(lse != nullptr && g != nullptr && grad_lut != nullptr, "code_softmax_ce backward: null pointer argument");
  CeScanArgs a = scan_args(lut, B, D, K, codes, ct, N, alpha, nthreads);
  a.lse = const_cast<float*>(lse);  // read only in the backward scan
  a.g = g;
  a.grad_lut = grad_lut;
  const int64_t blocks = (B + kCeLanes - 1) / kCeLanes;
  const int64_t per_call = std::min(blocks, std::max<int64_t>(nthreads, kRhoBudgetFloats / N));
  // every entry is written by the scan before it is read: no zero fill (a std::vector would
  // clear up to 64 MiB of fresh pages per call)
  const Scratch part(sizeof(float) * static_cast<size_t>(per_call * N));
  a.rho_part = reinterpret_cast<float*>(part.data());
  std::vector<uint16_t> bucket_idx;
  std::vector<int32_t> bucket_off;
  bucket_chunks(codes, ct, N, D, K, bucket_idx, bucket_off, nthreads);
  a.bucket_idx = bucket_idx.data();
  a.bucket_off = bucket_off.data();
  for (int64_t b0 = 0; b0 < blocks; b0 += per_call) {
    a.blk_begin = b0;
    a.blk_end = std::min(blocks, b0 + per_call);
    VQ_DISPATCH(ce_scan_backward, a);
    const int64_t nb = a.blk_end - a.blk_begin;
    // fixed order: block 0, 1, ... for every item, whatever the thread count
#pragma omp parallel for schedule(static) num_threads(nthreads)
    for (int64_t n = 0; n < N; ++n) {
      float r = rho[n];
      for (int64_t k = 0; k < nb; ++k) r += a.rho_part[k * N + n];
      rho[n] = r;
    }
  }
  // target terms: dlogit_{b,t} has an extra -g_b (one-hot), in query order
  for (int64_t b = 0; b < B; ++b) {
    const int64_t t = target[b];
    if (t < 0 || g[b] == 0.0f) continue;
    const float s = ce_item_logit(lut + b * D * K, t, D, K, codes, ct, alpha);
    float* row = grad_lut + b * D * K;
    const float w = g[b] * alpha[t];
    for (int64_t d = 0; d < D; ++d) row[d * K + code_at(codes, ct, t * D + d)] -= w;
    rho[t] -= g[b] * s;
  }
}

namespace {

void check_lane_args(const float* W, int64_t D, int64_t K, int64_t H, const void* codes, CodeType ct, int64_t N,
                     int nthreads, const char* what) {
  const std::string op(what);
  require(D >= 1 && K >= 1 && H >= 1 && N >= 0, op + ": need D, K, H >= 1 and N >= 0 (got D=" + std::to_string(D) +
                                                    ", K=" + std::to_string(K) + ", H=" + std::to_string(H) +
                                                    ", N=" + std::to_string(N) + ")");
  require(N <= std::numeric_limits<int32_t>::max(), op + ": need N < 2^31 items, got N=" + std::to_string(N));
  require(D <= kMaxBucketedSubspaces,
          op + ": need D <= " + std::to_string(kMaxBucketedSubspaces) + " sub-spaces, got D=" + std::to_string(D));
  check_thread_count(nthreads, what);
  require(W != nullptr && (N == 0 || codes != nullptr), op + ": null pointer argument");
  check_codes_in_range(codes, ct, N, D, K, "codes");
}

CeLaneArgs lane_args(const float* W, int64_t D, int64_t K, int64_t H, const void* codes, CodeType ct, int64_t N,
                     int nthreads) {
  return CeLaneArgs{W, D, K, H, N, codes, ct, /*scale=*/nullptr, /*bucket_idx=*/nullptr, /*bucket_off=*/nullptr,
                    /*out=*/nullptr, nthreads};
}

}  // namespace

void code_bag_norms(const float* W, int64_t D, int64_t K, int64_t H, const void* codes, CodeType ct, int64_t N,
                    float* norms, int nthreads) {
  check_lane_args(W, D, K, H, codes, ct, N, nthreads, "code_bag_norms");
  if (N == 0) return;
  require(norms != nullptr, "code_bag_norms: norms is a null pointer");
  if (N < kLaneNormMinItems) {  // small catalogue: code bags in tiles, then their norms
    constexpr int64_t kRows = 1024;
    std::vector<float> rows(static_cast<size_t>(std::min(N, kRows) * H));
    const size_t code_bytes = ct == CodeType::u8 ? 1 : sizeof(int32_t);
    for (int64_t n0 = 0; n0 < N; n0 += kRows) {
      const int64_t cnt = std::min(kRows, N - n0);
      code_bag_forward(W, D, K, H, static_cast<const char*>(codes) + n0 * D * code_bytes, ct, cnt, rows.data(),
                       nthreads);
      const float* r = rows.data();
#pragma omp parallel for schedule(static) num_threads(nthreads)
      for (int64_t i = 0; i < cnt; ++i) {
        float sq = 0.0f;
#pragma omp simd reduction(+ : sq)
        for (int64_t h = 0; h < H; ++h) sq += r[i * H + h] * r[i * H + h];
        norms[n0 + i] = std::sqrt(sq);
      }
    }
    return;
  }
  CeLaneArgs a = lane_args(W, D, K, H, codes, ct, N, nthreads);
  a.out = norms;
  VQ_DISPATCH(ce_item_sumsq, a);
  const float inv_d = 1.0f / static_cast<float>(D);
  for (int64_t n = 0; n < N; ++n) norms[n] = std::sqrt(norms[n]) * inv_d;
}

void code_bag_norm_grad(const float* W, int64_t D, int64_t K, int64_t H, const void* codes, CodeType ct, int64_t N,
                        const float* gamma, float* dW, int nthreads) {
  check_lane_args(W, D, K, H, codes, ct, N, nthreads, "code_bag_norm_grad");
  if (N == 0) return;
  require(gamma != nullptr && dW != nullptr, "code_bag_norm_grad: null pointer argument");
  // gamma_n e_n / D = (gamma_n / D^2) sum_d' W[d', c_nd']
  std::vector<float> scale(static_cast<size_t>(N));
  const float inv_d2 = 1.0f / static_cast<float>(D * D);
  for (int64_t n = 0; n < N; ++n) scale[n] = gamma[n] * inv_d2;
  std::vector<uint16_t> bucket_idx;
  std::vector<int32_t> bucket_off;
  bucket_chunks(codes, ct, N, D, K, bucket_idx, bucket_off, nthreads);
  CeLaneArgs a = lane_args(W, D, K, H, codes, ct, N, nthreads);
  a.scale = scale.data();
  a.bucket_idx = bucket_idx.data();
  a.bucket_off = bucket_off.data();
  a.out = dW;
  VQ_DISPATCH(ce_norm_grad, a);
}

}  // namespace vqrec
