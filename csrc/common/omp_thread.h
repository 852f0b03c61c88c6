// The calling thread's number inside an OpenMP team (0 without OpenMP), for per-thread slots
// of buffers allocated before a parallel region. `static inline`: every per-ISA translation
// unit keeps its own copy, so no out-of-line copy compiled with another level's flags is shared.
#pragma once

#ifdef _OPENMP
#include <omp.h>
#endif

namespace vqrec {

static inline int omp_thread_id() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

}  // namespace vqrec
