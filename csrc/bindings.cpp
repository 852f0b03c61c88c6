// pybind11 module of the torch-free core. Tensors arrive as raw addresses (data_ptr())
// plus the shapes the Python layer validated; the C++ side re-checks what it can (sizes,
// null pointers, index ranges) and raises ValueError through std::invalid_argument.
// Each op registers its functions from its own csrc/bind_<op>.cpp.
#include "bind_util.h"
#include "common/isa.h"

using namespace vqrec;

PYBIND11_MODULE(_C, m) {
  m.doc() = "vqrec_fast native CPU kernels (torch-free; raw buffers from Python)";

  m.def("detected_simd_level", [] { return std::string(level_name(detected_level())); });
  m.def("simd_level", [] { return std::string(level_name(active_level())); });
  m.def("set_simd_level", [](const std::string& name) { set_active_level(parse_level(name)); }, py::arg("level"));

  bind_code_bag(m);
  bind_score_topk(m);
  bind_softmax_ce(m);
  bind_output_pool(m);
}
