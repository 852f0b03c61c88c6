// pybind11 bindings of the torch-free core. Tensors arrive as raw addresses (data_ptr())
// plus the shapes the Python layer validated; the C++ side re-checks what it can (sizes,
// null pointers, index ranges) and raises ValueError through std::invalid_argument.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "common/isa.h"
#include "cpu/code_bag.h"

namespace py = pybind11;
using namespace vqrec;

namespace {

template <typename T>
T* ptr(uintptr_t p) {
  return reinterpret_cast<T*>(p);
}

CodeType code_type(const std::string& name) {
  if (name == "uint8") return CodeType::u8;
  if (name == "int32") return CodeType::i32;
  throw std::invalid_argument("code dtype must be 'uint8' or 'int32', got '" + name + "'");
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "vqrec_fast native CPU kernels (torch-free; raw buffers from Python)";

  m.def("detected_simd_level", [] { return std::string(level_name(detected_level())); });
  m.def("simd_level", [] { return std::string(level_name(active_level())); });
  m.def("set_simd_level", [](const std::string& name) { set_active_level(parse_level(name)); }, py::arg("level"));

  m.def(
      "code_bag_forward",
      [](uintptr_t W, int64_t D, int64_t K, int64_t H, uintptr_t codes, const std::string& ct, int64_t N,
         uintptr_t out, int nthreads) {
        const CodeType t = code_type(ct);
        py::gil_scoped_release nogil;
        code_bag_forward(ptr<const float>(W), D, K, H, ptr<const void>(codes), t, N, ptr<float>(out), nthreads);
      },
      py::arg("W"), py::arg("D"), py::arg("K"), py::arg("H"), py::arg("codes"), py::arg("code_dtype"), py::arg("N"),
      py::arg("out"), py::arg("nthreads"));
  m.def(
      "code_bag_backward",
      [](uintptr_t grad_out, int64_t D, int64_t K, int64_t H, uintptr_t codes, const std::string& ct, int64_t N,
         uintptr_t grad_W, int nthreads) {
        const CodeType t = code_type(ct);
        py::gil_scoped_release nogil;
        code_bag_backward(ptr<const float>(grad_out), D, K, H, ptr<const void>(codes), t, N, ptr<float>(grad_W),
                          nthreads);
      },
      py::arg("grad_out"), py::arg("D"), py::arg("K"), py::arg("H"), py::arg("codes"), py::arg("code_dtype"),
      py::arg("N"), py::arg("grad_W"), py::arg("nthreads"));
  m.def(
      "code_bag_seq_forward",
      [](uintptr_t W, int64_t D, int64_t K, int64_t H, uintptr_t item_codes, const std::string& ct, int64_t I,
         uintptr_t ids, int64_t T, uintptr_t out, int nthreads) {
        const CodeType t = code_type(ct);
        py::gil_scoped_release nogil;
        code_bag_seq_forward(ptr<const float>(W), D, K, H, ptr<const void>(item_codes), t, I, ptr<const int64_t>(ids),
                             T, ptr<float>(out), nthreads);
      },
      py::arg("W"), py::arg("D"), py::arg("K"), py::arg("H"), py::arg("item_codes"), py::arg("code_dtype"),
      py::arg("I"), py::arg("ids"), py::arg("T"), py::arg("out"), py::arg("nthreads"));
  m.def(
      "code_bag_seq_backward",
      [](uintptr_t grad_out, int64_t D, int64_t K, int64_t H, uintptr_t item_codes, const std::string& ct, int64_t I,
         uintptr_t ids, int64_t T, uintptr_t grad_W, int nthreads) {
        const CodeType t = code_type(ct);
        py::gil_scoped_release nogil;
        code_bag_seq_backward(ptr<const float>(grad_out), D, K, H, ptr<const void>(item_codes), t, I,
                              ptr<const int64_t>(ids), T, ptr<float>(grad_W), nthreads);
      },
      py::arg("grad_out"), py::arg("D"), py::arg("K"), py::arg("H"), py::arg("item_codes"), py::arg("code_dtype"),
      py::arg("I"), py::arg("ids"), py::arg("T"), py::arg("grad_W"), py::arg("nthreads"));
}
