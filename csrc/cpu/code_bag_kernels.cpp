// Float work of the code bag, compiled once per ISA level (VQ_ISA = scalar | avx2 | avx512).
//
// The loops are written so that the compiler vectorises them with the level's flags: H is
// walked in chunks of kChunk floats whose accumulators stay in registers while the D code
// rows (or the rows of one segment) stream through. No globals, no std templates that could
// be shared with other translation units (their out-of-line copies would carry this level's
// instructions).
#include <cstring>

#include "cpu/code_bag.h"

#ifndef VQ_ISA
#error "VQ_ISA must name the ISA namespace"
#endif

namespace vqrec {
namespace VQ_ISA {
namespace {

constexpr int64_t kChunk = 64;  // 4 zmm / 8 ymm accumulators

inline int64_t code_at(const void* codes, CodeType ct, int64_t idx) {
  return ct == CodeType::u8 ? static_cast<const uint8_t*>(codes)[idx] : static_cast<const int32_t*>(codes)[idx];
}

// out[0:H] = scale * sum_d W[d, c_d, 0:H] with the D row pointers already resolved.
inline void mean_of_rows(const float* const* rows, int64_t D, int64_t H, float scale, float* out) {
  int64_t h0 = 0;
  for (; h0 + kChunk <= H; h0 += kChunk) {
    float acc[kChunk];
    for (int64_t j = 0; j < kChunk; ++j) acc[j] = rows[0][h0 + j];
    for (int64_t d = 1; d < D; ++d) {
      const float* r = rows[d] + h0;
      for (int64_t j = 0; j < kChunk; ++j) acc[j] += r[j];
    }
    for (int64_t j = 0; j < kChunk; ++j) out[h0 + j] = acc[j] * scale;
  }
  const int64_t w = H - h0;
  if (w > 0) {
    float acc[kChunk];
    for (int64_t j = 0; j < w; ++j) acc[j] = rows[0][h0 + j];
    for (int64_t d = 1; d < D; ++d) {
      const float* r = rows[d] + h0;
      for (int64_t j = 0; j < w; ++j) acc[j] += r[j];
    }
    for (int64_t j = 0; j < w; ++j) out[h0 + j] = acc[j] * scale;
  }
}

}  // namespace

void gather_mean(const GatherArgs& a) {
  const int64_t D = a.D, K = a.K, H = a.H;
#pragma omp parallel num_threads(a.nthreads)
  {
    // Per-thread table of row pointers (D is small; a VLA-free fixed cap with heap fallback).
    const float* stack_rows[256];
    const float** rows = stack_rows;
    const float** heap_rows = nullptr;
    if (D > 256) rows = heap_rows = new const float*[D];
#pragma omp for schedule(static)
    for (int64_t r = 0; r < a.R; ++r) {
      float* o = a.out + r * H;
      int64_t code_row = r;
      if (a.row_of != nullptr) {
        code_row = a.row_of[r];
        if (code_row == a.skip_row) {
          std::memset(o, 0, sizeof(float) * H);
          continue;
        }
      }
      const int64_t base = code_row * D;
      for (int64_t d = 0; d < D; ++d) rows[d] = a.W + (d * K + code_at(a.codes, a.ct, base + d)) * H;
      if (D == 0) {
        std::memset(o, 0, sizeof(float) * H);
        continue;
      }
      mean_of_rows(rows, D, H, a.scale, o);
    }
    delete[] heap_rows;
  }
}

void segment_sum(const SegmentSumArgs& a) {
  const int64_t H = a.H;
#pragma omp parallel for schedule(dynamic, 16) num_threads(a.nthreads)
  for (int64_t s = 0; s < a.S; ++s) {
    float* o = a.dst + s * H;
    const int64_t b = a.offsets[s], e = a.offsets[s + 1];
    if (b == e) {
      std::memset(o, 0, sizeof(float) * H);
      continue;
    }
    int64_t h0 = 0;
    for (; h0 + kChunk <= H; h0 += kChunk) {
      float acc[kChunk];
      const float* first = a.src + static_cast<int64_t>(a.perm[b]) * H + h0;
      for (int64_t j = 0; j < kChunk; ++j) acc[j] = first[j];
      for (int64_t i = b + 1; i < e; ++i) {
        const float* r = a.src + static_cast<int64_t>(a.perm[i]) * H + h0;
        for (int64_t j = 0; j < kChunk; ++j) acc[j] += r[j];
      }
      for (int64_t j = 0; j < kChunk; ++j) o[h0 + j] = acc[j] * a.scale;
    }
    const int64_t w = H - h0;
    if (w > 0) {
      float acc[kChunk];
      const float* first = a.src + static_cast<int64_t>(a.perm[b]) * H + h0;
      for (int64_t j = 0; j < w; ++j) acc[j] = first[j];
      for (int64_t i = b + 1; i < e; ++i) {
        const float* r = a.src + static_cast<int64_t>(a.perm[i]) * H + h0;
        for (int64_t j = 0; j < w; ++j) acc[j] += r[j];
      }
      for (int64_t j = 0; j < w; ++j) o[h0 + j] = acc[j] * a.scale;
    }
  }
}

}  // namespace VQ_ISA
}  // namespace vqrec
