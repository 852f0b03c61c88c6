// Code bag entry points: argument checks, deterministic bucketing for the backward pass, and
// dispatch of the float work to the active ISA level (code_bag_kernels.cpp).
#include "cpu/code_bag.h"

#include <sys/mman.h>

#include <cstdint>
#include <algorithm>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace vqrec {
namespace {

void require(bool ok, const std::string& msg) {
  if (!ok) throw std::invalid_argument(msg);
}

void check_common(const void* W, int64_t D, int64_t K, int64_t H, int nthreads) {
  require(D >= 1 && K >= 1 && H >= 0, "code_bag: need D >= 1, K >= 1, H >= 0 (got D=" + std::to_string(D) +
                                           ", K=" + std::to_string(K) + ", H=" + std::to_string(H) + ")");
  require(W != nullptr || H == 0, "code_bag: W is a null pointer");
  require(nthreads >= 1, "code_bag: nthreads must be >= 1");
}

inline int64_t code_at(const void* codes, CodeType ct, int64_t idx) {
  return ct == CodeType::u8 ? static_cast<const uint8_t*>(codes)[idx] : static_cast<const int32_t*>(codes)[idx];
}

// Buckets rows r in [0, R) of a code table by their code in sub-space d, for every d, stably.
// offsets: [D*K + 1] over segments (d, k); perm: [D*R] source row per entry.
void bucket_by_code(const void* codes, CodeType ct, const int64_t* code_row_of, int64_t R, int64_t D,
                    int64_t K, std::vector<int64_t>& offsets, std::vector<int32_t>& perm) {
  offsets.assign(D * K + 1, 0);
  perm.resize(static_cast<size_t>(D * R));
  for (int64_t r = 0; r < R; ++r) {
    const int64_t base = (code_row_of ? code_row_of[r] : r) * D;
    for (int64_t d = 0; d < D; ++d) ++offsets[d * K + code_at(codes, ct, base + d) + 1];
  }
  for (int64_t s = 0; s < D * K; ++s) offsets[s + 1] += offsets[s];
  std::vector<int64_t> cursor(offsets.begin(), offsets.end() - 1);
  for (int64_t r = 0; r < R; ++r) {
    const int64_t base = (code_row_of ? code_row_of[r] : r) * D;
    for (int64_t d = 0; d < D; ++d) perm[cursor[d * K + code_at(codes, ct, base + d)]++] = static_cast<int32_t>(r);
  }
}

// Checks the code rows of the real (non-padding) items that ids refer to: O(T*D), not O(I*D),
// so a large catalogue costs nothing per batch.
void check_referenced_codes(const void* item_codes, CodeType ct, const int64_t* ids, int64_t T, int64_t D,
                            int64_t K) {
  if (ct == CodeType::u8 && K >= 256) return;
  for (int64_t t = 0; t < T; ++t) {
    if (ids[t] == 0) continue;
    for (int64_t d = 0; d < D; ++d) {
      const int64_t c = code_at(item_codes, ct, ids[t] * D + d);
      if (c < 0 || c >= K)
        throw std::invalid_argument("item_codes[" + std::to_string(ids[t]) + ", " + std::to_string(d) + "] = " +
                                    std::to_string(c) + " is outside [0, " + std::to_string(K) + ")");
    }
  }
}

}  // namespace

void advise_huge_pages(void* p, size_t bytes) {
#if defined(MADV_HUGEPAGE)
  // Large outputs are freshly mmap'ed by the allocator; first-touch page faults on 4 KiB pages
  // cost more than the kernel's own work (a [2048, 50, 300] float output is 123 MB). Asking for
  // transparent huge pages on the 2 MiB-aligned interior cuts the faults ~500x. Advisory only.
  constexpr uintptr_t kHuge = uintptr_t(2) << 20;
  if (bytes < 4 * kHuge) return;
  const uintptr_t b = (reinterpret_cast<uintptr_t>(p) + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t e = (reinterpret_cast<uintptr_t>(p) + bytes) & ~(kHuge - 1);
  if (e > b) madvise(reinterpret_cast<void*>(b), e - b, MADV_HUGEPAGE);
#else
  (void)p;
  (void)bytes;
#endif
}

void check_codes_in_range(const void* codes, CodeType ct, int64_t N, int64_t D, int64_t K, const char* what) {
  if (N * D == 0) return;
  require(codes != nullptr, std::string(what) + " is a null pointer");
  if (ct == CodeType::u8 && K >= 256) return;
  for (int64_t i = 0; i < N * D; ++i) {
    const int64_t c = code_at(codes, ct, i);
    if (c < 0 || c >= K)
      throw std::invalid_argument(std::string(what) + "[" + std::to_string(i / D) + ", " + std::to_string(i % D) +
                                  "] = " + std::to_string(c) + " is outside [0, " + std::to_string(K) + ")");
  }
}

void check_ids_in_range(const int64_t* ids, int64_t T, int64_t I, const char* what) {
  if (T == 0) return;
  require(ids != nullptr, std::string(what) + " is a null pointer");
  for (int64_t t = 0; t < T; ++t)
    if (ids[t] < 0 || ids[t] >= I)
      throw std::invalid_argument(std::string(what) + " (flat index " + std::to_string(t) + ") = " +
                                  std::to_string(ids[t]) + " is outside [0, " + std::to_string(I) + ")");
}

void code_bag_forward(const float* W, int64_t D, int64_t K, int64_t H, const void* codes, CodeType ct,
                      int64_t N, float* out, int nthreads) {
  check_common(W, D, K, H, nthreads);
  require(N >= 0, "code_bag: N must be >= 0");
  if (N == 0 || H == 0) return;
  require(out != nullptr, "code_bag: out is a null pointer");
  check_codes_in_range(codes, ct, N, D, K, "codes");
  advise_huge_pages(out, sizeof(float) * static_cast<size_t>(N * H));
  VQ_DISPATCH(gather_mean, GatherArgs{W, D, K, H, codes, ct, nullptr, -1, N, out, 1.0f / static_cast<float>(D), nthreads});
}

void code_bag_backward(const float* grad_out, int64_t D, int64_t K, int64_t H, const void* codes, CodeType ct,
                       int64_t N, float* grad_W, int nthreads) {
  check_common(grad_W, D, K, H, nthreads);
  require(N >= 0 && N <= std::numeric_limits<int32_t>::max(), "code_bag backward: N must be in [0, 2^31)");
  if (H == 0) return;
  check_codes_in_range(codes, ct, N, D, K, "codes");
  require(grad_out != nullptr || N == 0, "code_bag backward: grad_out is a null pointer");
  std::vector<int64_t> offsets;
  std::vector<int32_t> perm;
  bucket_by_code(codes, ct, nullptr, N, D, K, offsets, perm);
  SegmentSumArgs a{grad_out, H, perm.data(), offsets.data(), D * K, 1.0f / static_cast<float>(D), grad_W, nthreads};
  VQ_DISPATCH(segment_sum, a);
}

void code_bag_seq_forward(const float* W, int64_t D, int64_t K, int64_t H, const void* item_codes, CodeType ct,
                          int64_t I, const int64_t* ids, int64_t T, float* out, int nthreads) {
  check_common(W, D, K, H, nthreads);
  require(I >= 1 && T >= 0, "code_bag_seq: need I >= 1 (padding item 0) and T >= 0");
  if (T == 0 || H == 0) return;
  require(out != nullptr, "code_bag_seq: out is a null pointer");
  check_ids_in_range(ids, T, I, "item_ids");
  check_referenced_codes(item_codes, ct, ids, T, D, K);
  advise_huge_pages(out, sizeof(float) * static_cast<size_t>(T * H));
  VQ_DISPATCH(gather_mean, GatherArgs{W, D, K, H, item_codes, ct, ids, 0, T, out, 1.0f / static_cast<float>(D), nthreads});
}

void code_bag_seq_backward(const float* grad_out, int64_t D, int64_t K, int64_t H, const void* item_codes,
                           CodeType ct, int64_t I, const int64_t* ids, int64_t T, float* grad_W, int nthreads) {
  check_common(grad_W, D, K, H, nthreads);
  require(I >= 1 && T >= 0 && T <= std::numeric_limits<int32_t>::max(),
          "code_bag_seq backward: need I >= 1 and 0 <= T < 2^31");
  if (H == 0) return;
  check_ids_in_range(ids, T, I, "item_ids");
  check_referenced_codes(item_codes, ct, ids, T, D, K);
  require(grad_out != nullptr || T == 0, "code_bag_seq backward: grad_out is a null pointer");

  // Stage 1: sum the output gradient over the positions of each distinct real item (stable
  // counting sort by id). Repeated items then cost H adds per extra position instead of D*H.
  std::vector<int64_t> count(static_cast<size_t>(I) + 1, 0);
  for (int64_t t = 0; t < T; ++t)
    if (ids[t] != 0) ++count[ids[t] + 1];
  std::vector<int64_t> uniq;  // distinct item ids in increasing order
  for (int64_t i = 1; i < I; ++i)
    if (count[i + 1] != 0) uniq.push_back(i);
  const int64_t U = static_cast<int64_t>(uniq.size());
  std::vector<int64_t> item_off(static_cast<size_t>(U) + 1, 0);
  std::vector<int64_t> slot(static_cast<size_t>(I), -1);
  for (int64_t u = 0; u < U; ++u) {
    slot[uniq[u]] = u;
    item_off[u + 1] = item_off[u] + count[uniq[u] + 1];
  }
  std::vector<int32_t> pos(static_cast<size_t>(item_off[U]));
  {
    std::vector<int64_t> cursor(item_off.begin(), item_off.end() - 1);
    for (int64_t t = 0; t < T; ++t)
      if (ids[t] != 0) pos[cursor[slot[ids[t]]]++] = static_cast<int32_t>(t);
  }
  std::vector<float> item_grad(static_cast<size_t>(U * H));
  if (U > 0) {
    SegmentSumArgs s1{grad_out, H, pos.data(), item_off.data(), U, 1.0f, item_grad.data(), nthreads};
    VQ_DISPATCH(segment_sum, s1);
  }
  // Stage 2: bucket the distinct items by code in each sub-space and sum their gradients.
  std::vector<int64_t> offsets;
  std::vector<int32_t> perm;
  bucket_by_code(item_codes, ct, uniq.data(), U, D, K, offsets, perm);
  SegmentSumArgs s2{item_grad.data(), H, perm.data(), offsets.data(), D * K, 1.0f / static_cast<float>(D), grad_W,
                    nthreads};
  VQ_DISPATCH(segment_sum, s2);
}

}  // namespace vqrec
