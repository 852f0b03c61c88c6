// Helpers shared by the binding files: raw addresses from Python, code dtype names, and the
// registration functions each op's bind_<op>.cpp defines.
#pragma once
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "cpu/code_bag.h"

namespace py = pybind11;

namespace vqrec {

template <typename T>
inline T* ptr(uintptr_t p) {
  return reinterpret_cast<T*>(p);
}

inline CodeType code_type(const std::string& name) {
  if (name == "uint8") return CodeType::u8;
  if (name == "int32") return CodeType::i32;
  throw std::invalid_argument("code dtype must be 'uint8' or 'int32', got '" + name + "'");
}

// One per op; each lives in csrc/bind_<op>.cpp and is listed in bindings.cpp.
void bind_code_bag(py::module_& m);
void bind_score_topk(py::module_& m);
void bind_softmax_ce(py::module_& m);
void bind_output_pool(py::module_& m);

}  // namespace vqrec
