// Fused full-softmax cross-entropy over code-composed items (CPU).
//
// Items are code bags: e_n = (1/D) sum_d W[d, c_nd], e_hat_n = e_n / |e_n|. A query q_hat_b
// (already normalised by the caller) scores item n with
//   s_bn = q_hat_b . e_hat_n / t = alpha_n * sum_d LUT[b, d*K + c_nd],
//   LUT[b, d*K + k] = q_hat_b . W[d, k],   alpha_n = 1 / (t * D * |e_n|)
// so the logits are an ADC scan over a [B, D*K] look-up table: the N x H item matrix and the
// B x N logits matrix never exist. The caller builds LUT with one GEMM (Q_hat W_flat^T) and
// alpha with code_bag_norms (below); this file does the scan with a per-query log-sum-exp
// (forward) and the accumulation of dL/dLUT plus the per-item scalar
// rho_n = sum_b dlogit_bn * s_bn (backward), from which the caller gets dq_hat = A W_flat and
// dW = A^T Q_hat + the |e_n| term (code_bag_norm_grad, below).
//
// Two passes: forward computes lse per query; backward recomputes the logits from the same
// LUT (bit-identical) and forms dlogit = g_b * exp(s_bn - lse_b), minus g_b at the target.
//
// Parallelism and determinism: queries are processed in blocks of kCeLanes (16) lanes; one
// thread owns a whole block and walks all N items in order, so per-query results never depend
// on the thread count. rho is written per block ([blocks, N] partials) and reduced in block
// order; target corrections are applied afterwards in query order. No atomics.
//
// Shapes (row-major, contiguous):
//   lut       float32 [B, D*K]
//   codes     uint8 | int32 [N, D], values in [0, K)
//   alpha     float32 [N]
//   target    int64 [B]  item index in [0, N), or -1 = ignored query
//   extra     float32 [B] or nullptr: one extra logit per query (an extra negative item)
//   lse       float32 [B]  log-sum-exp over the N items (+ the extra logit)
//   tgt_logit float32 [B]  s_{b, target_b} (0 for ignored queries)
//   g         float32 [B]  dLoss/dloss_b (0 for ignored queries)
//   grad_lut  float32 [B, D*K]  dL/dLUT
//   rho       float32 [N]  sum_b dlogit_bn * s_bn
#pragma once
#include <cstdint>

#include "common/isa.h"
#include "cpu/code_bag.h"

namespace vqrec {

constexpr int64_t kCeLanes = 16;
constexpr int64_t kCeAccumulators = 4;  // partial sums per logit (sub-spaces d = r mod 4)
// items per backward chunk (their weights: 512 KiB). 4096 -> 8192 cut the backward scan ~12%
// (measured): half the sweeps over the block's gradient table, twice the items per bucket.
constexpr int64_t kCeChunk = 8192;

// The logit of item n for one query row of the LUT ([D*K]), summed in the kernels' order:
// ((acc0 + acc1) + (acc2 + acc3)) * alpha_n, acc_r = 0 + sum over d = r mod 4 in increasing d,
// so that loss = lse - target logit is consistent with the scan.
float ce_item_logit(const float* lut_row, int64_t n, int64_t D, int64_t K, const void* codes, CodeType ct,
                    const float* alpha);

// ---- entry points (validate, dispatch, target corrections; throw std::invalid_argument) ----
void code_softmax_ce_forward(const float* lut, int64_t B, int64_t D, int64_t K, const void* codes, CodeType ct,
                             int64_t N, const float* alpha, const int64_t* target, const float* extra, float* lse,
                             float* tgt_logit, int nthreads);
void code_softmax_ce_backward(const float* lut, int64_t B, int64_t D, int64_t K, const void* codes, CodeType ct,
                              int64_t N, const float* alpha, const int64_t* target, const float* lse, const float* g,
                              float* grad_lut, float* rho, int nthreads);

// ---- per-ISA float work (softmax_ce_kernels.cpp) ----
// Processes query blocks [blk_begin, blk_end) of 16 lanes each (query b = 16 * blk + lane; the
// lanes >= B of the last block score zero and write nothing). Forward writes lse for the lanes
// of those blocks. Backward writes grad_lut rows of those blocks
// (without the target term) and rho_part[(blk - blk_begin) * N + n] (partial rho per block).
// The backward pass gathers instead of scattering: items are bucketed once per chunk of
// kCeChunk items (bucket_idx / bucket_off below), and each (d, k) row of the block's gradient
// is the sum of its bucket's item weights, added once per chunk. A scatter (row += w for every
// item and sub-space) stalls on store-to-load hazards between nearby items with equal codes.
struct CeScanArgs {
  const float* lut;
  int64_t B, D, K, N;
  const void* codes;
  CodeType ct;
  const float* alpha;
  const float* extra;  // forward only, may be nullptr
  float* lse;          // forward: out; backward: in
  const float* g;      // backward
  float* grad_lut;     // backward
  float* rho_part;     // backward
  // backward: for chunk c (items [c*kCeChunk, ...)), the chunk-local item indices sorted by
  // (d, code) are bucket_idx[c*kCeChunk*D ...] and bucket (d, k) spans
  // [bucket_off[c*(D*K+1) + d*K + k], bucket_off[c*(D*K+1) + d*K + k + 1]) of them.
  const uint16_t* bucket_idx;
  const int32_t* bucket_off;
  int64_t blk_begin, blk_end;
  int nthreads;
};

// ---- code-bag norms and the norm gradient by lane chunks (softmax_ce_kernels.cpp) ----
// Both walk W in chunks of 16 hidden lanes as an L2-sized [D*K, 16] table and sum an item's
// D rows of it, 16 lanes at a time: the code bag without its [N, H] output and without
// reading W's rows from L3 for every item.
//   ce_item_sumsq: out[n] = |sum_d W[d, c_nd]|^2 (the code bag times D, squared), items in
//                  parallel; each item's sum has a fixed order.
//   ce_norm_grad:  out[d, k, :] += sum over items n with c_nd = k of scale[n] * sum_d' W[d', c_nd'],
//                  lane chunks in parallel (disjoint columns of out), items bucketed as in the
//                  backward scan (bucket_idx / bucket_off).
struct CeLaneArgs {
  const float* W;  // [D, K, H]
  int64_t D, K, H, N;
  const void* codes;
  CodeType ct;
  const float* scale;  // ce_norm_grad: [N]
  const uint16_t* bucket_idx;
  const int32_t* bucket_off;
  float* out;
  int nthreads;
};

// ---- entry points of the two above (validate, bucket, dispatch) ----
// code_bag_norms: norms[n] = |e_n|, e_n = (1/D) sum_d W[d, c_nd]. Below kLaneNormMinItems items
// it takes code bags in tiles instead: every thread lays out all H/16 lane tables (~4.5 ms at
// D*K = 8192, H = 300), more than the row gather costs for a small catalogue (measured: 0.1 vs
// 4.6 ms at 100 items, 3.5 vs 8.7 ms at 8,000, 6.9 vs 5.4 ms at 16,000).
// code_bag_norm_grad: dW += the code-bag backward of the rows gamma_n e_n, i.e.
//   dW[d, k, :] += (1/D) sum over items n with c_nd = k of gamma_n e_n.
constexpr int64_t kLaneNormMinItems = 12000;
void code_bag_norms(const float* W, int64_t D, int64_t K, int64_t H, const void* codes, CodeType ct, int64_t N,
                    float* norms, int nthreads);
void code_bag_norm_grad(const float* W, int64_t D, int64_t K, int64_t H, const void* codes, CodeType ct, int64_t N,
                        const float* gamma, float* dW, int nthreads);

VQ_DECLARE_ISA_FN(void, ce_item_sumsq, (const CeLaneArgs& a))
VQ_DECLARE_ISA_FN(void, ce_norm_grad, (const CeLaneArgs& a))
VQ_DECLARE_ISA_FN(void, ce_scan_forward, (const CeScanArgs& a))
VQ_DECLARE_ISA_FN(void, ce_scan_backward, (const CeScanArgs& a))

}  // namespace vqrec
