// Helpers shared by the .cu files: error checks that turn CUDA failures into C++ exceptions
// (pybind11 maps them to Python errors), stream casting, and integer helpers.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace vqrec {
namespace cuda {

inline void require(bool ok, const std::string& msg) {
  if (!ok) throw std::invalid_argument(msg);
}

inline void check_cuda(cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(err));
}

// Launch errors (bad configuration, too much shared memory) surface here, not at the next sync.
inline void check_launch(const char* what) { check_cuda(cudaGetLastError(), what); }

inline cudaStream_t as_stream(void* s) { return reinterpret_cast<cudaStream_t>(s); }

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// `bytes` if the current device can give one block that much shared memory (opt-in), else 0.
inline size_t smem_if_fits(size_t bytes) {
  int dev = 0, optin = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return 0;
  if (cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess) return 0;
  return bytes <= static_cast<size_t>(optin) ? bytes : 0;
}

// Opts `kernel` into `bytes` of dynamic shared memory (needed above 48 KiB).
template <typename Kernel>
void allow_smem(Kernel kernel, size_t bytes, const char* what) {
  check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)),
             what);
}

// Calls f(std::integral_constant<int, NV>) with NV = D / 16 when uint8 code rows can be read as
// NV 16-byte vectors (D % 16 == 0, D <= 64, 16-byte aligned rows), else NV = 0 (byte loads), so
// a kernel templated on NV is instantiated for each case and picked at run time.
template <typename F>
void with_code_vectors(int64_t D, const void* codes, F&& f) {
  const int nv = (D % 16 == 0 && D <= 64 && aligned16(codes)) ? static_cast<int>(D / 16) : 0;
  switch (nv) {
    case 1: f(std::integral_constant<int, 1>{}); break;
    case 2: f(std::integral_constant<int, 2>{}); break;
    case 3: f(std::integral_constant<int, 3>{}); break;
    case 4: f(std::integral_constant<int, 4>{}); break;
    default: f(std::integral_constant<int, 0>{}); break;
  }
}

// Reads code (r, d) of a uint8 or int32 [*, D] table.
__device__ __forceinline__ int load_code(const void* codes, int code_type, int64_t idx) {
  return code_type == 0 ? static_cast<int>(static_cast<const uint8_t*>(codes)[idx])
                        : static_cast<const int32_t*>(codes)[idx];
}

}  // namespace cuda
}  // namespace vqrec
