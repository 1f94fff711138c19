// Host-side rules of the INT4 kernels (shape checks, launch heuristic): plain C++, compiled in every
// build so CPU tests cover them and CPU-only installs report the same errors.
#include <algorithm>
#include <iterator>

#include "tinygemm/status.h"
#include "w4a16.h"

namespace tg {

void check_w4_dims(int N, int K, int group_size) {
  bool known = false;
  for (int g : kW4GroupSizes) known = known || g == group_size;
  // the message spells the list as Python's tuple (formats.GROUP_SIZES is this list)
  TG_CHECK_ARG(known, "group_size must be one of (32, 64, 128, -1) (-1 = per channel); got ", group_size);
  TG_CHECK_ARG(N > 0 && N % 16 == 0, "packed INT4 weights need N % 16 == 0 (16-wide output tiles); got N = ", N);
  TG_CHECK_ARG(K > 0 && K % 64 == 0, "packed INT4 weights need K % 64 == 0 (64-deep chunks); got K = ", K);
  TG_CHECK_ARG(group_size == -1 || K % group_size == 0, "K must be a multiple of group_size; got K = ", K,
               ", group_size = ", group_size);
}

void check_w4_shape(int N, int K, int group_size, DType dtype) {
  TG_CHECK_ARG(dtype == DType::kF16 || dtype == DType::kBF16,
               "INT4 kernels take fp16 or bf16 activations/scales");
  check_w4_dims(N, K, group_size);
}

constexpr int kGemvImpls = static_cast<int>(std::size(kGemvImplNames));

GemvImpl parse_gemv_impl(const std::string& name) {
  for (int i = 0; i < kGemvImpls; ++i)
    if (name == kGemvImplNames[i]) return static_cast<GemvImpl>(i);
  TG_CHECK_ARG(false, "unknown GEMV implementation '", name,
               "'; the implementations are 'auto', 'mma', 'simt' and 'tma'");
  return GemvImpl::kAuto;
}

const char* to_string(GemvImpl impl) {
  const int i = static_cast<int>(impl);
  return i >= 0 && i < kGemvImpls ? kGemvImplNames[i] : "invalid";
}

bool gemv_config_valid(int n_tiles, int warps) {
  bool nt = false, w = false;
  for (int v : kGemvNTiles) nt = nt || v == n_tiles;
  for (int v : kGemvWarps) w = w || v == warps;
  return nt && w && (warps != 16 || n_tiles == 1);
}

bool gemv_tma_config_valid(int n_tiles, int warps) {
  for (const auto& sh : kGemvTmaShapes)
    if (sh[0] == n_tiles && sh[1] == warps) return true;
  return false;
}

void check_gemv_config(const GemvConfig& c) {
  if (c.impl == GemvImpl::kTma) {
    TG_CHECK_ARG(gemv_tma_config_valid(c.n_tiles, c.warps),
                 "w4a16_gemv (tma): (n_tiles, warps) must be (1, 16) or (2, 8); got (", c.n_tiles, ", ", c.warps, ")");
    return;
  }
  TG_CHECK_ARG(c.n_tiles == 1 || c.n_tiles == 2 || c.n_tiles == 4, "w4a16_gemv: n_tiles must be 1, 2 or 4; got ",
               c.n_tiles);
  TG_CHECK_ARG(gemv_config_valid(c.n_tiles, c.warps),
               "w4a16_gemv: warps must be 4 or 8 (or 16 with n_tiles 1); got warps ", c.warps, ", n_tiles ", c.n_tiles);
}

W4Layout parse_layout(const std::string& name) {
  for (int i = 0; i < 2; ++i)
    if (name == kLayoutNames[i]) return static_cast<W4Layout>(i);
  TG_CHECK_ARG(false, "unknown packed layout '", name, "'; tinygemm's layouts are '", kLayoutNames[0], "' and '",
               kLayoutNames[1], "'");
  return W4Layout::kV1;
}

GemvConfig w4a16_gemv_config(int M, int N, int K, int sm_count, int cc_major, W4Layout layout) {
  GemvConfig c;
  // Either layout runs the mma implementation: the bulk-copy one (kTma, w4a16_gemv_sm90.cu) was
  // slower on every Llama-3-8B / 70B layer at M = 1-16 on an H200 (bench/results/h200/README.md),
  // so it runs only when named.
  (void)layout;
#if defined(TINYGEMM_HIP)
  c.impl = GemvImpl::kSimt;
  (void)cc_major;
#else
  c.impl = cc_major >= 8 ? GemvImpl::kMma : GemvImpl::kSimt;  // mma.m16n8k16 with bf16 needs sm_80
#endif
  const int tiles = N / 16, chunks = K / 64;
  // Measured over Llama-3-8B's layers (bench/tune_w4a16_gemv.py; the H200's sweep of the current
  // kernel is committed under bench/results/h200/sweeps/ and tests/test_harness_cpu.py checks this
  // rule against it; the H100's predates the unchecked loop):
  // - two tiles per block only for two m8 tiles (M > 8) once N gives > 8 tiles per SM (each extra
  //   tile reuses the block's x loads); at M <= 8 the two-tile kernel lost to one tile per block with
  //   4 warps on the H200 (gate_up 18.8 against 20.3 us: it needs 78 registers, three blocks per SM);
  //   four tiles never won;
  // - when the grid fits in one wave (<= 2 tiles per SM), more warps per block split K finer and
  //   keep more loads in flight: 16 warps at M <= 8, 8 for two m8 tiles (twice the registers);
  //   otherwise 8 (M <= 8) or 4 warps, so that several blocks share each SM, and 4 at M <= 8 with
  //   > 8 tiles per SM.
  const bool many = tiles >= 8 * sm_count;
  c.n_tiles = M > 8 && many ? 2 : 1;
  const bool one_wave = tiles <= 2 * sm_count;
  if (M <= 8)
    c.warps = one_wave && chunks >= 64 ? 16 : many ? 4 : chunks >= 32 ? 8 : 4;
  else
    c.warps = one_wave && chunks >= 64 ? 8 : 4;
  return c;
}

GemmSm90Config w4a16_gemm_sm90_config(int M, int N, int K, int sm_count, const Sm90ClusterCounts* clusters) {
  GemmSm90Config c;
  // Measured on an H200 over Llama-3-8B's layers (bench/tune_w4a16_gemm_sm90.py, committed results):
  // - the narrowest token tile that holds M (wgmma's N costs nothing extra up to it), 128 beyond:
  //   two 128-token CTAs beat one of 256 at M = 512 on every layer (a 256-wide tile's 128
  //   accumulator registers per thread made ptxas serialize its wgmmas);
  // - group scales on each weight in the activation dtype: applying them to each group's fp32
  //   product instead (fewer dequant instructions, one wgmma wait per group) never won.
  c.block_m = 8;
  int tile = 0;
  while (c.block_m < M && c.block_m < 128) c.block_m *= 2, ++tile;
  // The K split: the one with the fewest chunk-times in the critical path, a CTA costing its share
  // of the 64-deep chunks plus a fixed kFixedChunks (fill, drain, the cluster's reduction: the
  // sweep's times fit t = a (chunks / split) + b with b / a ~ 20 at every tile size), times the
  // waves its clusters take. Waves come from the GPU's own count of co-resident clusters (a
  // cluster lives in one GPC: on an H200 30 clusters of 4 one-CTA-per-SM tiles fit at once, not
  // 33, and split 4 measured slower than 3 on every 32-cluster layer). A larger split must be
  // more than 1 % cheaper to win; only the splits the sweep measured are candidates. Checked
  // against the H200 sweeps (bench/results/h200/README.md; tests/test_gemm_sm90_split.py):
  // summed over the layers x M of Llama-3-8B and 70B TP4, 0.1 % and 2.0 % over the best measured
  // split, against 3.6 % and 4.7 % for the SMs / CTAs rule before it.
  constexpr double kFixedChunks = 20.0;
  constexpr int kSplits[] = {1, 2, 3, 4, 6, 8};
  // At 128 tokens, three consumer warpgroups (192 columns per CTA) against two: a CTA's chunk costs
  // 1.5x the columns at 0.8 of the time per column (while one warpgroup waits on its wgmmas two
  // dequantize), in the same wave model: 192-column blocks leave N = 4096 / 8192's grids short of
  // whole waves, where two warpgroups stay. Splits of 1 or 2 only: with more, the model picks three
  // warpgroups where they measured slower (Llama-3-8B down_proj at M = 128: 46.8 against 38.3 us),
  // and the two layers where split 3 won gain 1-2 us (qkv_proj). Fitted to the H200's tiles sweep
  // (bench/results/h200/sweeps/tune_sm90_tiles_*; tests/test_gemm_sm90_split.py): summed over
  // Llama-3-8B's and 70B TP4's layers at M = 128, 256 and 512 the picks are 0.5 % over the best
  // measured (any factor in 0.78-0.85), against 7 % for two warpgroups only.
  constexpr double kWg3ChunkCost = 1.5 * 0.8;
  constexpr int kWg3MaxSplit = 2;
  const int per_sm = c.block_m <= 64 ? 2 : 1;  // Sm90Shape::kMinBlocks, for the fallback below
  const int stages = (K / 64 + 1) / 2;         // 2 chunks per stage, the last one maybe half
  c.split = 1;
  c.warpgroups = 2;
  double best = 0;
  for (const int wg : {2, 3}) {
    if (wg == 3 && c.block_m != 128) break;
    const int ctas = ((N + 64 * wg - 1) / (64 * wg)) * ((M + c.block_m - 1) / c.block_m);  // clusters
    for (const int s : kSplits) {
      if (s > stages || (wg == 3 && s > kWg3MaxSplit)) break;
      int cap = clusters ? (*clusters)[tile][s - 1] : w4a16_gemm_sm90_clusters(c.block_m, s);
      if (cap < 0) continue;                                   // no cluster of this size fits this GPU
      if (cap == 0) cap = std::max(1, sm_count * per_sm / s);  // unknown (not a Hopper build): SMs / split
      const int waves = (ctas + cap - 1) / cap;
      const double cost = waves * (wg == 3 ? kWg3ChunkCost : 1.0) * (2.0 * ((stages + s - 1) / s) + kFixedChunks);
      if (best == 0 || cost < best * 0.99) {
        best = cost;
        c.split = s;
        c.warpgroups = wg;
      }
    }
  }
  return c;
}

}  // namespace tg
