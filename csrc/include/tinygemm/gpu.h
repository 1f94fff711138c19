// One source, two vendors: the few CUDA runtime names tinygemm uses, mapped onto HIP when built
// for AMD (the llama.cpp vendors/hip.h approach). Device code includes this and nothing vendor-specific.
#pragma once

#if defined(__HIPCC__) || defined(TINYGEMM_HIP)
#include <hip/hip_runtime.h>
#include <hip/hip_fp16.h>
#if __has_include(<hip/hip_bf16.h>)  // ROCm 5.7+
#include <hip/hip_bf16.h>
#define TINYGEMM_HIP_NEW_BF16 1
#else                                 // older ROCm (Debian's 5.2): the hip_bfloat16 struct
#include <hip/hip_bfloat16.h>
#endif
#define TINYGEMM_HIP 1
#define cudaError_t hipError_t
#define cudaSuccess hipSuccess
#define cudaGetErrorString hipGetErrorString
#define cudaGetLastError hipGetLastError
#define cudaStream_t hipStream_t
#define cudaEvent_t hipEvent_t
#define cudaEventCreate hipEventCreate
#define cudaEventDestroy hipEventDestroy
#define cudaEventRecord hipEventRecord
#define cudaEventSynchronize hipEventSynchronize
#define cudaEventElapsedTime hipEventElapsedTime
#define cudaGraph_t hipGraph_t
#define cudaGraphExec_t hipGraphExec_t
#define cudaGraphInstantiate(exec, graph) hipGraphInstantiate(exec, graph, nullptr, nullptr, 0)
#define cudaGraphLaunch hipGraphLaunch
#define cudaGraphDestroy hipGraphDestroy
#define cudaGraphExecDestroy hipGraphExecDestroy
#define cudaStreamBeginCapture hipStreamBeginCapture
#define cudaStreamEndCapture hipStreamEndCapture
#define cudaStreamCaptureModeThreadLocal hipStreamCaptureModeThreadLocal
#define cudaStreamSynchronize hipStreamSynchronize
#define cudaStreamCreate hipStreamCreate
#define cudaStreamDestroy hipStreamDestroy
#define cudaMalloc hipMalloc
#define cudaFree hipFree
#define cudaMemset hipMemset
#define cudaMemsetAsync hipMemsetAsync
#define cudaMemcpy hipMemcpy
#define cudaMemcpyAsync hipMemcpyAsync
#define cudaMemcpyDeviceToDevice hipMemcpyDeviceToDevice
#define cudaMemcpyDeviceToHost hipMemcpyDeviceToHost
#define cudaMemcpyHostToDevice hipMemcpyHostToDevice
#define cudaDeviceSynchronize hipDeviceSynchronize
#define cudaGetDevice hipGetDevice
#define cudaGetDeviceCount hipGetDeviceCount
#define cudaDeviceProp hipDeviceProp_t
#define cudaGetDeviceProperties hipGetDeviceProperties
#define cudaDeviceGetAttribute hipDeviceGetAttribute
#define cudaDevAttrL2CacheSize hipDeviceAttributeL2CacheSize
#define cudaDevAttrMultiProcessorCount hipDeviceAttributeMultiprocessorCount
#define cudaDevAttrClockRate hipDeviceAttributeClockRate
#define cudaDeviceGetPCIBusId hipDeviceGetPCIBusId
#define cudaProfilerStart hipProfilerStart
#define cudaProfilerStop hipProfilerStop
#define cudaDriverGetVersion hipDriverGetVersion
#define cudaRuntimeGetVersion hipRuntimeGetVersion
using tg_half = __half;
#if defined(TINYGEMM_HIP_NEW_BF16)
using tg_bf16 = __hip_bfloat16;
#else
using tg_bf16 = hip_bfloat16;
#endif
#else
#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <cuda_profiler_api.h>
using tg_half = __half;
using tg_bf16 = __nv_bfloat16;
#endif

#include <cstdint>

namespace tg {

// The hardware warp (wavefront) width: 64 on CDNA, 32 on NVIDIA and RDNA. Never hard-code 32 in
// reductions; kernels that rely on NVIDIA's 32-lane mma fragments say so and are compiled for CUDA only.
#if defined(TINYGEMM_HIP) && defined(__GFX9__)
constexpr int kWarpSize = 64;
#elif defined(TINYGEMM_HIP) && defined(__AMDGCN_WAVEFRONT_SIZE)
constexpr int kWarpSize = __AMDGCN_WAVEFRONT_SIZE;
#else
constexpr int kWarpSize = 32;
#endif

inline cudaStream_t as_stream(std::uintptr_t s) { return reinterpret_cast<cudaStream_t>(s); }

// bf16 <-> float, whichever bf16 type the toolkit has
__host__ __device__ inline float bf16_to_float(tg_bf16 v) {
#if defined(TINYGEMM_HIP) && !defined(TINYGEMM_HIP_NEW_BF16)
  return static_cast<float>(v);
#else
  return __bfloat162float(v);
#endif
}
__host__ __device__ inline tg_bf16 float_to_bf16(float v) {
#if defined(TINYGEMM_HIP) && !defined(TINYGEMM_HIP_NEW_BF16)
  return tg_bf16(v);
#else
  return __float2bfloat16_rn(v);
#endif
}

}  // namespace tg
