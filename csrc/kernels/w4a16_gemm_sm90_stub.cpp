// w4a16_gemm_sm90 in builds without Hopper code (HIP, or CUDA built without sm_90a in
// CMAKE_CUDA_ARCHITECTURES): the entry point exists and says why it cannot run.
#include "tinygemm/status.h"
#include "w4a16.h"

namespace tg {

void w4a16_gemm_sm90(const void*, const void*, const void*, const void*, void*, int, int, int, int, DType,
                     std::uintptr_t, GemmSm90Config) {
#if defined(TINYGEMM_HIP)
  throw std::invalid_argument("w4a16_gemm_sm90 runs on NVIDIA Hopper GPUs only; this is a HIP build");
#else
  throw std::invalid_argument("w4a16_gemm_sm90: tinygemm was built without sm_90a code (add 90a to "
                              "CMAKE_CUDA_ARCHITECTURES: pip install . -Ccmake.define.CMAKE_CUDA_ARCHITECTURES=90a)");
#endif
}

}  // namespace tg
