// ADC scans (exact float and quantized), compiled once per ISA level (VQ_ISA = scalar | avx2 |
// avx512). Shapes are documented in score_topk.h. Only block_sums has hand-written intrinsics
// (AVX-512 VBMI byte permutes); everything else is plain loops the compiler vectorises with the
// level's flags. The heaps, exclusions and exact scoring of candidates live in score_topk_scan.h.
#include "cpu/score_topk_scan.h"

namespace vqrec {
namespace VQ_ISA {
namespace {

constexpr int64_t QB = kQueryChunk;
constexpr int64_t kBlock = 64;        // items per quantized block (one zmm of codes per sub-space)
constexpr int64_t kSuperBlocks = 60;  // blocks whose codes a thread transposes at once (L2-sized)
constexpr int kGroup = 6;             // blocks scored per pass of one query's tables

// ---------------------------------------------------------------- quantized block test
// For one query and kGroup consecutive blocks of 64 items: bit j of hits[g] is set when item
// perm(j) of block g may reach the query's threshold, i.e.
//   (step * U + offset) * scale >= bound,   U = sum_d tab[d, code],
// perm(j) = 2j for j < 32 and 2(j - 32) + 1 otherwise (the order the AVX-512 path produces),
// and U[g][j] receives that item's U.
//   ct   [kGroup, D, 64] transposed codes of the blocks
//   tab  [D, 256] the query's uint8 table of each sub-space (layout: see quantize_luts)
//   sc   [kGroup, 64] item scales in perm order (NaN for padding items: fails every test)
// The loop order keeps one query's two sub-space tables (8 zmm) in registers while kGroup
// blocks stream past, so a code lookup costs no table load.
struct QueryBound {
  const uint8_t* tab;
  float step, off, bound;
};

#if VQ_SCORE_VBMI
// Mask of the lanes of 32 uint16 sums (lane i -> bit i) whose bound passes.
inline uint32_t test_sums(__m512i u16, const QueryBound& qb, const float* sc) {
  const __m512 st = _mm512_set1_ps(qb.step), of = _mm512_set1_ps(qb.off), bd = _mm512_set1_ps(qb.bound);
  const __m512 lo = _mm512_cvtepi32_ps(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(u16)));
  const __m512 hi = _mm512_cvtepi32_ps(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(u16, 1)));
  const __mmask16 m0 =
      _mm512_cmp_ps_mask(_mm512_mul_ps(_mm512_fmadd_ps(st, lo, of), _mm512_loadu_ps(sc)), bd, _CMP_GE_OQ);
  const __mmask16 m1 =
      _mm512_cmp_ps_mask(_mm512_mul_ps(_mm512_fmadd_ps(st, hi, of), _mm512_loadu_ps(sc + 16)), bd, _CMP_GE_OQ);
  return static_cast<uint32_t>(m0) | (static_cast<uint32_t>(m1) << 16);
}

// Byte look-up in a 256-entry table held in four registers as t[0..1] = entries 0-127 and
// t[2..3] = (entry c + 128) - (entry c) mod 256: one permute gives entry (idx & 127), and a
// second, zeroed where the code is below 128, adds the difference. Measured ~14% faster than
// selecting between two permutes with a blend (the blend competes with the permutes).
inline __m512i lookup(const __m512i* t, __m512i idx) {
  return _mm512_add_epi8(_mm512_permutex2var_epi8(t[0], idx, t[1]),
                         _mm512_maskz_permutex2var_epi8(_mm512_movepi8_mask(idx), t[2], idx, t[3]));
}

// Codes of 8 consecutive items at D = 32 (256 contiguous bytes) into the transposed block
// layout: byte r of dst[d * kBlock .. + 8] = code of item r in sub-space d. Per group of 8
// sub-spaces: two 2-source qword permutes and a lane shuffle gather the 8 items' 8-byte
// pieces, one byte permute transposes that 8 x 8 byte tile, and a scatter writes its 8 rows.
// About 6x fewer instructions than the byte-by-byte copy (which took ~6% of the scan).
inline void transpose8x32(const uint8_t* src, uint8_t* dst) {
  const __m512i z0 = _mm512_loadu_si512(src), z1 = _mm512_loadu_si512(src + 64);
  const __m512i z2 = _mm512_loadu_si512(src + 128), z3 = _mm512_loadu_si512(src + 192);
  // tile[s * 8 + r] = piece[r * 8 + s]: the 8 x 8 byte transpose
  alignas(64) static constexpr uint8_t kTile[64] = {
      0, 8,  16, 24, 32, 40, 48, 56, 1, 9,  17, 25, 33, 41, 49, 57, 2, 10, 18, 26, 34, 42,
      50, 58, 3, 11, 19, 27, 35, 43, 51, 59, 4, 12, 20, 28, 36, 44, 52, 60, 5, 13, 21, 29,
      37, 45, 53, 61, 6, 14, 22, 30, 38, 46, 54, 62, 7, 15, 23, 31, 39, 47, 55, 63};
  const __m512i tile = _mm512_load_si512(kTile);
  const __m512i rows = _mm512_set_epi64(7 * kBlock, 6 * kBlock, 5 * kBlock, 4 * kBlock, 3 * kBlock, 2 * kBlock,
                                        kBlock, 0);
  for (int h = 0; h < 4; ++h) {
    // item r's qword h sits in z[r / 2] at qword (r % 2) * 4 + h; index bit 3 picks the 2nd source
    const __m512i pick = _mm512_set_epi64(0, 0, 0, 0, 12 + h, 8 + h, 4 + h, h);
    const __m512i lo = _mm512_permutex2var_epi64(z0, pick, z1), hi = _mm512_permutex2var_epi64(z2, pick, z3);
    const __m512i pieces = _mm512_shuffle_i64x2(lo, hi, 0x44);  // items 0-3 from lo, 4-7 from hi
    _mm512_i64scatter_epi64(dst + 8 * h * kBlock, rows, _mm512_permutexvar_epi8(tile, pieces), 1);
  }
}

inline void block_hits(const uint8_t* ct, const QueryBound& qb, int64_t D, const float* sc, uint64_t* hits,
                       uint16_t (*U)[kBlock]) {
  // Two sub-spaces are added in bytes (each entry <= 127, so a pair <= 254; the byte adds wrap
  // mod 256, which the table layout relies on and which leaves the pair sum exact), then
  // accumulated in 16-bit lanes: `raw` sums whole 16-bit lanes (low byte + 256 * high byte,
  // wrapping) and `hi` sums the high bytes, so the low-byte sum is raw - 256 * hi (mod 2^16,
  // exact while D * 127 < 2^16). Two adds and a shift per pair instead of widening both halves.
  __m512i raw[kGroup], hi[kGroup];
  for (int g = 0; g < kGroup; ++g) raw[g] = hi[g] = _mm512_setzero_si512();
  const int64_t stride = D * kBlock;
  int64_t d = 0;
  for (; d + 1 < D; d += 2) {
    __m512i t0[4], t1[4];
    for (int i = 0; i < 4; ++i) {
      t0[i] = _mm512_loadu_si512(qb.tab + d * 256 + 64 * i);
      t1[i] = _mm512_loadu_si512(qb.tab + (d + 1) * 256 + 64 * i);
    }
    for (int g = 0; g < kGroup; ++g) {
      const __m512i v = _mm512_add_epi8(lookup(t0, _mm512_loadu_si512(ct + g * stride + d * kBlock)),
                                        lookup(t1, _mm512_loadu_si512(ct + g * stride + (d + 1) * kBlock)));
      raw[g] = _mm512_add_epi16(raw[g], v);
      hi[g] = _mm512_add_epi16(hi[g], _mm512_srli_epi16(v, 8));
    }
  }
  if (d < D) {
    __m512i t0[4];
    for (int i = 0; i < 4; ++i) t0[i] = _mm512_loadu_si512(qb.tab + d * 256 + 64 * i);
    for (int g = 0; g < kGroup; ++g) {
      const __m512i v = lookup(t0, _mm512_loadu_si512(ct + g * stride + d * kBlock));
      raw[g] = _mm512_add_epi16(raw[g], v);
      hi[g] = _mm512_add_epi16(hi[g], _mm512_srli_epi16(v, 8));
    }
  }
  for (int g = 0; g < kGroup; ++g) {
    const __m512i even = _mm512_sub_epi16(raw[g], _mm512_slli_epi16(hi[g], 8));
    const uint64_t me = test_sums(even, qb, sc + g * kBlock);
    const uint64_t mo = test_sums(hi[g], qb, sc + g * kBlock + 32);
    hits[g] = me | (mo << 32);
    _mm512_storeu_si512(U[g], even);
    _mm512_storeu_si512(U[g] + 32, hi[g]);
  }
}
#else
inline void block_hits(const uint8_t* ct, const QueryBound& qb, int64_t D, const float* sc, uint64_t* hits,
                       uint16_t (*U)[kBlock]) {
  for (int g = 0; g < kGroup; ++g) {
    const uint8_t* cg = ct + g * D * kBlock;
    uint16_t acc[kBlock] = {0};
    for (int64_t d = 0; d < D; ++d) {
      const uint8_t* t = qb.tab + d * 256;
      const uint8_t* c = cg + d * kBlock;
      for (int64_t i = 0; i < kBlock; ++i) acc[i] = static_cast<uint16_t>(acc[i] + t[c[i]]);
    }
    uint64_t m = 0;
    const float* s = sc + g * kBlock;
    for (int64_t j = 0; j < kBlock; ++j) {
      const int64_t i = j < 32 ? 2 * j : 2 * (j - 32) + 1;
      U[g][j] = acc[i];
      if ((qb.step * acc[i] + qb.off) * s[j] >= qb.bound) m |= uint64_t(1) << j;
    }
    hits[g] = m;
  }
}
#endif

inline int64_t block_item(int64_t j) { return j < 32 ? 2 * j : 2 * (j - 32) + 1; }

// Items base .. base + 63 of uint8 codes [N, D] into cb [D, 64] (cb[d * 64 + i] = code of item
// base + i in sub-space d; 0 past N).
inline void transpose_block(const uint8_t* codes, int64_t N, int64_t D, int64_t base, uint8_t* cb) {
#if VQ_SCORE_VBMI
  if (D == 32 && base + kBlock <= N) {  // a full block at the paper's D: vectorised
    for (int64_t g = 0; g < kBlock; g += 8) transpose8x32(codes + (base + g) * D, cb + g);
    return;
  }
#endif
  for (int64_t i = 0; i < kBlock; ++i) {
    const int64_t n = base + i;
    for (int64_t d = 0; d < D; ++d) cb[d * kBlock + i] = n < N ? codes[n * D + d] : 0;
  }
}


}  // namespace

// ---------------------------------------------------------------- exact scan
void scan_topk_exact(const ScanArgs& a) {
  const int64_t D = a.D, K = a.K, N = a.N, B = a.B;
  const float inv_d = 1.0f / static_cast<float>(D);
  float* LT = a.scratch;  // [D, K, QB]: query chunk's LUTs, transposed so one load serves QB queries
  for (int64_t q0 = 0; q0 < B; q0 += QB) {
    const int64_t nq = B - q0 < QB ? B - q0 : QB;
#pragma omp parallel for schedule(static) num_threads(a.nthreads)
    for (int64_t dk = 0; dk < D * K; ++dk)
      for (int64_t j = 0; j < QB; ++j) LT[dk * QB + j] = j < nq ? a.lut[(q0 + j) * D * K + dk] : 0.0f;

#pragma omp parallel num_threads(a.nthreads)
    {
      const int t = omp_thread_id();
      float th[QB];
      for (int64_t j = 0; j < QB; ++j) {
        const int64_t slot = static_cast<int64_t>(t) * B + q0 + j;
        th[j] = j < nq ? heap_threshold(a.heap_scores + slot * a.k, a.heap_count[slot], a.k) : kInf;
      }
#pragma omp for schedule(dynamic, 1024)
      for (int64_t n = 0; n < N; ++n) {
        float acc[QB] = {0};
        for (int64_t d = 0; d < D; ++d) {
          const float* row = LT + (d * K + code_at(a.codes, a.ct, n * D + d)) * QB;
          for (int64_t j = 0; j < QB; ++j) acc[j] += row[j];
        }
        const float f = item_scale(a, n) * inv_d;
        int hits = 0;  // one vector compare (an int count vectorises; a bool `or` does not)
        for (int64_t j = 0; j < QB; ++j) hits += acc[j] * f > th[j] ? 1 : 0;
        if (hits == 0) continue;  // the heaps are touched only on a hit
        for (int64_t j = 0; j < nq; ++j) {
          const float s = finish(acc[j], item_scale(a, n), inv_d);
          if (s > th[j]) th[j] = offer(a, t, q0 + j, n, s);
        }
      }
    }
  }
}

// ---------------------------------------------------------------- quantized block scan
void scan_topk_quantized(const ScanArgs& a) {
  const int64_t D = a.D, N = a.N, B = a.B;
  const int64_t nblocks = (N + kBlock - 1) / kBlock;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  // Per thread: its transposed codes ([blocks, D, 64] bytes), then its scales (allocated before
  // the parallel region, see Scratch).
  const int64_t code_bytes = kSuperBlocks * D * kBlock;
  const int64_t per_thread = code_bytes + static_cast<int64_t>(sizeof(float)) * kSuperBlocks * kBlock;
  const Scratch buffers(static_cast<size_t>(a.nthreads * per_thread));
#pragma omp parallel num_threads(a.nthreads)
  {
    const int t = omp_thread_id();
    uint8_t* ct = reinterpret_cast<uint8_t*>(buffers.data() + t * per_thread);  // [blocks, D, 64] codes
    float* sc = reinterpret_cast<float*>(buffers.data() + t * per_thread + code_bytes);  // [blocks, 64] scales
    // Superblocks are handed out dynamically: the heaps are per thread, so any split is valid,
    // and a thread that the OS descheduled does not hold the others up.
#pragma omp for schedule(dynamic, 1)
    for (int64_t sb = 0; sb < nblocks; sb += kSuperBlocks) {
      const int64_t nb = nblocks - sb < kSuperBlocks ? nblocks - sb : kSuperBlocks;
      const int64_t nb_padded = (nb + kGroup - 1) / kGroup * kGroup;
      // Transpose the items to [block, d, item] and lay out their scales; padding items (past
      // N, or filling the last group) get code 0 and scale NaN, which fails every bound test.
      for (int64_t b = 0; b < nb_padded; ++b) {
        const int64_t base = (sb + b) * kBlock;
        transpose_block(static_cast<const uint8_t*>(a.codes), N, D, base, ct + b * D * kBlock);
        for (int64_t j = 0; j < kBlock; ++j) {
          const int64_t n = base + block_item(j);
          sc[b * kBlock + j] = n < N ? item_scale(a, n) : nan;
        }
      }
      for (int64_t q = 0; q < B; ++q) {
        float best = published_best(a, q);
        QueryBound qb{a.qlut + q * D * 256, a.qstep[q], a.qoffset[q], bound_of(best, D)};
        ExactBatch batch;
        // Scores the batch; a rising k-th best score raises the bound and is published.
        auto score = [&]() {
          batch.score(a, t);
          for (int i = 0; i < batch.m; ++i)
            if (batch.thr[i] > best) {
              best = batch.thr[i];
              publish(a, t, q, best);
              qb.bound = bound_of(best, D);
            }
          batch.m = 0;
        };
        uint64_t hits[kGroup];
        alignas(64) uint16_t U[kGroup][kBlock];
        for (int64_t g = 0; g < nb_padded; g += kGroup) {
          block_hits(ct + g * D * kBlock, qb, D, sc + g * kBlock, hits, U);
          for (int64_t h = 0; h < kGroup; ++h) {
            for (uint64_t bits = hits[h]; bits != 0; bits &= bits - 1) {  // rare once the heaps are full
              const int64_t j = __builtin_ctzll(bits);
              const float s = sc[(g + h) * kBlock + j];
              const float upper = qb.step * U[h][j] + qb.off;
              // The mask used the bound from the start of the group; it rises fast while the
              // heaps fill, so test again.
              if (!(upper * s >= qb.bound)) continue;
              if (batch.add(q, (sb + g + h) * kBlock + block_item(j))) score();
            }
          }
          if (batch.m > 0) score();
          const float other = published_best(a, q);
          if (other > best) {
            best = other;
            qb.bound = bound_of(best, D);
          }
        }
      }
    }
  }
}

// ---------------------------------------------------------------- LUT preparation
void all_finite(const float* x, int64_t n, int nthreads, bool* ok) {
  // Inf and NaN are the floats whose exponent bits are all set. Counting them is an integer
  // reduction the compiler vectorises freely; the float sum of x * 0 used before could not be
  // reordered, so it ran one dependent add per element (1.7 ms for B = 256's 8 MB of LUTs).
  int64_t bad = 0;
#pragma omp parallel for reduction(+ : bad) schedule(static) num_threads(nthreads)
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, x + i, sizeof(bits));
    bad += (bits & 0x7f800000u) == 0x7f800000u;
  }
  *ok = bad == 0;
}

namespace {
}  // namespace

void quantize_luts(const float* lut, int64_t B, int64_t D, int64_t K, bool block_layout, uint8_t* qlut, float* qstep,
                   float* qoffset, int nthreads) {
#pragma omp parallel for schedule(static) num_threads(nthreads)
  for (int64_t q = 0; q < B; ++q) {
    const float* l = lut + q * D * K;
    // Per-sub-space bias (minimum), one step per query (largest span / 127).
    float span = 0.0f, magnitude = 0.0f;
    double bias_sum = 0.0;
    float sub_lo[516];  // score_topk admits the quantized scans for D <= 516 only
    for (int64_t d = 0; d < D; ++d) {
      float lo, hi;
      range_of(l + d * K, K, &lo, &hi);
      sub_lo[d] = lo;
      span = hi - lo > span ? hi - lo : span;
      magnitude += std::fabs(lo) > std::fabs(hi) ? std::fabs(lo) : std::fabs(hi);
      bias_sum += lo;
    }
    const float step = span > 0.0f ? span / static_cast<float>(kQuantMax) : 1.0f;
    const float inv = 1.0f / step;
    for (int64_t d = 0; d < D; ++d) {
      const float lo = sub_lo[d];
      uint8_t* o = qlut + (q * D + d) * 256;
      for (int64_t c = 0; c < K; ++c) {
        float u = std::nearbyint((l[d * K + c] - lo) * inv);
        u = u < 0.0f ? 0.0f : (u > static_cast<float>(kQuantMax) ? static_cast<float>(kQuantMax) : u);
        o[c] = static_cast<uint8_t>(u);
      }
      for (int64_t c = K; c < 256; ++c) o[c] = 0;
#if VQ_SCORE_VBMI
      if (block_layout)
        for (int64_t c = 0; c < 128; ++c) o[c + 128] = static_cast<uint8_t>(o[c + 128] - o[c]);  // mod 256
#endif
    }
    // Each entry is within step / 2 of its float value (plus rounding of the arithmetic above);
    // the extra 1e-4 relative term covers that rounding and the float sums of the scan.
    const float slack = static_cast<float>(D) * step * 0.5f +
                        1e-4f * (static_cast<float>(D * kQuantMax) * step + magnitude);
    qstep[q] = step;
    qoffset[q] = static_cast<float>(bias_sum + static_cast<double>(slack));
  }
}

// ---------------------------------------------------------------- dense
void scan_dense(const ScanArgs& a, float* out) {
  const float inv_d = 1.0f / static_cast<float>(a.D);
#pragma omp parallel for schedule(static) num_threads(a.nthreads)
  for (int64_t q = 0; q < a.B; ++q)
    for (int64_t n = 0; n < a.N; ++n) out[q * a.N + n] = finish(exact_sum(a, q, n), item_scale(a, n), inv_d);
}

}  // namespace VQ_ISA
}  // namespace vqrec
