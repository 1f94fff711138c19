// Device helpers shared by the INT4 kernels: the packed layout's index arithmetic and dtype traits.
#pragma once

#include <cstring>

#include "tinygemm/gpu.h"

namespace tg {

// Position of nibble p of word (lane, j) inside its (16 n x 64 k) tile-chunk; see w4a16.h.
__device__ __forceinline__ int nib_n(int lane, int p) { return (lane >> 2) + 8 * (p & 1); }
__device__ __forceinline__ int nib_k(int lane, int j, int p) {
  return 32 * (j >> 1) + 8 * (lane & 3) + 4 * (j & 1) + 2 * ((p >> 1) & 1) + (p >> 2);
}

// A 16-bit value (fp16 / bf16) in both halves of a 32-bit register: an x2 operand.
template <typename T>
__device__ __forceinline__ std::uint32_t splat(T v) {
  std::uint16_t h;
  memcpy(&h, &v, 2);
  return static_cast<std::uint32_t>(h) * 0x10001u;
}

// (a & b) | c in one LOP3 (the compiler emits two for the C expression): the dequant's nibble
// extraction with the magic number OR-ed in.
__device__ __forceinline__ std::uint32_t and_or(std::uint32_t a, std::uint32_t b, std::uint32_t c) {
#if defined(TINYGEMM_HIP)
  return (a & b) | c;
#else
  std::uint32_t r;
  asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(r) : "r"(a), "r"(b), "r"(c));
  return r;
#endif
}

template <typename T>
struct Traits;

template <>
struct Traits<tg_half> {
  // 0x6400 is 1024.0 in fp16, whose ulp is 1: OR-ing a nibble into the low mantissa bits gives
  // 1024 + q exactly, two lanes at a time, with one logic op instead of an int -> float convert.
  static constexpr std::uint32_t kMagic2 = 0x64006400u;
  static constexpr float kMagic = 1024.0f;
  __device__ static float to_float(tg_half v) { return __half2float(v); }
  __device__ static tg_half from_float(float v) { return __float2half_rn(v); }
};

template <>
struct Traits<tg_bf16> {
  // 0x4300 is 128.0 in bf16 (ulp 1): the same trick with bf16's 7-bit mantissa.
  static constexpr std::uint32_t kMagic2 = 0x43004300u;
  static constexpr float kMagic = 128.0f;
  __device__ static float to_float(tg_bf16 v) { return bf16_to_float(v); }
  __device__ static tg_bf16 from_float(float v) { return float_to_bf16(v); }
};

}  // namespace tg
