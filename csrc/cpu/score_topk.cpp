// ADC top-k entry points: argument checks, per-thread heap storage, dispatch of the scan to the
// active ISA level (score_topk_kernels.cpp), and the final merge of the per-thread heaps.
#include "cpu/score_topk.h"

#include <algorithm>
#include <cmath>
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

void check_shapes(const float* lut, int64_t B, int64_t D, int64_t K, const void* codes, int64_t N,
                  const float* item_scale, int nthreads) {
  require(B >= 0 && N >= 0, "score_topk: need B >= 0 and N >= 0");
  require(D >= 1 && K >= 1, "score_topk: need D >= 1 and K >= 1 (got D=" + std::to_string(D) + ", K=" +
                                std::to_string(K) + ")");
  check_thread_count(nthreads, "score_topk");
  require(lut != nullptr || B == 0, "score_topk: lut is a null pointer");
  require(codes != nullptr || N == 0, "score_topk: codes is a null pointer");
  if (item_scale != nullptr)
    for (int64_t n = 0; n < N; ++n)
      if (!(item_scale[n] >= 0.0f) || std::isinf(item_scale[n]))
        throw std::invalid_argument("item_scale[" + std::to_string(n) + "] = " + std::to_string(item_scale[n]) +
                                    " must be finite and >= 0");
}

void check_exclusions(const int64_t* off, const int64_t* ids, int64_t B, int64_t N) {
  if (off == nullptr) return;
  require(off[0] == 0, "exclude: CSR offsets must start at 0");
  for (int64_t q = 0; q < B; ++q) {
    require(off[q + 1] >= off[q], "exclude: CSR offsets must be non-decreasing (row " + std::to_string(q) + ")");
    for (int64_t i = off[q]; i < off[q + 1]; ++i) {
      require(ids[i] >= 0 && ids[i] < N, "exclude: row " + std::to_string(q) + " holds item id " +
                                             std::to_string(ids[i]) + " outside [0, " + std::to_string(N) + ")");
      require(i == off[q] || ids[i] > ids[i - 1],
              "exclude: row " + std::to_string(q) + " must be sorted ascending without repeats");
    }
  }
}

}  // namespace

// The faster quantized scan for the active level, B queries and N items. With AVX-512 VBMI byte
// permutes the block scan wins for small batches, the query-major scan (whose fixed costs are
// higher: its tables) from about 28 queries on, or 48 below 200k items. Native times on a 2-core
// Zen 4 (CodeIndex scales, k = 50, session 8 code), blocks / queries in ms: N = 1e6, B = 16 / 24
// / 28 / 32 / 48: 9.0 / 11.9, 12.0 / 12.9, 13.7 / 14.8 (16.4 / 14.0 in a second run), 15.4 /
// 13.3, 21.6 / 14.5; N = 1e5, B = 32 / 64 / 128: 2.9 / 3.3, 5.6 / 4.6, 11.1 / 10.4; N = 3e5,
// B = 32 / 64: 5.9 / 5.4, 12.6 / 7.4; N = 3e4, B = 64 / 256: 3.5-3.9 / 3.7, 13.6-15.3 / 13.4-13.5.
// Without VBMI the block scan looks codes up one byte at a time and the query-major scan is 5-10x
// faster everywhere (AVX2, N = 1e6, B = 1 / 256: 11.8 / 128 ms against 16.1 / 1408, session 7).
ScanMode pick_quantized_scan(int64_t B, int64_t N) {
  constexpr int64_t kMinBatch = 28, kMinBatchFewItems = 48, kFewItems = 200000;
  const bool small = B < kMinBatch || (B < kMinBatchFewItems && N < kFewItems);
  return active_level() == IsaLevel::avx512 && small ? ScanMode::quantized_blocks : ScanMode::quantized_queries;
}

void score_topk(const float* lut, int64_t B, int64_t D, int64_t K, const void* codes, CodeType ct, int64_t N,
                const float* item_scale, const int64_t* excl_off, const int64_t* excl_ids, int64_t k, ScanMode mode,
                float* out_scores, int64_t* out_ids, int nthreads) {
  check_shapes(lut, B, D, K, codes, N, item_scale, nthreads);
  require(k >= 1, "score_topk: k must be >= 1, got " + std::to_string(k));
  check_codes_in_range(codes, ct, N, D, K, "codes");
  check_exclusions(excl_off, excl_ids, B, N);
  if (mode != ScanMode::exact) {
    require(ct == CodeType::u8 && K <= 256, "score_topk: the quantized scan needs uint8 codes and K <= 256");
    require(D * 127 < 65536, "score_topk: the quantized scan needs D <= 516");
  }
  if (B == 0) return;
  bool finite = true;
  VQ_DISPATCH(all_finite, lut, B * D * K, 1, &finite);  // one thread: cheaper than a sync
  require(finite, "lut: the query LUTs hold Inf or NaN");
  const int64_t kk = std::min(k, N);  // result columns actually searched; the rest stay empty
  for (int64_t i = 0; i < B * k; ++i) {
    out_scores[i] = -std::numeric_limits<float>::infinity();
    out_ids[i] = -1;
  }
  if (kk == 0) return;
  if (mode == ScanMode::quantized) mode = pick_quantized_scan(B, N);

  const size_t slots = static_cast<size_t>(nthreads) * static_cast<size_t>(B);
  std::vector<float> hs(slots * kk);
  std::vector<int64_t> hi(slots * kk);
  std::vector<int64_t> cnt(slots, 0);
  std::vector<float> scratch;
  std::unique_ptr<uint8_t[]> qlut;  // every byte written by quantize_luts: no zero-fill
  std::vector<float> qstep, qoffset, published;
  ScanArgs a{lut, nullptr, nullptr, nullptr, B, D, K, N, codes, ct, item_scale, excl_off, excl_ids, kk,
             hs.data(), hi.data(), cnt.data(), nullptr, nthreads};
  if (mode == ScanMode::exact) {
    scratch.resize(static_cast<size_t>(D * K * kQueryChunk));
    a.scratch = scratch.data();
  } else {
    qlut.reset(new uint8_t[static_cast<size_t>(B * D * 256)]);
    qstep.resize(static_cast<size_t>(B));
    qoffset.resize(static_cast<size_t>(B));
    VQ_DISPATCH(quantize_luts, lut, B, D, K, mode == ScanMode::quantized_blocks, qlut.get(), qstep.data(),
                qoffset.data(), nthreads);
    published.assign(slots, -std::numeric_limits<float>::infinity());
    a.qlut = qlut.get();
    a.qstep = qstep.data();
    a.qoffset = qoffset.data();
    a.published = published.data();
  }
  if (mode == ScanMode::exact)
    VQ_DISPATCH(scan_topk_exact, a);
  else if (mode == ScanMode::quantized_blocks)
    VQ_DISPATCH(scan_topk_quantized, a);
  else
    VQ_DISPATCH(scan_topk_quantized_qm, a);

  // Merge: each query's candidates from every thread, best first; ties broken by id so the
  // output does not depend on how items were split between threads.
  // Queries are independent: split them between the threads (1 ms of 100 at B = 256 on one).
#pragma omp parallel num_threads(nthreads)
  {
    std::vector<std::pair<float, int64_t>> cand;
#pragma omp for schedule(static)
    for (int64_t q = 0; q < B; ++q) {
      cand.clear();
      for (int t = 0; t < nthreads; ++t) {
        const size_t slot = static_cast<size_t>(t) * B + q;
        for (int64_t i = 0; i < cnt[slot]; ++i) cand.emplace_back(hs[slot * kk + i], hi[slot * kk + i]);
      }
      const size_t m = std::min(cand.size(), static_cast<size_t>(kk));
      auto better = [](const std::pair<float, int64_t>& x, const std::pair<float, int64_t>& y) {
        return x.first > y.first || (x.first == y.first && x.second < y.second);
      };
      std::partial_sort(cand.begin(), cand.begin() + m, cand.end(), better);
      for (size_t i = 0; i < m; ++i) {
        out_scores[q * k + i] = cand[i].first;
        out_ids[q * k + i] = cand[i].second;
      }
    }
  }
}

void score_all(const float* lut, int64_t B, int64_t D, int64_t K, const void* codes, CodeType ct, int64_t N,
               const float* item_scale, float* out, int nthreads) {
  check_shapes(lut, B, D, K, codes, N, item_scale, nthreads);
  check_codes_in_range(codes, ct, N, D, K, "codes");
  if (B == 0 || N == 0) return;
  require(out != nullptr, "score_all: out is a null pointer");
  bool finite = true;
  VQ_DISPATCH(all_finite, lut, B * D * K, 1, &finite);  // one thread: cheaper than a sync
  require(finite, "lut: the query LUTs hold Inf or NaN");
  ScanArgs a{lut, nullptr, nullptr, nullptr, B, D, K, N, codes, ct, item_scale, nullptr, nullptr, 0,
             nullptr, nullptr, nullptr, nullptr, nthreads};
  VQ_DISPATCH(scan_dense, a, out);
}

}  // namespace vqrec
