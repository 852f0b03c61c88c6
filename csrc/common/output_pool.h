// A cache of large output buffers between calls, so that an op's output can reuse the pages of
// an earlier output that has been freed instead of faulting in fresh ones.
//
// Why: torch's CPU allocator maps every large tensor afresh and unmaps it on free, so each call
// pays the kernel's page faults and zero-filling for its whole output. For the code bag's
// training-step output ([2048, 50, 300] floats, 123 MB, mostly padding) that was about half of
// the forward (benchmarks/RESULTS.md). A training loop frees each step's output before the next
// step, so the next output can take the same, already-resident pages: what PyTorch's CUDA
// caching allocator does on GPUs.
//
// Blocks are 2 MiB-aligned, rounded up to whole 2 MiB and advised as huge pages by the same rule
// as every other output (advise_huge_pages). A released block is kept while the cached total
// stays within the limit, otherwise freed. Thread-safe: a tensor may be freed on any thread.
#pragma once
#include <cstddef>
#include <mutex>
#include <vector>

namespace vqrec {

class OutputPool {
 public:
  struct Block {
    char* data;
    size_t capacity;  // bytes, a multiple of 2 MiB
    bool fresh;       // newly allocated: never written, its pages read as zero
  };
  static OutputPool& instance();

  // A block of at least `bytes` (> 0): a cached one of capacity at most ~1.25x the request, or a
  // new one. Throws std::bad_alloc.
  Block acquire(size_t bytes);
  // Returns a block from acquire(): cached when it fits under the limit, freed otherwise.
  void release(char* data, size_t capacity);

  void set_limit(size_t bytes);  // also frees cached blocks beyond the new limit
  void clear();                  // frees every cached block

  struct Stats {
    size_t limit, cached;  // bytes: the limit, and the freed blocks held now
    size_t reused;         // acquisitions served from the cache
    size_t allocated;      // acquisitions that allocated
  };
  Stats stats() const;

 private:
  OutputPool();
  void trim_locked(size_t limit);

  mutable std::mutex mu_;
  std::vector<Block> free_;
  size_t limit_;
  size_t cached_ = 0;
  size_t reused_ = 0;
  size_t allocated_ = 0;
};

}  // namespace vqrec
