// Instruction-set levels and the runtime choice between them.
//
// Kernels that depend on the level are compiled once per level into namespaces
// vqrec::scalar, vqrec::avx2 and vqrec::avx512 (see CMakeLists.txt); callers ask
// active_level() and switch. The level is detected once (cpuid + xgetbv), can be lowered
// with the environment variable VQREC_FAST_SIMD=scalar|avx2|avx512, and can be changed at
// runtime (tests re-run every kernel at each level the machine supports).
#pragma once
#include <string>

namespace vqrec {

enum class IsaLevel : int { scalar = 0, avx2 = 1, avx512 = 2 };

// Highest level this CPU and OS support (AVX-512 means F+BW+DQ+VL+VBMI with ZMM state enabled).
IsaLevel detected_level();
// Level the kernels use now.
IsaLevel active_level();
// Sets the level; throws std::invalid_argument if the machine does not support it.
void set_active_level(IsaLevel level);

const char* level_name(IsaLevel level);
// Parses "scalar" | "avx2" | "avx512"; throws std::invalid_argument otherwise.
IsaLevel parse_level(const std::string& name);

}  // namespace vqrec

// Declares `ret name args` in every ISA namespace that this build compiles.
#if defined(VQ_HAVE_X86) || defined(__x86_64__) || defined(_M_X64)
#define VQ_X86_BUILD 1
#define VQ_DECLARE_ISA_FN(ret, name, args) \
  namespace scalar { ret name args; }      \
  namespace avx2 { ret name args; }        \
  namespace avx512 { ret name args; }
// Calls `name(...)` in the namespace of the active level.
#define VQ_DISPATCH(name, ...)                                  \
  do {                                                          \
    switch (::vqrec::active_level()) {                          \
      case ::vqrec::IsaLevel::avx512: avx512::name(__VA_ARGS__); break; \
      case ::vqrec::IsaLevel::avx2: avx2::name(__VA_ARGS__); break;     \
      default: scalar::name(__VA_ARGS__); break;                \
    }                                                           \
  } while (0)
#else
#define VQ_X86_BUILD 0
#define VQ_DECLARE_ISA_FN(ret, name, args) \
  namespace scalar { ret name args; }
#define VQ_DISPATCH(name, ...) scalar::name(__VA_ARGS__)
#endif
