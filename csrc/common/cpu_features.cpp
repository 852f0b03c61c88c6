// Detects the instruction-set level once and keeps the active choice.
#include "common/isa.h"

#include <atomic>
#include <cstdlib>
#include <stdexcept>

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#define VQ_CPUID_X86 1
#endif

namespace vqrec {
namespace {

#ifdef VQ_CPUID_X86
unsigned long long read_xcr0() {
  unsigned int eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<unsigned long long>(edx) << 32) | eax;
}
#endif

IsaLevel detect() {
#ifdef VQ_CPUID_X86
  unsigned int a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return IsaLevel::scalar;
  const bool osxsave = (c >> 27) & 1, fma = (c >> 12) & 1, avx = (c >> 28) & 1, f16c = (c >> 29) & 1;
  if (!osxsave || !avx) return IsaLevel::scalar;
  const unsigned long long xcr0 = read_xcr0();
  const bool ymm_state = (xcr0 & 0x6) == 0x6;
  const bool zmm_state = (xcr0 & 0xe6) == 0xe6;
  if (!ymm_state) return IsaLevel::scalar;
  if (__get_cpuid_max(0, nullptr) < 7) return IsaLevel::scalar;
  __cpuid_count(7, 0, a, b, c, d);
  const bool avx2 = (b >> 5) & 1;
  const bool avx512f = (b >> 16) & 1, avx512dq = (b >> 17) & 1, avx512bw = (b >> 30) & 1,
             avx512vl = (b >> 31) & 1, avx512vbmi = (c >> 1) & 1;
  if (!(avx2 && fma && f16c)) return IsaLevel::scalar;
  if (zmm_state && avx512f && avx512dq && avx512bw && avx512vl && avx512vbmi) return IsaLevel::avx512;
  return IsaLevel::avx2;
#else
  return IsaLevel::scalar;
#endif
}

IsaLevel initial_level() {
  IsaLevel best = detected_level();
  const char* env = std::getenv("VQREC_FAST_SIMD");
  if (env == nullptr || *env == '\0') return best;
  IsaLevel wanted;
  try {
    wanted = parse_level(env);
  } catch (const std::invalid_argument&) {
    return best;  // the Python layer reports a bad value with a warning
  }
  return static_cast<int>(wanted) < static_cast<int>(best) ? wanted : best;
}

std::atomic<int> g_level{-1};

}  // namespace

IsaLevel detected_level() {
  static const IsaLevel level = detect();
  return level;
}

IsaLevel active_level() {
  int v = g_level.load(std::memory_order_relaxed);
  if (v < 0) {
    v = static_cast<int>(initial_level());
    g_level.store(v, std::memory_order_relaxed);
  }
  return static_cast<IsaLevel>(v);
}

void set_active_level(IsaLevel level) {
  if (static_cast<int>(level) > static_cast<int>(detected_level()))
    throw std::invalid_argument(std::string("SIMD level '") + level_name(level) +
                                "' is not supported by this CPU (best: '" + level_name(detected_level()) + "')");
#if !VQ_X86_BUILD
  if (level != IsaLevel::scalar) throw std::invalid_argument("this build has only the scalar level");
#endif
  g_level.store(static_cast<int>(level), std::memory_order_relaxed);
}

const char* level_name(IsaLevel level) {
  switch (level) {
    case IsaLevel::avx512: return "avx512";
    case IsaLevel::avx2: return "avx2";
    default: return "scalar";
  }
}

IsaLevel parse_level(const std::string& name) {
  if (name == "scalar") return IsaLevel::scalar;
  if (name == "avx2") return IsaLevel::avx2;
  if (name == "avx512") return IsaLevel::avx512;
  throw std::invalid_argument("unknown SIMD level '" + name + "' (expected scalar, avx2 or avx512)");
}

}  // namespace vqrec
