// Float work of the code bag, compiled once per ISA level (VQ_ISA = scalar | avx2 | avx512).
//
// One source for every level: the loops use a 16-float vector type that the level's flags
// lower to zmm/ymm/xmm registers. H is walked in chunks whose accumulators stay in registers
// while the D code rows (or the rows of one segment) stream through. No globals, no std templates that could
// be shared with other translation units (their out-of-line copies would carry this level's
// instructions).
#include <cstdint>
#include <cstring>
#if defined(__AVX512F__)
#include <immintrin.h>
#elif defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "cpu/code_bag.h"
#include "common/omp_thread.h"

#ifndef VQ_ISA
#error "VQ_ISA must name the ISA namespace"
#endif

namespace vqrec {
namespace VQ_ISA {
namespace {

// 16 floats as one value: GCC/Clang lower it to 1 zmm (avx512), 2 ymm (avx2) or 4 xmm
// (scalar level = SSE2 baseline). Accumulators of this type stay in registers, which plain
// float arrays did not (they were spilled to the stack and reloaded every step).
typedef float v16 __attribute__((vector_size(64)));
constexpr int64_t kLanes = 16;

inline v16 load16(const float* p) {
  v16 v;
  __builtin_memcpy(&v, p, sizeof(v));
  return v;
}
inline void store16(float* p, v16 v) { __builtin_memcpy(p, &v, sizeof(v)); }

inline int64_t code_at(const void* codes, CodeType ct, int64_t idx) {
  return ct == CodeType::u8 ? static_cast<const uint8_t*>(codes)[idx] : static_cast<const int32_t*>(codes)[idx];
}

// out[0:H] = scale * sum_{i < n} row(i)[0:H] (n >= 1), rows added in order i = 0, 1, ..., 64
// floats (4 accumulators) at a time. row(i) gives the i-th row's pointer: the gather passes its
// D code rows, the segment sums a segment's permuted source rows. (A template with internal
// linkage: each ISA unit keeps its own copy.)
template <typename RowAt>
inline void sum_rows(RowAt row, int64_t n, int64_t H, float scale, float* out) {
  int64_t h0 = 0;
  for (; h0 + 4 * kLanes <= H; h0 += 4 * kLanes) {
    const float* f = row(0) + h0;
    v16 a0 = load16(f), a1 = load16(f + 16), a2 = load16(f + 32), a3 = load16(f + 48);
    for (int64_t i = 1; i < n; ++i) {
      const float* r = row(i) + h0;
      a0 += load16(r);
      a1 += load16(r + 16);
      a2 += load16(r + 32);
      a3 += load16(r + 48);
    }
    store16(out + h0, a0 * scale);
    store16(out + h0 + 16, a1 * scale);
    store16(out + h0 + 32, a2 * scale);
    store16(out + h0 + 48, a3 * scale);
  }
  for (; h0 + kLanes <= H; h0 += kLanes) {
    v16 a = load16(row(0) + h0);
    for (int64_t i = 1; i < n; ++i) a += load16(row(i) + h0);
    store16(out + h0, a * scale);
  }
  if (h0 == H) return;
#if defined(__AVX512F__)
  // Tail (H % 16 columns, 12 at H = 300) in one masked vector: the scalar loop cost a third
  // of the work at H = 300. Same order of additions as the scalar loop and the full lanes.
  const __mmask16 m = static_cast<__mmask16>((1u << (H - h0)) - 1);
  __m512 a = _mm512_maskz_loadu_ps(m, row(0) + h0);
  for (int64_t i = 1; i < n; ++i) a = _mm512_add_ps(a, _mm512_maskz_loadu_ps(m, row(i) + h0));
  _mm512_mask_storeu_ps(out + h0, m, _mm512_mul_ps(a, _mm512_set1_ps(scale)));
#else
  for (; h0 < H; ++h0) {  // tail: same order of additions as the vector lanes
    float a = row(0)[h0];
    for (int64_t i = 1; i < n; ++i) a += row(i)[h0];
    out[h0] = a * scale;
  }
#endif
}

// Zeroes a padding row. Padded batches are mostly padding (a [2048, 50, 300] batch of real
// histories holds ~8k real rows of 102k): streaming stores skip the read-for-ownership of
// lines that are only ever written, halving the memory traffic of the zeroing.
inline void zero_row(float* o, int64_t H) {
#if defined(__SSE2__)
  if ((reinterpret_cast<uintptr_t>(o) & 15) == 0 && (H & 3) == 0) {
    const __m128 z = _mm_setzero_ps();
    for (int64_t h = 0; h < H; h += 4) _mm_stream_ps(o + h, z);
    return;
  }
#endif
  std::memset(o, 0, sizeof(float) * H);
}

inline void store_fence() {
#if defined(__SSE2__)
  _mm_sfence();
#endif
}

}  // namespace

void gather_mean(const GatherArgs& a) {
  const int64_t D = a.D, K = a.K, H = a.H;
  // Row-pointer tables for D > 256 (rare) are allocated before the parallel region (see
  // Scratch); otherwise each thread's table is on its stack.
  const Scratch heap_rows(D > 256 ? sizeof(const float*) * static_cast<size_t>(D * a.nthreads) : 0);
#pragma omp parallel num_threads(a.nthreads)
  {
    const float* stack_rows[256];
    const float** rows = D > 256 ? reinterpret_cast<const float**>(heap_rows.data()) + D * omp_thread_id() : stack_rows;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < a.R; ++r) {
      const int64_t base = (a.row_of != nullptr ? a.row_of[r] : r) * D;
      for (int64_t d = 0; d < D; ++d) rows[d] = a.W + (d * K + code_at(a.codes, a.ct, base + d)) * H;
      // The D rows are scattered over W (L3-resident for the usual 9.8 MB table): start the
      // next output row's first lines early; the hardware prefetcher follows each row.
      if (r + 1 < a.R) {
        const int64_t next = (a.row_of != nullptr ? a.row_of[r + 1] : r + 1) * D;
        for (int64_t d = 0; d < D; ++d) __builtin_prefetch(a.W + (d * K + code_at(a.codes, a.ct, next + d)) * H);
      }
      sum_rows([rows](int64_t d) { return rows[d]; }, D, H, a.scale, a.out + r * H);
    }
  }
}

void place_rows(const PlaceRowsArgs& a) {
  const int64_t H = a.H;
#pragma omp parallel for schedule(static) num_threads(a.nthreads)
  for (int64_t t = 0; t < a.T; ++t) {
    float* o = a.out + t * H;
    if (a.src_of[t] >= 0)
      std::memcpy(o, a.src + static_cast<int64_t>(a.src_of[t]) * H, sizeof(float) * H);
    else if (a.already_zero == nullptr || !a.already_zero[t])
      zero_row(o, H);
  }
  store_fence();
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
    const float* src = a.src;
    const int32_t* perm = a.perm + b;
    sum_rows([src, perm, H](int64_t i) { return src + static_cast<int64_t>(perm[i]) * H; }, e - b, H, a.scale, o);
  }
}

}  // namespace VQ_ISA
}  // namespace vqrec
