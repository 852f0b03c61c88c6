// Python access to the output cache (common/output_pool.h). A PooledBuffer owns one block and
// exposes it through the buffer protocol; numpy / torch views keep the PooledBuffer alive, and
// when the last of them goes the block returns to the cache.
#include "bind_util.h"
#include "common/output_pool.h"

namespace vqrec {
namespace {

struct PooledBuffer {
  OutputPool::Block block;
  size_t bytes;  // the size asked for (<= block.capacity); what the buffer protocol exposes
  explicit PooledBuffer(size_t n) : block(OutputPool::instance().acquire(n)), bytes(n) {}
  ~PooledBuffer() { OutputPool::instance().release(block.data, block.capacity); }
  PooledBuffer(const PooledBuffer&) = delete;
  PooledBuffer& operator=(const PooledBuffer&) = delete;
};

}  // namespace

void bind_output_pool(py::module_& m) {
  py::class_<PooledBuffer>(m, "PooledBuffer", py::buffer_protocol())
      .def_buffer([](PooledBuffer& b) {
        return py::buffer_info(b.block.data, 1, py::format_descriptor<uint8_t>::format(), 1,
                               {static_cast<py::ssize_t>(b.bytes)}, {static_cast<py::ssize_t>(1)});
      })
      .def_property_readonly("fresh", [](const PooledBuffer& b) { return b.block.fresh; })
      .def_property_readonly("nbytes", [](const PooledBuffer& b) { return b.bytes; })
      .def_property_readonly("address", [](const PooledBuffer& b) { return reinterpret_cast<uintptr_t>(b.block.data); });
  m.def(
      "pooled_buffer",
      [](size_t bytes) {
        if (bytes == 0) throw std::invalid_argument("pooled_buffer: need at least one byte");
        return new PooledBuffer(bytes);
      },
      py::arg("nbytes"), py::return_value_policy::take_ownership);
  m.def("output_cache_set_limit", [](size_t bytes) { OutputPool::instance().set_limit(bytes); }, py::arg("nbytes"));
  m.def("output_cache_clear", [] { OutputPool::instance().clear(); });
  m.def("output_cache_info", [] {
    const OutputPool::Stats s = OutputPool::instance().stats();
    py::dict d;
    d["limit_bytes"] = s.limit;
    d["cached_bytes"] = s.cached;
    d["reused"] = s.reused;
    d["allocated"] = s.allocated;
    return d;
  });
}

}  // namespace vqrec
