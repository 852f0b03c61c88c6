// Python bindings of the fused softmax cross-entropy scans (see cpu/softmax_ce.h for shapes).
#include "bind_util.h"
#include "cpu/softmax_ce.h"

namespace vqrec {

void bind_softmax_ce(py::module_& m) {
  m.def(
      "code_softmax_ce_forward",
      [](uintptr_t lut, int64_t B, int64_t D, int64_t K, uintptr_t codes, const std::string& ct, int64_t N,
         uintptr_t alpha, uintptr_t target, uintptr_t extra, uintptr_t lse, uintptr_t tgt_logit, int nthreads) {
        const CodeType t = code_type(ct);
        py::gil_scoped_release nogil;
        code_softmax_ce_forward(ptr<const float>(lut), B, D, K, ptr<const void>(codes), t, N, ptr<const float>(alpha),
                                ptr<const int64_t>(target), ptr<const float>(extra), ptr<float>(lse),
                                ptr<float>(tgt_logit), nthreads);
      },
      py::arg("lut"), py::arg("B"), py::arg("D"), py::arg("K"), py::arg("codes"), py::arg("code_dtype"), py::arg("N"),
      py::arg("alpha"), py::arg("target"), py::arg("extra"), py::arg("lse"), py::arg("tgt_logit"),
      py::arg("nthreads"));
  m.def(
      "code_softmax_ce_backward",
      [](uintptr_t lut, int64_t B, int64_t D, int64_t K, uintptr_t codes, const std::string& ct, int64_t N,
         uintptr_t alpha, uintptr_t target, uintptr_t lse, uintptr_t g, uintptr_t grad_lut, uintptr_t rho,
         int nthreads) {
        const CodeType t = code_type(ct);
        py::gil_scoped_release nogil;
        code_softmax_ce_backward(ptr<const float>(lut), B, D, K, ptr<const void>(codes), t, N, ptr<const float>(alpha),
                                 ptr<const int64_t>(target), ptr<const float>(lse), ptr<const float>(g),
                                 ptr<float>(grad_lut), ptr<float>(rho), nthreads);
      },
      py::arg("lut"), py::arg("B"), py::arg("D"), py::arg("K"), py::arg("codes"), py::arg("code_dtype"), py::arg("N"),
      py::arg("alpha"), py::arg("target"), py::arg("lse"), py::arg("g"), py::arg("grad_lut"), py::arg("rho"),
      py::arg("nthreads"));
  m.def(
      "code_bag_norms",
      [](uintptr_t W, int64_t D, int64_t K, int64_t H, uintptr_t codes, const std::string& ct, int64_t N,
         uintptr_t norms, int nthreads) {
        const CodeType t = code_type(ct);
        py::gil_scoped_release nogil;
        code_bag_norms(ptr<const float>(W), D, K, H, ptr<const void>(codes), t, N, ptr<float>(norms), nthreads);
      },
      py::arg("W"), py::arg("D"), py::arg("K"), py::arg("H"), py::arg("codes"), py::arg("code_dtype"), py::arg("N"),
      py::arg("norms"), py::arg("nthreads"));
  m.def(
      "code_bag_norm_grad",
      [](uintptr_t W, int64_t D, int64_t K, int64_t H, uintptr_t codes, const std::string& ct, int64_t N,
         uintptr_t gamma, uintptr_t dW, int nthreads) {
        const CodeType t = code_type(ct);
        py::gil_scoped_release nogil;
        code_bag_norm_grad(ptr<const float>(W), D, K, H, ptr<const void>(codes), t, N, ptr<const float>(gamma),
                           ptr<float>(dW), nthreads);
      },
      py::arg("W"), py::arg("D"), py::arg("K"), py::arg("H"), py::arg("codes"), py::arg("code_dtype"), py::arg("N"),
      py::arg("gamma"), py::arg("dW"), py::arg("nthreads"));
}

}  // namespace vqrec
