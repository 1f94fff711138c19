// The Hopper kernels (w4a16_gemm_sm90, the GEMV's kTma implementation) in builds without Hopper code
// (HIP, or CUDA built without sm_90a in CMAKE_CUDA_ARCHITECTURES): the entry points exist and say
// why they cannot run.
#include <string>

#include "tinygemm/status.h"
#include "w4a16.h"

namespace tg {
namespace {
[[noreturn]] void no_sm90(const char* what) {
#if defined(TINYGEMM_HIP)
  throw std::invalid_argument(std::string(what) + " runs on NVIDIA Hopper GPUs only; this is a HIP build");
#else
  throw std::invalid_argument(std::string(what) + ": tinygemm was built without sm_90a code (add 90a to "
                              "CMAKE_CUDA_ARCHITECTURES: pip install . -Ccmake.define.CMAKE_CUDA_ARCHITECTURES=90a)");
#endif
}
}  // namespace

int w4a16_gemm_sm90_clusters(int, int) { return 0; }  // unknown: the config falls back to SMs / split
void w4a16_gemm_sm90(const void*, const void*, const void*, const void*, void*, int, int, int, int, DType,
                     std::uintptr_t, GemmSm90Config) {
  no_sm90("w4a16_gemm_sm90");
}

void w4a16_gemv_tma(const void*, const void*, const void*, const void*, void*, int, int, int, int, DType,
                    std::uintptr_t, const GemvConfig&) {
  no_sm90("w4a16_gemv (tma)");
}

}  // namespace tg
