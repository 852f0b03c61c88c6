// Helpers shared by the .cu files: error checks that turn CUDA failures into C++ exceptions
// (pybind11 maps them to Python errors), stream casting, and integer helpers.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

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

// Reads code (r, d) of a uint8 or int32 [*, D] table.
__device__ __forceinline__ int load_code(const void* codes, int code_type, int64_t idx) {
  return code_type == 0 ? static_cast<int>(static_cast<const uint8_t*>(codes)[idx])
                        : static_cast<const int32_t*>(codes)[idx];
}

}  // namespace cuda
}  // namespace vqrec
