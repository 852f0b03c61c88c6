// Torch-free, CUDA-header-free declarations of the CUDA entry points, so that the pybind11
// binding file (compiled by the host C++ compiler) needs neither torch nor cuda_runtime.h.
//
// Every entry point takes raw device pointers (from tensor.data_ptr()) and the stream as an
// opaque handle (torch.cuda.current_stream().cuda_stream); it enqueues work and returns without
// synchronising. Bad sizes throw std::invalid_argument (-> ValueError); a failed launch throws
// std::runtime_error with the CUDA error string.
#pragma once
#include <cstddef>
#include <cstdint>

namespace vqrec {
namespace cuda {

// code_type: 0 = uint8, 1 = int32 (same numbering as vqrec::CodeType on the CPU side).

// ---- code bag (code_bag.cu) ----
// W float32 [D, K, H] contiguous; codes [I, D]; row_of int64 [R] or null.
// out float32 [R, H]: row r = (1/D) * sum_d W[d, codes[src(r), d]] with src(r) = row_of ? row_of[r] : r;
// a row with row_of[r] == 0 (padding, only when row_of is given) is written as zeros.
void code_bag_forward(const float* W, int64_t D, int64_t K, int64_t H, const void* codes, int code_type, int64_t I,
                      const int64_t* row_of, int64_t R, float* out, void* stream);

// Bytes of device workspace code_bag_backward needs for R rows (caller allocates it).
size_t code_bag_backward_workspace_bytes(int64_t R, int64_t D, int64_t K);

// grad_W float32 [D, K, H] = sum over rows r (skipping padding rows) of grad_out[r] / D at
// (d, codes[src(r), d]). Deterministic: a stable radix sort of (d, code) keys, then one block
// per (d, k) row sums its rows in increasing r. No atomics on floats.
void code_bag_backward(const float* grad_out, int64_t D, int64_t K, int64_t H, const void* codes, int code_type,
                       int64_t I, const int64_t* row_of, int64_t R, float* grad_W, void* workspace,
                       size_t workspace_bytes, void* stream);

// ---- ADC top-k (adc_topk.cu) ----
// lut   fp16 [G, D, K, 8]: per group of 8 queries, LUT[q, d, k] (already scaled by 1/D) with the 8
//       queries interleaved so that one 16-byte shared-memory load serves all 8.
// codes uint8 [N, D]; item_scale float32 [N] or null (score *= item_scale[n]).
// out_scores float32 [G*8, S', k], out_ids int32 [G*8, S', k] with S' = adc_topk_out_splits(...):
// per query and (sub-)split, the best k of its items, best first; missing -> -inf / -1.
// half_sums: sum each 16 sub-spaces in fp16 pairs before the fp32 accumulators (faster, scores
// less precise: for candidate generation followed by an exact re-score); else fp32 throughout.
// Requires K <= 256, 1 <= k <= 256, and D*K*16 + 8*512*8 bytes of shared memory per block.
void adc_topk(const void* lut, int64_t G, int64_t D, int64_t K, const uint8_t* codes, int64_t N,
              const float* item_scale, int64_t k, int64_t S, float* out_scores, int32_t* out_ids, bool half_sums,
              void* stream);
// Shared memory (bytes) adc_topk needs per block; 0 if the current device cannot provide it.
size_t adc_topk_smem_bytes(int64_t D, int64_t K);
// Splits per query that adc_topk writes for S item splits: S * 8 when the barrier-free kernel
// (one candidate list per warp, k <= 96) runs, else S. out_scores/out_ids hold [G*8, that, k].
int64_t adc_topk_out_splits(int64_t D, int64_t K, int64_t k, int64_t S);

// ---- quantized ADC candidates (adc_candidates.cu) ----
// Every item that can be among a query's best kk by exact ADC score, from uint8 tables:
// lut   uint8 [G, D/8, 256, 8, 16]: per group of 16 queries, entry (d, code) of query q at
//       [d / 8][code][d % 8][q] (see adc_candidates.cu for why), quantised as
//       LUT[q, d, code] ~ min_k LUT[q, d, k] + qstep[q] * lut (entries <= 255, or <= 127 for bits 7).
// qoff/qstep/qwin float32 [G*16]: sum_d min_k LUT, the step, and the window (2 x the bound on
//       |exact - estimate|, item scale included); estimate = s_n * (qoff + qstep * sum_d lut).
// codes uint8 [N, D] (8-byte aligned); item_scale float32 [N] (>= 0) or null; inv_scale_max =
//       1 / max item_scale (1 without scales). D in {8, 16, 32} (bits 7: D = 32); 1 <= kk <= adc_candidates_max_kk().
// items: items per lane per step (1, 2 or 4 at D = 32; D = 8, 16 and 7-bit tables always use 2).
// out_est float32 / out_ids int32 [G*16, S * adc_candidates_warps(), adc_candidates_slots()]:
// per (query, split) its candidates best first, then -inf / -1. overflow int32 [G*16], zeroed by
// the caller: set to 1 for a query whose lists could not hold all its candidates (answer it
// another way). Otherwise every item with estimate >= (kk-th best estimate) - qwin is returned.
void adc_candidates(const void* lut, int64_t G, int64_t D, const uint8_t* codes, int64_t N, const float* item_scale,
                    float inv_scale_max, const float* qoff, const float* qstep, const float* qwin, int64_t kk,
                    int64_t S, int bits, int items, float* out_est, int32_t* out_ids, int32_t* overflow,
                    void* stream);
// Shared memory (bytes) per block for D; 0 if D is unsupported or the device cannot provide it.
size_t adc_candidates_smem_bytes(int64_t D);
int64_t adc_candidates_slots();   // candidate slots per (query, split) in the outputs
int64_t adc_candidates_warps();   // splits per block (one list per warp)
int64_t adc_candidates_max_kk();  // the largest kk

// Second pass of a two-pass exact top-k (same tables as adc_candidates): for items [n0, N),
// appends to query q's buffer out_ids[q, :cap] every item with estimate >= thr[q] (thr = a lower
// bound of q's exact kk-th best score minus the estimate's error bound). count int32 [G*16],
// zeroed by the caller, ends as the number of such items (entries beyond cap are not written:
// count > cap means the buffer overflowed). Order within a buffer is arbitrary.
void adc_threshold_scan(const void* lut, int64_t G, int64_t D, const uint8_t* codes, int64_t n0, int64_t N,
                        const float* item_scale, float inv_scale_max, const float* qoff, const float* qstep,
                        const float* thr, int64_t S, int64_t cap, int32_t* out_ids, int32_t* count, void* stream);
size_t adc_threshold_smem_bytes(int64_t D);

// ---- fused code-composed softmax cross-entropy, forward log-sum-exp (softmax_ce.cu) ----
// lut fp32 [G, D, K, 4]: per group of 4 queries, LUT[q, d, k] (already scaled by 1/D), interleaved.
// logits[b, n] = item_scale[n] * sum_d LUT[b, d, codes[n, d]] (item_scale may be null = 1).
// Per query and item split s: part_m[b, s] = max logit, part_s[b, s] = sum exp(logit - part_m)
// over items [s*per_split, min(N, (s+1)*per_split)) (an empty split gives -inf, 0).
void softmax_ce_lse(const float* lut, int64_t G, int64_t D, int64_t K, const uint8_t* codes, int64_t N,
                    const float* item_scale, int64_t S, float* part_m, float* part_s, void* stream);
// Shared memory (bytes) softmax_ce_lse needs per block; 0 if the current device cannot provide it.
size_t softmax_ce_lse_smem_bytes(int64_t D, int64_t K);
// Backward probabilities of a chunk of C items (same LUT layout; codes and item_scale point at
// the chunk): out float32 [B, C], out[b, n] = exp(logit[b, n] - lse[b]) * wgt[b]; B <= 4 G.
void softmax_ce_probs(const float* lut, int64_t G, int64_t D, int64_t K, const uint8_t* codes, int64_t C,
                      const float* item_scale, const float* lse, const float* wgt, int64_t B, int64_t S, float* out,
                      void* stream);

}  // namespace cuda
}  // namespace vqrec
