// Asymmetric-distance (ADC) scoring of code-composed items, streaming top-k over all items.
//
//   lut         float32 [B, D, K]  LUT_q[d, k] = <q, W[d, k]> (computed by the caller, one GEMM)
//   codes       uint8 or int32 [N, D], values in [0, K); item ids are the row indices 0..N-1
//   item_scale  float32 [N] >= 0, or nullptr (= 1)
//   score(q, n) = (sum_d LUT_q[d, codes[n, d]]) * item_scale[n] / D
//
// Top-k never holds the B x N score matrix: every thread keeps one min-heap of size k per query
// over the item chunks it takes (dynamic schedule) and tests a whole vector of scores against
// the current thresholds, touching a heap only on a hit; the per-thread heaps are merged at the end.
//
// Three scans produce the same answer:
//   exact      float LUTs, transposed per chunk of queries to [D, K, QB] so that one code
//              lookup feeds QB queries with one vector load (any K, any SIMD level).
//   quantized  uint8 LUTs u = round((LUT - bias_d) / step), u in [0, 127], per-sub-space bias and
//              one step per query, summed over an item's codes in one of two ways:
//              blocks   each thread transposes 3840 items' codes to [block, d, 64] and, query by
//                       query, sums 6 blocks of 64 items with the query's two current sub-space
//                       tables held in registers (AVX-512 VBMI: 64 byte look-ups per pair of
//                       permutes; other levels: plain loops);
//              queries  the tables of 16-64 queries laid out [d][code][query], so one vector
//                       load reads an item's entry for all of them (score_topk_qm_kernels.cpp).
//              Every sum gives an upper bound of the exact score (step * U + sum_d bias_d +
//              slack, slack bounding the quantization error). Items whose upper bound reaches the
//              query's k-th best exact score so far (shared between threads) are scored exactly
//              with the float LUT, eight at a time, into the heaps. The result equals the exact
//              scan's. Needs K <= 256, uint8 codes, D <= 516.
// Exclusions: CSR (excl_off [B + 1], excl_ids sorted ascending within each row); an excluded
// item is never returned. Missing results (fewer than k admissible items) are id -1, score -inf.
#pragma once
#include <cstdint>

#include "common/isa.h"
#include "cpu/code_bag.h"  // CodeType

namespace vqrec {

// quantized picks one of the two quantized scans for the active level and batch (see
// score_topk); quantized_blocks and quantized_queries force one (tests, benchmarks).
enum class ScanMode : int { exact = 0, quantized = 1, quantized_blocks = 2, quantized_queries = 3 };

// ---- entry points (validate, allocate heaps, dispatch, merge; throw std::invalid_argument) ----
// out_scores float32 [B, k], out_ids int64 [B, k], sorted by score descending (ties by id).
// Throws std::invalid_argument("lut: ...") when lut holds Inf/NaN (the caller names the input).
void score_topk(const float* lut, int64_t B, int64_t D, int64_t K, const void* codes, CodeType ct, int64_t N,
                const float* item_scale, const int64_t* excl_off, const int64_t* excl_ids, int64_t k, ScanMode mode,
                float* out_scores, int64_t* out_ids, int nthreads);
// out float32 [B, N]: every score (small N, analysis).
void score_all(const float* lut, int64_t B, int64_t D, int64_t K, const void* codes, CodeType ct, int64_t N,
               const float* item_scale, float* out, int nthreads);

// ---- per-ISA work ----
struct ScanArgs {
  const float* lut;  // [B, D, K]
  const uint8_t* qlut;  // [B, D, 256] quantized LUTs (layout: quantize_luts), quantized mode only
  const float* qstep;   // [B] step of query q's quantized LUT
  const float* qoffset; // [B] sum_d bias_d + slack (an upper bound of the quantization error)
  int64_t B, D, K, N;
  const void* codes;
  CodeType ct;
  const float* item_scale;  // [N] or nullptr
  const int64_t* excl_off;  // [B + 1] or nullptr
  const int64_t* excl_ids;
  int64_t k;
  // Per-thread heaps, [nthreads, B, k] each, and their fill counts [nthreads, B]; the kernel
  // fills them, the caller merges.
  float* heap_scores;
  int64_t* heap_ids;
  int64_t* heap_count;
  float* scratch;  // exact mode: [D * K * kQueryChunk] transposed LUT chunk
  int nthreads;
  // ---- quantized mode only ----
  float* published = nullptr;  // [nthreads, B] each thread's k-th best exact score, -inf on entry
};
constexpr int64_t kQueryChunk = 16;  // queries per pass of the exact scan (one zmm of floats)
constexpr int kQuantMax = 127;       // quantized entries lie in [0, 127]: two add up in one byte
// The quantized scan that ScanMode::quantized runs for B queries over N items at the active
// ISA level: quantized_blocks or quantized_queries.
ScanMode pick_quantized_scan(int64_t B, int64_t N);

// *ok = every x[i] is finite.
VQ_DECLARE_ISA_FN(void, all_finite, (const float* x, int64_t n, int nthreads, bool* ok))
// lut [B, D, K] -> qlut [B, D, 256], qstep [B], qoffset [B] (see ScanArgs):
// u = round((lut - bias_d) / step), bias_d = min_k lut[d, k], step = max_d span_d / kQuantMax,
// slack >= the largest possible sum of rounding errors, qoffset = sum_d bias_d + slack.
// Layout of a sub-space's 256 bytes: u[c] (entries >= K zero), except with block_layout on
// AVX-512 VBMI, where bytes 128-255 hold u[c + 128] - u[c] mod 256 (the form the block scan's
// look-up adds, see lookup()); the query-major scan reads plain u[c].
VQ_DECLARE_ISA_FN(void, quantize_luts,
                  (const float* lut, int64_t B, int64_t D, int64_t K, bool block_layout, uint8_t* qlut,
                   float* qstep, float* qoffset, int nthreads))
VQ_DECLARE_ISA_FN(void, scan_topk_exact, (const ScanArgs& a))
VQ_DECLARE_ISA_FN(void, scan_topk_quantized, (const ScanArgs& a))
// The same answer from the query-major scan (score_topk_qm_kernels.cpp): needs qlut, qstep,
// qoffset and published, as scan_topk_quantized does.
VQ_DECLARE_ISA_FN(void, scan_topk_quantized_qm, (const ScanArgs& a))
// Writes every score into out [B, N] (ScanArgs heaps unused).
VQ_DECLARE_ISA_FN(void, scan_dense, (const ScanArgs& a, float* out))

}  // namespace vqrec
