// pybind11 module vqrec_fast._C_cuda: the CUDA kernels as functions of raw device addresses
// (tensor.data_ptr()) and a stream handle (torch.cuda.current_stream().cuda_stream). No
// libtorch: Python allocates every buffer (workspaces included) with torch.empty, so torch's
// caching allocator owns all memory, and validates shapes before calling.
#include <pybind11/pybind11.h>

#include <cstdint>

#include "cuda/kernels.h"

namespace py = pybind11;
using namespace vqrec::cuda;

namespace {
template <typename T>
T* P(uintptr_t p) {
  return reinterpret_cast<T*>(p);
}
}  // namespace

PYBIND11_MODULE(_C_cuda, m) {
  m.doc() = "vqrec_fast CUDA kernels (torch-free; device pointers and a stream from Python)";

  m.def(
      "code_bag_forward",
      [](uintptr_t W, int64_t D, int64_t K, int64_t H, uintptr_t codes, int code_type, int64_t I, uintptr_t row_of,
         int64_t R, uintptr_t out, uintptr_t stream) {
        code_bag_forward(P<const float>(W), D, K, H, P<const void>(codes), code_type, I, P<const int64_t>(row_of), R,
                         P<float>(out), P<void>(stream));
      },
      py::arg("W"), py::arg("D"), py::arg("K"), py::arg("H"), py::arg("codes"), py::arg("code_type"), py::arg("I"),
      py::arg("row_of"), py::arg("R"), py::arg("out"), py::arg("stream"),
      "out[R, H] = mean_d W[d, codes[src(r), d]]; row_of = 0 (null) means src(r) = r, else padding id 0 -> zeros");
  m.def("code_bag_backward_workspace_bytes", &code_bag_backward_workspace_bytes, py::arg("R"), py::arg("D"),
        py::arg("K"));
  m.def(
      "code_bag_backward",
      [](uintptr_t grad_out, int64_t D, int64_t K, int64_t H, uintptr_t codes, int code_type, int64_t I,
         uintptr_t row_of, int64_t R, uintptr_t grad_W, uintptr_t workspace, size_t workspace_bytes,
         uintptr_t stream) {
        code_bag_backward(P<const float>(grad_out), D, K, H, P<const void>(codes), code_type, I,
                          P<const int64_t>(row_of), R, P<float>(grad_W), P<void>(workspace), workspace_bytes,
                          P<void>(stream));
      },
      py::arg("grad_out"), py::arg("D"), py::arg("K"), py::arg("H"), py::arg("codes"), py::arg("code_type"),
      py::arg("I"), py::arg("row_of"), py::arg("R"), py::arg("grad_W"), py::arg("workspace"),
      py::arg("workspace_bytes"), py::arg("stream"), "deterministic grad_W[D, K, H] (sort + segment sum)");
  m.def("adc_topk_smem_bytes", &adc_topk_smem_bytes, py::arg("D"), py::arg("K"));
  m.def("adc_topk_out_splits", &adc_topk_out_splits, py::arg("D"), py::arg("K"), py::arg("k"), py::arg("S"),
        "splits per query adc_topk writes for S item splits");
  m.def(
      "adc_topk",
      [](uintptr_t lut, int64_t G, int64_t D, int64_t K, uintptr_t codes, int64_t N, uintptr_t item_scale, int64_t k,
         int64_t S, uintptr_t out_scores, uintptr_t out_ids, bool half_sums, uintptr_t stream) {
        adc_topk(P<const void>(lut), G, D, K, P<const uint8_t>(codes), N, P<const float>(item_scale), k, S,
                 P<float>(out_scores), P<int32_t>(out_ids), half_sums, P<void>(stream));
      },
      py::arg("lut"), py::arg("G"), py::arg("D"), py::arg("K"), py::arg("codes"), py::arg("N"), py::arg("item_scale"),
      py::arg("k"), py::arg("S"), py::arg("out_scores"), py::arg("out_ids"), py::arg("half_sums"), py::arg("stream"),
      "per (query, split) best k of an ADC scan with an fp16 LUT [G, D, K, 8]");
  m.def("adc_candidates_smem_bytes", &adc_candidates_smem_bytes, py::arg("D"));
  m.def("adc_candidates_slots", &adc_candidates_slots);
  m.def("adc_candidates_warps", &adc_candidates_warps);
  m.def("adc_candidates_max_kk", &adc_candidates_max_kk);
  m.def(
      "adc_candidates",
      [](uintptr_t lut, int64_t G, int64_t D, uintptr_t codes, int64_t N, uintptr_t item_scale, float inv_scale_max,
         uintptr_t qoff, uintptr_t qstep, uintptr_t qwin, int64_t kk, int64_t S, int bits, int items,
         uintptr_t out_est, uintptr_t out_ids, uintptr_t overflow, uintptr_t stream) {
        adc_candidates(P<const void>(lut), G, D, P<const uint8_t>(codes), N, P<const float>(item_scale),
                       inv_scale_max, P<const float>(qoff), P<const float>(qstep), P<const float>(qwin), kk, S, bits,
                       items, P<float>(out_est), P<int32_t>(out_ids), P<int32_t>(overflow), P<void>(stream));
      },
      py::arg("lut"), py::arg("G"), py::arg("D"), py::arg("codes"), py::arg("N"), py::arg("item_scale"),
      py::arg("inv_scale_max"), py::arg("qoff"), py::arg("qstep"), py::arg("qwin"), py::arg("kk"), py::arg("S"),
      py::arg("bits"), py::arg("items"), py::arg("out_est"), py::arg("out_ids"), py::arg("overflow"),
      py::arg("stream"), "per (query, split) every candidate of a quantized (uint8) ADC scan with a rigorous window");
  m.def("adc_threshold_smem_bytes", &adc_threshold_smem_bytes, py::arg("D"));
  m.def(
      "adc_threshold_scan",
      [](uintptr_t lut, int64_t G, int64_t D, uintptr_t codes, int64_t n0, int64_t N, uintptr_t item_scale,
         float inv_scale_max, uintptr_t qoff, uintptr_t qstep, uintptr_t thr, int64_t S, int64_t cap,
         uintptr_t out_ids, uintptr_t count, uintptr_t stream) {
        adc_threshold_scan(P<const void>(lut), G, D, P<const uint8_t>(codes), n0, N, P<const float>(item_scale),
                           inv_scale_max, P<const float>(qoff), P<const float>(qstep), P<const float>(thr), S, cap,
                           P<int32_t>(out_ids), P<int32_t>(count), P<void>(stream));
      },
      py::arg("lut"), py::arg("G"), py::arg("D"), py::arg("codes"), py::arg("n0"), py::arg("N"),
      py::arg("item_scale"), py::arg("inv_scale_max"), py::arg("qoff"), py::arg("qstep"), py::arg("thr"),
      py::arg("S"), py::arg("cap"), py::arg("out_ids"), py::arg("count"), py::arg("stream"),
      "second pass: every item of [n0, N) whose uint8 ADC estimate reaches thr[q], per query");
  m.def("softmax_ce_lse_smem_bytes", &softmax_ce_lse_smem_bytes, py::arg("D"), py::arg("K"));
  m.def(
      "softmax_ce_lse",
      [](uintptr_t lut, int64_t G, int64_t D, int64_t K, uintptr_t codes, int64_t N, uintptr_t item_scale, int64_t S,
         uintptr_t part_m, uintptr_t part_s, uintptr_t stream) {
        softmax_ce_lse(P<const float>(lut), G, D, K, P<const uint8_t>(codes), N, P<const float>(item_scale), S,
                       P<float>(part_m), P<float>(part_s), P<void>(stream));
      },
      py::arg("lut"), py::arg("G"), py::arg("D"), py::arg("K"), py::arg("codes"), py::arg("N"), py::arg("item_scale"),
      py::arg("S"), py::arg("part_m"), py::arg("part_s"), py::arg("stream"),
      "per (query, split) online log-sum-exp of ADC logits with an fp32 LUT [G, D, K, 4]");
  m.def(
      "softmax_ce_probs",
      [](uintptr_t lut, int64_t G, int64_t D, int64_t K, uintptr_t codes, int64_t C, uintptr_t item_scale,
         uintptr_t lse, uintptr_t wgt, int64_t B, int64_t S, uintptr_t out, uintptr_t stream) {
        softmax_ce_probs(P<const float>(lut), G, D, K, P<const uint8_t>(codes), C, P<const float>(item_scale),
                         P<const float>(lse), P<const float>(wgt), B, S, P<float>(out), P<void>(stream));
      },
      py::arg("lut"), py::arg("G"), py::arg("D"), py::arg("K"), py::arg("codes"), py::arg("C"), py::arg("item_scale"),
      py::arg("lse"), py::arg("wgt"), py::arg("B"), py::arg("S"), py::arg("out"), py::arg("stream"),
      "out[b, n] = exp(ADC logit - lse[b]) * wgt[b] for a chunk of C items, fp32 LUT [G, D, K, 4]");
}
