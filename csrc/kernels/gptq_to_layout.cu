// gptq_to_layout: a GPTQ checkpoint's qweight (int32 [K/8, N], row k/8 holds k's nibble at bits
// 4 (k % 8)) to tinygemm's packed layout tinygemm-w4-v1 (w4a16.h), on the GPU at model load, as
// Marlin's repack does for its own layout. One name from here to _C.gptq_to_layout and
// formats.gptq_to_layout (the CPU path beside it); formats.from_gptq is the whole checkpoint's
// converter that calls it. One thread per output word: the word's 8 nibbles come from rows
// k/8 = 8 chunk + 4 (j >> 1) + t of columns n and n + 8 (nib_k's low 3 bits never carry into
// k/8), so each thread reads 2 GPTQ words and writes one. No warp-level operations: wave64-safe.
#include "tinygemm/gpu.h"
#include "tinygemm/status.h"
#include "w4_common.cuh"
#include "w4a16.h"

namespace tg {
namespace {

__global__ void gptq_to_layout_kernel(const unsigned* __restrict__ gptq, unsigned* __restrict__ out, int N, int K) {
  const std::size_t idx = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int chunks = K / 64;
  if (idx >= static_cast<std::size_t>(N / 16) * chunks * 128) return;
  const int j = static_cast<int>(idx % 4), lane = static_cast<int>(idx / 4 % 32);
  const std::size_t tc = idx / 128;
  const int c = static_cast<int>(tc % chunks), tile = static_cast<int>(tc / chunks);
  const int row = (c * 64 + nib_k(lane, j, 0)) / 8;  // the same for all 8 nibbles of the word
  const int n0 = tile * 16 + nib_n(lane, 0);
  const unsigned src[2] = {gptq[static_cast<std::size_t>(row) * N + n0], gptq[static_cast<std::size_t>(row) * N + n0 + 8]};
  unsigned w = 0;
#pragma unroll
  for (int p = 0; p < 8; ++p) {
    const int k_in_word = nib_k(lane, j, p) % 8;
    w |= ((src[p & 1] >> (4 * k_in_word)) & 0xFu) << (4 * p);
  }
  out[idx] = w;
}

}  // namespace

void gptq_to_layout(const void* gptq_qweight, void* qweight, int N, int K, std::uintptr_t stream) {
  check_w4_dims(N, K, -1);  // the layout's shape rules (w4a16_host.cpp); groups do not matter here
  const std::size_t words = static_cast<std::size_t>(N / 16) * (K / 64) * 128;
  constexpr int kThreads = 256;
  const std::size_t blocks = (words + kThreads - 1) / kThreads;
  TG_CHECK_ARG(blocks <= 0x7fffffffULL, "weight too large for one launch: ", words, " words");
  gptq_to_layout_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, as_stream(stream)>>>(
      static_cast<const unsigned*>(gptq_qweight), static_cast<unsigned*>(qweight), N, K);
  TG_GPU_CHECK(cudaGetLastError());
}

}  // namespace tg
