// The GEMV family's tensor-core core, shared by its kernels (w4a16_gemv.cu: register-pipelined,
// any sm_80+; w4a16_gemv_sm90.cu: fed by bulk copies into a shared-memory ring, Hopper): the mma,
// the exact (q - z) dequant, and the compute of one stage of chunks held in registers.
#pragma once

#include <cstring>
#include <type_traits>

#include "tinygemm/gpu.h"
#include "w4_common.cuh"
#include "w4a16.h"

namespace tg {
namespace {

#if !defined(TINYGEMM_HIP)
// mma.m16n8k16, fp32 accumulate. A: 4 x b32 (8 halves), B: 2 x b32, C/D: 4 floats.
template <typename T>
__device__ __forceinline__ void mma_16816(float* c, const std::uint32_t* a, std::uint32_t b0, std::uint32_t b1);

template <>
__device__ __forceinline__ void mma_16816<tg_half>(float* c, const std::uint32_t* a, std::uint32_t b0,
                                                   std::uint32_t b1) {
#if __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

template <>
__device__ __forceinline__ void mma_16816<tg_bf16>(float* c, const std::uint32_t* a, std::uint32_t b0,
                                                   std::uint32_t b1) {
#if __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

// (1024 + q) - (1024 + z) per 16-bit half, exact: values in [-15, 15].
template <typename T>
__device__ __forceinline__ std::uint32_t sub2(std::uint32_t a, std::uint32_t b);
template <>
__device__ __forceinline__ std::uint32_t sub2<tg_half>(std::uint32_t a, std::uint32_t b) {
  __half2 x, y;
  memcpy(&x, &a, 4);
  memcpy(&y, &b, 4);
  x = __hsub2(x, y);
  std::uint32_t r;
  memcpy(&r, &x, 4);
  return r;
}
template <>
__device__ __forceinline__ std::uint32_t sub2<tg_bf16>(std::uint32_t a, std::uint32_t b) {
#if __CUDA_ARCH__ >= 800
  __nv_bfloat162 x, y;
  memcpy(&x, &a, 4);
  memcpy(&y, &b, 4);
  x = __hsub2(x, y);
  std::uint32_t r;
  memcpy(&r, &x, 4);
  return r;
#else
  return a;
#endif
}

// ldmatrix .x4: four 8 x 8 b16 matrices, lane l giving the address of row l % 8 of matrix l / 8;
// each lane gets (row g, columns 2t, 2t + 1) of each, the mma A / B fragment order.
__device__ __forceinline__ uint4 ldmatrix_x4(const void* p) {
  uint4 r = make_uint4(0, 0, 0, 0);
#if __CUDA_ARCH__ >= 800
  const std::uint32_t a = static_cast<std::uint32_t>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
               : "r"(a));
#endif
  return r;
}

// The 8 nibbles of a packed word as the mma A fragment's 4 registers, (q - z) exactly in T:
// a[p] holds nibbles p (low half) and p + 4 (high half); p even is row g (zero point + 1024 in zg),
// p odd row g + 8 (zg8). Generic: ((w >> 4p) & 0x000F000F) | magic, minus (magic + z): 3 shifts per
// word. fp16 (10 mantissa bits) also takes the odd nibbles in place, as 1024 + 16 q, and scales them
// back with one fma, (1024 + 16 q) / 16 - (64 + z) = q - z, all exact: 1 shift per word, 2 fewer
// instructions per word in a kernel that is instruction-bound (bench/results/h200/README.md). bf16's
// 7 mantissa bits cannot hold 16 q under the magic number, so it keeps the generic form.
__device__ __forceinline__ std::uint32_t fma2_f16(std::uint32_t a, std::uint32_t b, std::uint32_t c) {
  std::uint32_t r;
  asm("fma.rn.f16x2 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(c));
  return r;
}

template <typename T>
__device__ __forceinline__ void dequant_word(std::uint32_t w, std::uint32_t zg, std::uint32_t zg8, std::uint32_t (&a)[4]) {
  if constexpr (std::is_same<T, tg_half>::value) {
    constexpr std::uint32_t kSixteenth = 0x2C002C00u, kMinusOne = 0xBC00BC00u, k960 = 0x63806380u;
    const std::uint32_t zn = fma2_f16(zg8, kMinusOne, k960);  // -(1024 + z) + 960 = -(64 + z)
    const std::uint32_t w8 = w >> 8;
    a[0] = sub2<T>(and_or(w, 0x000F000Fu, Traits<T>::kMagic2), zg);
    a[1] = fma2_f16(and_or(w, 0x00F000F0u, Traits<T>::kMagic2), kSixteenth, zn);
    a[2] = sub2<T>(and_or(w8, 0x000F000Fu, Traits<T>::kMagic2), zg);
    a[3] = fma2_f16(and_or(w8, 0x00F000F0u, Traits<T>::kMagic2), kSixteenth, zn);
  } else {
#pragma unroll
    for (int p = 0; p < 4; ++p) a[p] = sub2<T>(and_or(w >> (4 * p), 0x000F000Fu, Traits<T>::kMagic2), p & 1 ? zg8 : zg);
  }
}

// One pipeline stage: the loads for kStage chunks x NT tiles of one warp, held in registers.
// NT >= 2 already has NT 16-byte loads per lane per chunk, so one chunk per stage keeps the same
// bytes in flight (64 per lane) at lower register cost.
template <typename T, int GS, bool ASYM, int NT, int MT>
struct GemvStage {
  static constexpr int kChunks = NT >= 2 ? 1 : kGemvUnroll;
  static constexpr int NG = GS == 32 ? 2 : 1;  // scale groups per 64-deep chunk
  int4 wq[kChunks][NT];
  uint4 xv[kChunks][MT][2];  // [.., j / 2]: x,y feed mma j = 2h, z,w feed mma 2h + 1
  float sc[kChunks][NT][NG][2];
  std::uint32_t zm[kChunks][NT][NG][2];
};

// The GEMVs' per-lane accumulator tiles [NT][MT][4] (the mma C fragments of NT x MT tiles) to zero.
template <int NT, int MT>
__device__ __forceinline__ void zero_tiles(float (&a)[NT][MT][4]) {
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int i = 0; i < 4; ++i) a[nt][mt][i] = 0.f;
}

// One stage's mmas into acc. A group's scale multiplies the fp32 sum of its mmas (part), not each
// weight. CONSEC: the stage's chunks are consecutive in k and the stage starts on a group boundary
// (the register GEMV's stages), so a group may span the stage's chunks: one flush per group, not
// per chunk (GS = 128: 4 FFMAs per tile per stage instead of 8, one scale load instead of two), and
// per-channel scales (GS = 0, applied after the loop) accumulate straight into acc.
template <typename T, int GS, bool ASYM, int NT, int MT, bool CONSEC = false>
__device__ __forceinline__ void compute_stage(GemvStage<T, GS, ASYM, NT, MT>& st, float (&acc)[NT][MT][4]) {
  using S = GemvStage<T, GS, ASYM, NT, MT>;
  constexpr int kStageMmas = S::kChunks * 4;
  constexpr int kGroupMmas = !CONSEC ? (GS == 32 ? 2 : 4)
                             : GS == 0 ? kStageMmas
                             : (GS / 16 < kStageMmas ? GS / 16 : kStageMmas);  // mmas per flush
  constexpr bool kDirect = CONSEC && GS == 0;  // no scale in the loop: mma into acc itself
  float part[NT][MT][4];
  zero_tiles(part);
#pragma unroll
  for (int u = 0; u < S::kChunks; ++u) {
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int gi = S::NG == 2 ? j / 2 : 0;
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        const int4 w4 = st.wq[u][nt];
        const std::uint32_t word = static_cast<std::uint32_t>(j == 0 ? w4.x : j == 1 ? w4.y : j == 2 ? w4.z : w4.w);
        std::uint32_t a[4];
        dequant_word<T>(word, st.zm[u][nt][gi][0], st.zm[u][nt][gi][1], a);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          const uint4& xb = st.xv[u][mt][j >> 1];
          mma_16816<T>(kDirect ? acc[nt][mt] : part[nt][mt], a, (j & 1) ? xb.z : xb.x, (j & 1) ? xb.w : xb.y);
        }
      }
      if (!kDirect && (u * 4 + j + 1) % kGroupMmas == 0) {
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            // the scales of the group this mma ends (the stage's earlier chunks share it)
            const float s0 = GS > 0 ? st.sc[u][nt][gi][0] : 1.f, s1 = GS > 0 ? st.sc[u][nt][gi][1] : 1.f;
            acc[nt][mt][0] += s0 * part[nt][mt][0];
            acc[nt][mt][1] += s0 * part[nt][mt][1];
            acc[nt][mt][2] += s1 * part[nt][mt][2];
            acc[nt][mt][3] += s1 * part[nt][mt][3];
#pragma unroll
            for (int i = 0; i < 4; ++i) part[nt][mt][i] = 0.f;
          }
      }
    }
  }
}

#endif  // !TINYGEMM_HIP

}  // namespace
}  // namespace tg
