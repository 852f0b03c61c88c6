// OutputPool (see output_pool.h).
#include "common/output_pool.h"

#include <cstdlib>

#include "cpu/code_bag.h"  // kHugePage, round_up_huge, alloc_huge_aligned, advise_huge_pages

namespace vqrec {
namespace {

constexpr size_t kDefaultLimit = size_t(256) << 20;

}  // namespace

OutputPool& OutputPool::instance() {
  // Never destroyed: tensors holding blocks may outlive static destruction at interpreter exit.
  static OutputPool* pool = new OutputPool();
  return *pool;
}

OutputPool::OutputPool() : limit_(kDefaultLimit) {}

OutputPool::Block OutputPool::acquire(size_t bytes) {
  const size_t want = round_up_huge(bytes);
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Best fit among blocks no more than a quarter (plus one huge page) larger than asked, so
    // a small request does not pin a much larger block.
    size_t best = free_.size();
    for (size_t i = 0; i < free_.size(); ++i) {
      const size_t cap = free_[i].capacity;
      if (cap >= want && cap <= want + want / 4 + kHugePage && (best == free_.size() || cap < free_[best].capacity))
        best = i;
    }
    if (best != free_.size()) {
      Block b = free_[best];
      free_[best] = free_.back();
      free_.pop_back();
      cached_ -= b.capacity;
      ++reused_;
      b.fresh = false;
      return b;
    }
    ++allocated_;
  }
  char* p = alloc_huge_aligned(want);
  advise_huge_pages(p, want);
  return Block{p, want, true};
}

void OutputPool::release(char* data, size_t capacity) {
  if (data == nullptr) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (cached_ + capacity <= limit_) {
      free_.push_back(Block{data, capacity, false});
      cached_ += capacity;
      return;
    }
  }
  std::free(data);
}

void OutputPool::trim_locked(size_t limit) {
  while (cached_ > limit && !free_.empty()) {
    cached_ -= free_.back().capacity;
    std::free(free_.back().data);
    free_.pop_back();
  }
}

void OutputPool::set_limit(size_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  limit_ = bytes;
  trim_locked(limit_);
}

void OutputPool::clear() {
  std::lock_guard<std::mutex> lock(mu_);
  trim_locked(0);
}

OutputPool::Stats OutputPool::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return Stats{limit_, cached_, reused_, allocated_};
}

}  // namespace vqrec
