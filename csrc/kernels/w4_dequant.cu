// w4_dequant: the packed INT4 weights (layout in w4a16.h) to W[K, N] in fp16 / bf16, for
// dequant + matmul and for tests. A block owns 4 tiles x 1 chunk (64 n x 64 k): each thread decodes
// one word (coalesced 4-byte loads), the block transposes through shared memory and stores 16-byte
// row segments. No warp-level operations, so the same code runs on wave64 AMD GPUs.
#include "tinygemm/gpu.h"
#include "tinygemm/status.h"
#include "w4_common.cuh"
#include "w4a16.h"

namespace tg {
namespace {

constexpr int kTiles = 4;  // 64 output columns per block: 128-byte row segments on store

template <typename T>
__global__ void __launch_bounds__(kTiles * 128) w4_dequant_kernel(const int* __restrict__ qw, const T* __restrict__ scales,
                                                                  const T* __restrict__ zeros, T* __restrict__ w,
                                                                  int N, int K, int group_size) {
  // raw 16-bit storage: vendor half types have constructors, which __shared__ arrays must not run
  __shared__ std::uint16_t tile_smem[64][kTiles * 16 + 8];  // +16 bytes per row against bank conflicts
  const int chunks = K / 64, ntiles = N / 16;
  const int c = blockIdx.y, tile0 = blockIdx.x * kTiles;
  const int tl = threadIdx.x / 128, word = threadIdx.x % 128, lane = word / 4, j = word % 4;
  const int tile = tile0 + tl;
  const int gs = group_size > 0 ? group_size : K;
  if (tile < ntiles) {
    const unsigned q = static_cast<unsigned>(qw[(static_cast<std::size_t>(tile) * chunks + c) * 128 + word]);
#pragma unroll
    for (int p = 0; p < 8; ++p) {
      const int nl = nib_n(lane, p), kl = nib_k(lane, j, p);
      const int n = tile * 16 + nl, grp = (c * 64 + kl) / gs;
      const float s = Traits<T>::to_float(scales[static_cast<std::size_t>(grp) * N + n]);
      const float z = zeros ? Traits<T>::to_float(zeros[static_cast<std::size_t>(grp) * N + n]) : 8.f;
      const T v = Traits<T>::from_float((static_cast<float>((q >> (4 * p)) & 0xFu) - z) * s);
      memcpy(&tile_smem[kl][tl * 16 + nl], &v, 2);
    }
  }
  __syncthreads();
  // 64 rows x (kTiles * 16) columns, 8 elements (16 bytes) per thread and step
  constexpr int kSeg = kTiles * 16 / 8;
  for (int i = threadIdx.x; i < 64 * kSeg; i += blockDim.x) {
    const int kl = i / kSeg, seg = i % kSeg;
    const int n = tile0 * 16 + seg * 8;
    if (n >= N) continue;
    uint4 v;
    memcpy(&v, &tile_smem[kl][seg * 8], 16);
    *reinterpret_cast<uint4*>(w + static_cast<std::size_t>(c * 64 + kl) * N + n) = v;
  }
}

}  // namespace

void w4_dequant(const void* qweight, const void* scales, const void* zeros, void* w, int N, int K, int group_size,
                DType dtype, std::uintptr_t stream) {
  check_w4_shape(N, K, group_size, dtype);
  TG_CHECK_ARG(reinterpret_cast<std::uintptr_t>(w) % 16 == 0, "w4_dequant: output must be 16-byte aligned");
  const dim3 grid((N / 16 + kTiles - 1) / kTiles, K / 64);
  auto st = as_stream(stream);
  if (dtype == DType::kF16)
    w4_dequant_kernel<tg_half><<<grid, kTiles * 128, 0, st>>>(
        static_cast<const int*>(qweight), static_cast<const tg_half*>(scales), static_cast<const tg_half*>(zeros),
        static_cast<tg_half*>(w), N, K, group_size);
  else
    w4_dequant_kernel<tg_bf16><<<grid, kTiles * 128, 0, st>>>(
        static_cast<const int*>(qweight), static_cast<const tg_bf16*>(scales), static_cast<const tg_bf16*>(zeros),
        static_cast<tg_bf16*>(w), N, K, group_size);
  TG_CHECK_LAUNCH();
}

}  // namespace tg
