#!/usr/bin/env bash
# Compile-checks every GPU source for AMD (gfx90a) with hipcc: one source, two vendors.
# Debian's hipcc (clang 15, HIP 5.2) does not know gfx942, so gfx90a (MI200) is the target here.
set -euo pipefail
cd "$(dirname "$0")/.."
export HIP_PLATFORM=amd
srcs=(csrc/harness/timer.cu csrc/harness/device_ops.cu csrc/kernels/w4a16_gemv.cu csrc/kernels/w4_dequant.cu
      csrc/kernels/gptq_to_layout.cu csrc/microbench/bandwidth.cu)
for f in "${srcs[@]}"; do
  echo "hipcc gfx90a: $f"
  hipcc -x hip --offload-arch=gfx90a -std=c++17 -O2 -Werror=return-type -Icsrc/include -Icsrc -c "$f" -o /dev/null
done
for f in csrc/harness/stats.cpp csrc/harness/timer_policy.cpp csrc/harness/clock.cpp csrc/harness/kernel_trace.cpp \
         csrc/kernels/w4a16_host.cpp csrc/kernels/w4a16_gemm_sm90_stub.cpp; do
  echo "hipcc host: $f"
  hipcc -std=c++17 -O2 -DTINYGEMM_HIP=1 -Icsrc/include -Icsrc -c "$f" -o /dev/null
done
echo "HIP compile check passed (${#srcs[@]} device sources)"
