// Host launchers of the packed-INT4 (W4A16) kernels. Pointers, sizes and a stream: no torch.
//
// Packed weight layout "tinygemm-w4-v1" (formats.LAYOUT; python/tinygemm/formats.py builds it and
// gives the reasons):
//   int32 words, index ((tile * (K/64) + chunk) * 32 + lane) * 4 + j  with tile = n / 16,
//   chunk = k / 64, lane = 4 * g + t (g = 0..7, t = 0..3), j = 0..3. Word (lane, j) of a
//   (tile, chunk) holds the 8 nibbles p = 0..7 of
//     n = 16 * tile + g + 8 * (p & 1),
//     k = 64 * chunk + 32 * (j >> 1) + 8 * t + 4 * (j & 1) + 2 * ((p >> 1) & 1) + (p >> 2)
//   at bits 4p..4p+3. Stored value q in 0..15; weight = (q - z) * s with z = 8 (symmetric) or the
//   group's zero point, s the group's scale. scales / zeros: [K / group_size, N] in the activation
//   dtype (group_size -1: one group, per channel).
//
// Packed weight layout "tinygemm-w4-sm90" (formats.LAYOUT_SM90; w4a16_gemm_sm90): the same words,
// tiles and chunks, with k in its natural order inside each 16-deep step j (what wgmma's register A
// fragment holds and what the bulk tensor copy of x leaves in shared memory):
//     n = 16 * tile + g + 8 * (p & 1),   k = 64 * chunk + 16 * j + 2 * t + (p >> 2) + 8 * ((p >> 1) & 1)
#pragma once

#include <cstdint>
#include <string>

#include "../harness/device_ops.h"

namespace tg {

// Chunks per pipeline stage at n_tiles = 1 (one stage at n_tiles >= 2); two stages are in flight, so
// each lane keeps 2 x 64 bytes of weights outstanding: with 8 warps per block and 2+ blocks per SM,
// ~64 KB per SM, above the ~23 KB Little's law asks at 3 TB/s and ~1 us latency.
constexpr int kGemvUnroll = 2;

// The GEMV's implementations of the same function: kMma, tensor-core mma.m16n8k16 with the weights
// streamed through registers (w4a16_gemv.cu; NVIDIA sm_80+, reads either layout); kSimt, portable
// FMA code (any GPU, AMD's wave64 included; tinygemm-w4-v1 only); kTma, the same mma fed by bulk
// copies into a shared-memory ring by a producer warp, one persistent CTA per SM
// (w4a16_gemv_sm90.cu; Hopper sm_90a builds, tinygemm-w4-sm90, M <= 16). kAuto: the heuristic's pick
// for the device. The integer values are the old `impl=0/1/2` of the Python binding, which still
// accepts them.
enum class GemvImpl { kAuto = 0, kMma = 1, kSimt = 2, kTma = 3 };
constexpr const char* kGemvImplNames[] = {"auto", "mma", "simt", "tma"};
GemvImpl parse_gemv_impl(const std::string& name);  // std::invalid_argument naming the known ones
const char* to_string(GemvImpl impl);

// One launch configuration of the GEMV; a 0 / kAuto field is the heuristic's (w4a16_gemv_config).
struct GemvConfig {
  int n_tiles = 0;                  // 16-wide output tiles per block: one of kGemvNTiles (kTma: of kGemvTmaShapes)
  int warps = 0;                    // warps per block, splitting K between them: one of kGemvWarps (kTma: consumer warps)
  GemvImpl impl = GemvImpl::kAuto;  // which implementation runs (the fields above are the mma one's)
};
// The compiled (n_tiles, warps) of the mma implementation: every pair, except 16 warps only with
// n_tiles 1 (a block of 16 warps x 2+ tiles runs out of registers). The tuning script sweeps them.
constexpr int kGemvNTiles[] = {1, 2, 4};
constexpr int kGemvWarps[] = {4, 8, 16};
bool gemv_config_valid(int n_tiles, int warps);
// The compiled (n_tiles, consumer warps) of the kTma implementation: one tile with 16 warps (two
// chunks each per stage), two tiles with 8 (one chunk each, x shared by the two tiles).
constexpr int kGemvTmaShapes[][2] = {{1, 16}, {2, 8}};
bool gemv_tma_config_valid(int n_tiles, int warps);
// std::invalid_argument naming the field and its allowed values unless gemv_config_valid.
void check_gemv_config(const GemvConfig& c);

// The packed layouts above, by name (formats.py reads the names from here).
enum class W4Layout { kV1 = 0, kSm90 = 1 };
constexpr const char* kLayoutNames[] = {"tinygemm-w4-v1", "tinygemm-w4-sm90"};
W4Layout parse_layout(const std::string& name);  // std::invalid_argument naming the known layouts

// y[M, N] = x[M, K] . W[K, N]; x, y, scales, zeros in `dtype` (fp16 or bf16); zeros null = symmetric.
// The mma implementation reads either layout (only its x loads differ); the simt one tinygemm-w4-v1.
void w4a16_gemv(const void* x, const void* qweight, const void* scales, const void* zeros, void* y,
                int M, int N, int K, int group_size, DType dtype, std::uintptr_t stream,
                GemvConfig cfg = {}, W4Layout layout = W4Layout::kV1);

// The kTma implementation (w4a16_gemv_sm90.cu; a stub that says why in builds without sm_90a code):
// tinygemm-w4-sm90, 1 <= M <= 16, a Hopper GPU. w4a16_gemv calls it for impl kTma.
void w4a16_gemv_tma(const void* x, const void* qweight, const void* scales, const void* zeros, void* y, int M,
                    int N, int K, int group_size, DType dtype, std::uintptr_t stream, const GemvConfig& cfg);

// W[K, N] (row-major, `dtype`) from the packed weights.
void w4_dequant(const void* qweight, const void* scales, const void* zeros, void* w, int N, int K,
                int group_size, DType dtype, std::uintptr_t stream);

// GPTQ qweight (int32 [K/8, N], k's nibble at bits 4 (k % 8) of row k / 8) to tinygemm-w4-v1
// (gptq_to_layout.cu; formats.gptq_to_layout).
void gptq_to_layout(const void* gptq_qweight, void* qweight, int N, int K, std::uintptr_t stream);

// The configuration the heuristic picks (what w4a16_gemv with cfg = {} runs) for a weight in `layout`.
GemvConfig w4a16_gemv_config(int M, int N, int K, int sm_count, int cc_major, W4Layout layout = W4Layout::kV1);

struct GemmSm90Config {
  int block_m = 0;  // tokens per CTA (wgmma's N): 8, 16, 32, 64 or 128 (0 = heuristic)
  int split = 0;    // CTAs of a cluster splitting K, 1..8 (0 = heuristic)
  int warpgroups = 0;  // consumer warpgroups per CTA (64 columns each): 2, or 3 at block_m 128 (0 = heuristic)
};

// y[M, N] = x[M, K] . W[K, N] on Hopper tensor cores, W in tinygemm-w4-sm90 (above); Hopper (sm_90a)
// builds only, any M.
void w4a16_gemm_sm90(const void* x, const void* qweight, const void* scales, const void* zeros, void* y,
                     int M, int N, int K, int group_size, DType dtype, std::uintptr_t stream,
                     GemmSm90Config cfg = {});

// The configuration the heuristic picks (what w4a16_gemm_sm90 with cfg = {} runs). `clusters`, when
// given, replaces the current GPU's co-resident cluster counts (w4a16_gemm_sm90_clusters) as
// clusters[tile][split - 1], tile 0..4 for block_m 8..128: what the heuristic would pick on that GPU.
using Sm90ClusterCounts = int[5][8];
GemmSm90Config w4a16_gemm_sm90_config(int M, int N, int K, int sm_count, const Sm90ClusterCounts* clusters = nullptr);

// How many clusters of `split` CTAs of the block_m-token kernel the current GPU runs at once
// (cudaOccupancyMaxActiveClusters: a cluster must fit in one GPC, so this is not SMs / split);
// -1 when none fits, 0 where unknown (a build without Hopper code, or not a Hopper GPU). Cached per
// device.
int w4a16_gemm_sm90_clusters(int block_m, int split);

// The packed layouts' shape rules, the one home of them (formats.check_shape, gptq_to_layout and
// every INT4 kernel call these): group_size one of kW4GroupSizes (-1 = one group per column), N % 16 == 0
// (16-wide output tiles), K % 64 == 0 (64-deep chunks), K % group_size == 0. Throws
// std::invalid_argument (Python: ValueError) naming the constraint and the values.
constexpr int kW4GroupSizes[] = {32, 64, 128, -1};
void check_w4_dims(int N, int K, int group_size);
// check_w4_dims plus the kernels' activation dtypes (fp16 or bf16).
void check_w4_shape(int N, int K, int group_size, DType dtype);

}  // namespace tg
