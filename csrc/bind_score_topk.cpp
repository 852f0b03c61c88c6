// Python bindings of the ADC top-k scan (see cpu/score_topk.h for shapes). Optional buffers
// (item_scale, exclusions) are passed as address 0 when absent.
#include "bind_util.h"
#include "cpu/score_topk.h"

namespace vqrec {

void bind_score_topk(py::module_& m) {
  m.def(
      "all_finite",
      [](uintptr_t x, int64_t n, int nthreads) {
        bool ok = true;
        py::gil_scoped_release nogil;
        if (n > 0) VQ_DISPATCH(all_finite, ptr<const float>(x), n, nthreads, &ok);
        return ok;
      },
      py::arg("x"), py::arg("n"), py::arg("nthreads"));
  m.def(
      "score_topk",
      [](uintptr_t lut, int64_t B, int64_t D, int64_t K,
         uintptr_t codes, const std::string& ct, int64_t N, uintptr_t item_scale, uintptr_t excl_off,
         uintptr_t excl_ids, int64_t k, int scan, uintptr_t out_scores, uintptr_t out_ids, int nthreads) {
        if (scan < 0 || scan > 3)
          throw std::invalid_argument("score_topk: scan must be 0..3 (see ScanMode), got " + std::to_string(scan));
        const CodeType t = code_type(ct);
        py::gil_scoped_release nogil;
        score_topk(ptr<const float>(lut), B, D, K, ptr<const void>(codes), t, N, ptr<const float>(item_scale),
                   ptr<const int64_t>(excl_off), ptr<const int64_t>(excl_ids), k,
                   static_cast<ScanMode>(scan), ptr<float>(out_scores), ptr<int64_t>(out_ids),
                   nthreads);
      },
      py::arg("lut"), py::arg("B"), py::arg("D"), py::arg("K"),
      py::arg("codes"), py::arg("code_dtype"), py::arg("N"), py::arg("item_scale"), py::arg("excl_off"),
      py::arg("excl_ids"), py::arg("k"), py::arg("scan"), py::arg("out_scores"), py::arg("out_ids"),
      py::arg("nthreads"));
  m.def(
      "quantized_scan",
      [](int64_t B, int64_t N) {
        return std::string(pick_quantized_scan(B, N) == ScanMode::quantized_blocks ? "blocks" : "queries");
      },
      py::arg("B"), py::arg("N"), "The quantized scan mode='quantized' runs for B queries over N items.");
  m.def(
      "score_all",
      [](uintptr_t lut, int64_t B, int64_t D, int64_t K, uintptr_t codes, const std::string& ct, int64_t N,
         uintptr_t item_scale, uintptr_t out, int nthreads) {
        const CodeType t = code_type(ct);
        py::gil_scoped_release nogil;
        score_all(ptr<const float>(lut), B, D, K, ptr<const void>(codes), t, N, ptr<const float>(item_scale),
                  ptr<float>(out), nthreads);
      },
      py::arg("lut"), py::arg("B"), py::arg("D"), py::arg("K"), py::arg("codes"), py::arg("code_dtype"), py::arg("N"),
      py::arg("item_scale"), py::arg("out"), py::arg("nthreads"));
}

}  // namespace vqrec
