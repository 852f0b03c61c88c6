// Python bindings of the code bag kernels (see cpu/code_bag.h for shapes).
#include "bind_util.h"
#include "cpu/code_bag.h"

namespace vqrec {

void bind_code_bag(py::module_& m) {
  m.def(
      "advise_huge_pages",
      [](uintptr_t p, size_t bytes) {
        if (p != 0) advise_huge_pages(reinterpret_cast<void*>(p), bytes);
      },
      py::arg("ptr"), py::arg("bytes"),
      "Advises transparent huge pages on the 2 MiB-aligned interior of a fresh buffer of 8 to 512 MiB.");
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
         uintptr_t ids, int64_t T, uintptr_t out, int nthreads, bool out_is_fresh) {
        const CodeType t = code_type(ct);
        py::gil_scoped_release nogil;
        code_bag_seq_forward(ptr<const float>(W), D, K, H, ptr<const void>(item_codes), t, I, ptr<const int64_t>(ids),
                             T, ptr<float>(out), nthreads, out_is_fresh);
      },
      py::arg("W"), py::arg("D"), py::arg("K"), py::arg("H"), py::arg("item_codes"), py::arg("code_dtype"),
      py::arg("I"), py::arg("ids"), py::arg("T"), py::arg("out"), py::arg("nthreads"), py::arg("out_is_fresh") = false);
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

}  // namespace vqrec
