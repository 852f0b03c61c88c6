// Warp-cooperative sort of a candidate list in shared memory, shared by the ADC top-k kernels
// (adc_topk.cu, adc_candidates.cu): lists are short (<= 512) and sorted rarely, so one warp
// running a bitonic network over shared memory is enough.
#pragma once
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

namespace vqrec {
namespace cuda {

// a before b: higher score first; equal scores -> smaller id first, so the kept set does not
// depend on the order in which lanes appended their hits.
__device__ __forceinline__ bool sorts_before(float sa, int32_t ia, float sb, int32_t ib) {
  return sa > sb || (sa == sb && ia < ib);
}

// The warp's lanes sort the n entries of (s, id) best first: a bitonic network over the next
// power of two m >= max(n, 32), the entries from n to m padded with (-inf, INT32_MAX), so the
// buffers must hold m entries. Ends with __syncwarp(); the caller's appends must be visible to
// the warp before the call (a __syncwarp() after them, or the one at the start here).
__device__ inline void warp_bitonic_sort(float* s, int32_t* id, int n, int lane) {
  int m = 32;
  while (m < n) m <<= 1;
  for (int i = n + lane; i < m; i += 32) {
    s[i] = -INFINITY;
    id[i] = INT32_MAX;
  }
  __syncwarp();  // also publishes the lanes' appends
  for (int size = 2; size <= m; size <<= 1) {
    for (int stride = size >> 1; stride > 0; stride >>= 1) {
      for (int i = lane; i < m / 2; i += 32) {
        const int lo = (i / stride) * stride * 2 + (i % stride);
        const int hi = lo + stride;
        // Sub-sequences alternate direction; at size == m everything is in "before" order.
        const bool fwd = (lo & size) == 0;
        const bool swap = fwd ? sorts_before(s[hi], id[hi], s[lo], id[lo]) : sorts_before(s[lo], id[lo], s[hi], id[hi]);
        if (swap) {
          const float ts = s[lo];
          s[lo] = s[hi];
          s[hi] = ts;
          const int32_t ti = id[lo];
          id[lo] = id[hi];
          id[hi] = ti;
        }
      }
      __syncwarp();
    }
  }
}

}  // namespace cuda
}  // namespace vqrec
