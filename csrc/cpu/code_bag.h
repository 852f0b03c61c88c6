// Code bag: an item's representation is the mean of its D code embeddings.
//
//   W      float32 [D, K, H]  codebooks, contiguous
//   codes  uint8 or int32 [N, D] (row stride = D), values in [0, K)
//   out    float32 [N, H]          out[n] = (1/D) * sum_d W[d, codes[n, d]]
//
// Sequence form: ids int64 [T] (flattened B*L) index rows of item_codes [I, D]; id 0 is the
// padding item, whose output row is exactly zero and costs no work.
//
// Backward returns dW only, in fp32, deterministically: positions are bucketed (counting sort,
// stable) and each output row is summed by one thread in increasing source order, so the
// result is bit-identical for any thread count. No atomics.
#pragma once
#include <cstddef>
#include <cstdint>

#include "common/isa.h"

namespace vqrec {

enum class CodeType : int { u8 = 0, i32 = 1 };

// ---- entry points (validate, plumb indices, dispatch; throw std::invalid_argument) ----
void code_bag_forward(const float* W, int64_t D, int64_t K, int64_t H, const void* codes, CodeType ct,
                      int64_t N, float* out, int nthreads);
void code_bag_backward(const float* grad_out, int64_t D, int64_t K, int64_t H, const void* codes,
                       CodeType ct, int64_t N, float* grad_W, int nthreads);
// out_is_fresh: `out` was just allocated for this call as private anonymous memory (a new
// torch.empty). Padding rows on pages that were never touched then already read as zero and
// are left alone (calloc's trick), so a mostly-padding batch faults in only the pages that
// hold real rows instead of writing the whole [T, H] output.
void code_bag_seq_forward(const float* W, int64_t D, int64_t K, int64_t H, const void* item_codes,
                          CodeType ct, int64_t I, const int64_t* ids, int64_t T, float* out, int nthreads,
                          bool out_is_fresh = false);
void code_bag_seq_backward(const float* grad_out, int64_t D, int64_t K, int64_t H, const void* item_codes,
                           CodeType ct, int64_t I, const int64_t* ids, int64_t T, float* grad_W,
                           int nthreads);

// Asks the OS for transparent huge pages on a large, not yet touched output buffer.
void advise_huge_pages(void* p, size_t bytes);

// Large buffers are whole 2 MiB pages, 2 MiB-aligned (Scratch and the output cache):
// round_up_huge gives the size (at least one page), alloc_huge_aligned that memory from
// std::aligned_alloc (release with std::free; throws std::bad_alloc).
constexpr size_t kHugePage = size_t(2) << 20;
size_t round_up_huge(size_t bytes);
char* alloc_huge_aligned(size_t rounded_bytes);

// Scratch memory owned for the length of one call: 2 MiB-aligned, rounded up to whole 2 MiB
// pages and advised as huge pages (tables read at random rows then take no TLB miss per row).
// Kernels allocate it before their OpenMP regions: the constructor throws std::bad_alloc,
// which inside a parallel region would end the process instead of reaching Python.
class Scratch {
 public:
  explicit Scratch(size_t bytes);
  ~Scratch();
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  char* data() const { return p_; }

 private:
  char* p_;
};

// Largest thread count an entry point accepts: per-thread scratch is sized by it, and OpenMP
// would try to start that many threads (the callers pass torch.get_num_threads()).
constexpr int kMaxThreads = 4096;

// Validation helpers shared with other ops: throw std::invalid_argument naming the index.
void check_codes_in_range(const void* codes, CodeType ct, int64_t N, int64_t D, int64_t K, const char* what);
void check_ids_in_range(const int64_t* ids, int64_t T, int64_t I, const char* what);
// nthreads in [1, kMaxThreads], else std::invalid_argument naming the op.
void check_thread_count(int nthreads, const char* op);

// ---- per-ISA float work ----
// Rows to gather: row r of `out` is scale * sum_d W[d, code(row_of[r], d)] (row_of == nullptr:
// code row r).
struct GatherArgs {
  const float* W;
  int64_t D, K, H;
  const void* codes;
  CodeType ct;
  const int64_t* row_of;  // [R] or nullptr
  int64_t R;
  float* out;  // [R, H]
  float scale;
  int nthreads;
};
// out row t = src row src_of[t], or zeros where src_of[t] < 0 (unless already_zero[t]: the row
// is known to read as zero already, its pages never touched, see zero_rows_known), in
// increasing t so that each thread first-touches its own part of a fresh output.
struct PlaceRowsArgs {
  const float* src;  // [U, H]
  const int32_t* src_of;  // [T]
  int64_t T, H;
  const uint8_t* already_zero;  // [T] or nullptr
  float* out;                   // [T, H]
  int nthreads;
};
// dst[s] = scale * sum_{j in [offsets[s], offsets[s+1])} src[perm[j]]; empty -> zeros.
struct SegmentSumArgs {
  const float* src;
  int64_t H;
  const int32_t* perm;
  const int64_t* offsets;  // [S + 1]
  int64_t S;
  float scale;
  float* dst;  // [S, H]
  int nthreads;
};

VQ_DECLARE_ISA_FN(void, gather_mean, (const GatherArgs& a))
VQ_DECLARE_ISA_FN(void, place_rows, (const PlaceRowsArgs& a))
VQ_DECLARE_ISA_FN(void, segment_sum, (const SegmentSumArgs& a))

}  // namespace vqrec
