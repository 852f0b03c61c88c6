// Code bag entry points: argument checks, deterministic bucketing for the backward pass, and
// dispatch of the float work to the active ISA level (code_bag_kernels.cpp).
#include "cpu/code_bag.h"

#include <sys/mman.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include <cstdint>
#include <algorithm>
#include <cstdlib>
#include <new>
#include <limits>
#include <memory>
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
  check_thread_count(nthreads, "code_bag");
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

// Real (non-padding) positions of ids [T] grouped by item: items[u] are the distinct ids in
// increasing order and pos[off[u] .. off[u+1]) the positions of item u, increasing. A counting
// sort over the id range when it is small next to T (the usual batch over a catalogue of
// thousands), otherwise a sort of the real positions, so a huge catalogue costs O(T log T)
// per batch rather than O(I).
struct PositionsByItem {
  std::vector<int64_t> items, off;
  std::vector<int32_t> pos;
};

PositionsByItem group_positions(const int64_t* ids, int64_t T, int64_t I) {
  PositionsByItem g;
  g.off.push_back(0);
  if (I <= 4 * T + 4096) {
    std::vector<int64_t> count(static_cast<size_t>(I), 0);
    for (int64_t t = 0; t < T; ++t)
      if (ids[t] != 0) ++count[ids[t]];
    std::vector<int64_t> cursor(static_cast<size_t>(I), 0);
    for (int64_t i = 1; i < I; ++i)
      if (count[i] != 0) {
        cursor[i] = g.off.back();
        g.items.push_back(i);
        g.off.push_back(g.off.back() + count[i]);
      }
    g.pos.resize(static_cast<size_t>(g.off.back()));
    for (int64_t t = 0; t < T; ++t)
      if (ids[t] != 0) g.pos[cursor[ids[t]]++] = static_cast<int32_t>(t);
    return g;
  }
  for (int64_t t = 0; t < T; ++t)
    if (ids[t] != 0) g.pos.push_back(static_cast<int32_t>(t));
  std::stable_sort(g.pos.begin(), g.pos.end(), [ids](int32_t x, int32_t y) { return ids[x] < ids[y]; });
  for (size_t j = 0; j < g.pos.size(); ++j)
    if (j == 0 || ids[g.pos[j]] != ids[g.pos[j - 1]]) {
      if (j > 0) g.off.push_back(static_cast<int64_t>(j));
      g.items.push_back(ids[g.pos[j]]);
    }
  if (!g.pos.empty()) g.off.push_back(static_cast<int64_t>(g.pos.size()));
  return g;
}

// True when no swap is configured: then a private anonymous page that is not resident has
// never been written since it was mapped or discarded, and reads as zero.
bool no_swap() {
  struct sysinfo si;
  return sysinfo(&si) == 0 && si.totalswap == 0;
}

// Per padding row of a fresh output buffer: 1 when every page the row touches is not resident
// (so it reads as zero without being written). Empty vector when the trick does not apply.
std::vector<uint8_t> zero_rows_known(float* out, const int64_t* ids, int64_t T, int64_t H) {
  std::vector<uint8_t> known;
  static const bool swapless = no_swap();
  const long page = sysconf(_SC_PAGESIZE);
  if (!swapless || page <= 0 || T == 0 || H == 0) return known;
  const uintptr_t begin = reinterpret_cast<uintptr_t>(out) & ~static_cast<uintptr_t>(page - 1);
  const uintptr_t end = reinterpret_cast<uintptr_t>(out + T * H);
  const size_t n_pages = (end - begin + page - 1) / page;
  std::vector<unsigned char> resident(n_pages);
  if (mincore(reinterpret_cast<void*>(begin), end - begin, resident.data()) != 0) return known;
  known.assign(static_cast<size_t>(T), 0);
  for (int64_t t = 0; t < T; ++t) {
    if (ids[t] != 0) continue;
    const uintptr_t a = reinterpret_cast<uintptr_t>(out + t * H), b = a + sizeof(float) * H - 1;
    bool untouched = true;
    for (size_t p = (a - begin) / page; p <= (b - begin) / page && untouched; ++p) untouched = !(resident[p] & 1);
    known[t] = untouched;
  }
  return known;
}

}  // namespace

void advise_huge_pages(void* p, size_t bytes) {
#if defined(MADV_HUGEPAGE)
  // Large outputs are freshly mmap'ed by the allocator; first-touch page faults on 4 KiB pages
  // cost more than the kernel's own work (a [2048, 50, 300] float output is 123 MB). Asking for
  // transparent huge pages on the 2 MiB-aligned interior cuts the faults ~500x. Advisory only.
  //
  // Not above kMaxAdvised: a buffer that large is usually made once (a catalogue's [N, H]
  // rows), and on a VM whose balloon reports free memory to the host (this project's machines:
  // virtio-balloon free page reporting) its huge pages come from blocks the host has taken
  // back, each refaulted there: a 1.2 GB output took 0.38-3 s on huge pages against a steady
  // 0.67-0.8 s on 4 KiB pages (measured, benchmarks/RESULTS.md). Per-step buffers (a training
  // batch's 123 MB output, the fused loss's 64 MB tables) are freed and made again within
  // milliseconds, so theirs stay backed and the advice pays.
  constexpr uintptr_t kHuge = uintptr_t(2) << 20;
  constexpr size_t kMaxAdvised = size_t(512) << 20;
  if (bytes < 4 * kHuge || bytes > kMaxAdvised) return;
  const uintptr_t b = (reinterpret_cast<uintptr_t>(p) + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t e = (reinterpret_cast<uintptr_t>(p) + bytes) & ~(kHuge - 1);
  if (e > b) madvise(reinterpret_cast<void*>(b), e - b, MADV_HUGEPAGE);
#else
  (void)p;
  (void)bytes;
#endif
}

size_t round_up_huge(size_t bytes) { return bytes == 0 ? kHugePage : (bytes + kHugePage - 1) / kHugePage * kHugePage; }

char* alloc_huge_aligned(size_t rounded_bytes) {
  char* p = static_cast<char*>(std::aligned_alloc(kHugePage, rounded_bytes));
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

Scratch::Scratch(size_t bytes) {
  bytes = round_up_huge(bytes);
  p_ = alloc_huge_aligned(bytes);
#if defined(MADV_HUGEPAGE)
  madvise(p_, bytes, MADV_HUGEPAGE);
#endif
}

Scratch::~Scratch() { std::free(p_); }

void check_thread_count(int nthreads, const char* op) {
  require(nthreads >= 1 && nthreads <= kMaxThreads, std::string(op) + ": nthreads must be in [1, " +
                                                        std::to_string(kMaxThreads) + "], got " +
                                                        std::to_string(nthreads));
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
  VQ_DISPATCH(gather_mean, GatherArgs{W, D, K, H, codes, ct, nullptr, N, out, 1.0f / static_cast<float>(D), nthreads});
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
                          int64_t I, const int64_t* ids, int64_t T, float* out, int nthreads, bool out_is_fresh) {
  check_common(W, D, K, H, nthreads);
  require(I >= 1 && T >= 0 && T <= std::numeric_limits<int32_t>::max(),
          "code_bag_seq: need I >= 1 (padding item 0) and 0 <= T < 2^31 positions");
  if (T == 0 || H == 0) return;
  require(out != nullptr, "code_bag_seq: out is a null pointer");
  check_ids_in_range(ids, T, I, "item_ids");
  check_referenced_codes(item_codes, ct, ids, T, D, K);
  std::vector<uint8_t> known;
  if (out_is_fresh) known = zero_rows_known(out, ids, T, H);
  // Residency was read before anything is touched, so untouched padding stays zero even when
  // a huge page faults in around a real row; huge pages cut the number of faults ~500x.
  advise_huge_pages(out, sizeof(float) * static_cast<size_t>(T * H));
  // Each distinct item is computed once, then copied to its positions (a training batch
  // repeats items: the benchmark batch has 3,659 distinct items at its 8,007 real positions).
  const PositionsByItem g = group_positions(ids, T, I);
  const int64_t U = static_cast<int64_t>(g.items.size());
  std::vector<int32_t> item_of(static_cast<size_t>(T), -1);
  for (int64_t u = 0; u < U; ++u)
    for (int64_t j = g.off[u]; j < g.off[u + 1]; ++j) item_of[g.pos[j]] = static_cast<int32_t>(u);
  std::unique_ptr<float[]> rows(new float[static_cast<size_t>(U * H)]);  // fully written by gather_mean
  VQ_DISPATCH(gather_mean, GatherArgs{W, D, K, H, item_codes, ct, g.items.data(), U, rows.get(),
                                      1.0f / static_cast<float>(D), nthreads});
  VQ_DISPATCH(place_rows, PlaceRowsArgs{rows.get(), item_of.data(), T, H, known.empty() ? nullptr : known.data(), out,
                                        nthreads});
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

  // Stage 1: sum the output gradient over the positions of each distinct real item (grouped
  // stably by id). Repeated items then cost H adds per extra position instead of D*H.
  const PositionsByItem g = group_positions(ids, T, I);
  const int64_t U = static_cast<int64_t>(g.items.size());
  std::unique_ptr<float[]> item_grad(new float[static_cast<size_t>(U * H)]);  // fully written below
  if (U > 0) {
    SegmentSumArgs s1{grad_out, H, g.pos.data(), g.off.data(), U, 1.0f, item_grad.get(), nthreads};
    VQ_DISPATCH(segment_sum, s1);
  }
  // Stage 2: bucket the distinct items by code in each sub-space and sum their gradients.
  // grad_W is a fresh [D, K, H] buffer (9.8 MB at the paper's size): huge pages spare ~2,400
  // first-touch faults.
  advise_huge_pages(grad_W, sizeof(float) * static_cast<size_t>(D * K * H));
  std::vector<int64_t> offsets;
  std::vector<int32_t> perm;
  bucket_by_code(item_codes, ct, g.items.data(), U, D, K, offsets, perm);
  SegmentSumArgs s2{item_grad.get(), H, perm.data(), offsets.data(), D * K, 1.0f / static_cast<float>(D), grad_W,
                    nthreads};
  VQ_DISPATCH(segment_sum, s2);
}

}  // namespace vqrec
