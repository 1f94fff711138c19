// w4a16_gemm_sm90: y[M, N] = x[M, K] . W[K, N] on Hopper's tensor cores (sm_90a), W packed INT4 in
// the "sm90" layout (w4a16.h; formats.py builds it), fp32 accumulation.
//
// Swap AB: the weights are wgmma's A operand (64 output columns n per warpgroup) and the tokens its
// N dimension (8..128 wide here), so M = 8 or 16 wastes no tensor-core work on padding, and the weight
// tile is dequantized once for all the tokens of the block. Per CTA:
//   - one producer warp issues the bulk tensor copies (TMA) of a stage: KC chunks (64 k each) of the
//     packed weights of 8 * WG tiles (16 n each), the matching x tile [BM tokens x 64 k] per chunk
//     (128-byte swizzled, the layout wgmma reads B in), and the stage's group scales (and zeros);
//   - WG consumer warpgroups each own 64 columns n: a lane reads its 16-byte weight word group from
//     shared memory, turns it into the register A fragment of 4 wgmma k16 steps ((q - z) * s in the
//     activation dtype, the 1024 + q magic-number trick: no int->float conversions), and issues
//     wgmma with x from shared memory;
//   - STAGES-deep full/empty mbarrier ring between them, so weight bytes stay in flight while the
//     tensor cores work;
//   - split-K across the CTAs of a thread-block cluster (gridDim.z = cluster size): each CTA
//     accumulates a K range, parks its fp32 tile in shared memory, and the cluster sums the tiles
//     through distributed shared memory (no workspace, no second kernel, safe under CUDA graphs);
//     this is how narrow layers (N = 4096: 32 column blocks) fill 132 SMs.
// Per-channel scales (group_size -1) are applied to the fp32 result instead of each weight.
#include <algorithm>
#include <atomic>
#include <cstring>

#include <cuda.h>
#include <cudaTypedefs.h>

#include "tinygemm/gpu.h"
#include "tinygemm/status.h"
#include "sm90_common.cuh"
#include "w4_common.cuh"
#include "w4_mma.cuh"
#include "w4a16.h"
#include "wgmma_rs.cuh"

namespace tg {
namespace {

constexpr int kTileBytes = 512;  // one (16 n x 64 k) tile-chunk of packed weights
constexpr int kRedPad = 4;       // fp32 row padding of the epilogue tile: conflict-free stores

template <int BM, int WG>
struct Sm90Shape {
  static constexpr int kBN = 64 * WG;
  static constexpr int kTiles = kBN / 16;
  // Two 64-deep chunks per stage: a group of 128 per stage, half the barrier traffic of one chunk.
  static constexpr int kKC = 2;
  // Blocks of up to 64 tokens run two CTAs per SM (the other CTA streams while one reduces or
  // drains); wider ones one CTA with the whole shared memory.
  static constexpr int kMinBlocks = BM <= 64 ? 2 : 1;
  static constexpr int kBudget = kMinBlocks == 2 ? 110 * 1024 : 220 * 1024;
  static constexpr int kX = kKC * BM * 128;                // x: KC boxes of [BM][64] halves
  static constexpr int kW = kKC * kTiles * kTileBytes;     // weights
  static constexpr int kS = 2 * kKC * kBN * 2;             // scales: up to 2 groups per chunk (group 32)
  static constexpr int kStageBytes = kX + kW + 2 * kS;     // + zeros
  static constexpr int kStages = std::min(8, (kBudget - 1024) / kStageBytes);
  static constexpr int kRed = BM * (kBN + kRedPad) * 4;    // epilogue tile, aliases the stages
  static constexpr int kSmem = std::max(kStages * kStageBytes, kRed) + 2 * 8 * kStages + 1024;
  static constexpr int kThreads = WG * 128 + 32;
  static_assert(kStages >= 2, "a stage ring needs two stages");
  static_assert(kX % 1024 == 0, "128-byte swizzled x boxes need 1024-byte alignment");
};

struct Sm90Params {
  int M, N, log2_group, asym, stages_total, stages_per_split, gps;
  const void* scales;  // per-channel scales (group_size -1), applied in the epilogue
  const void* zeros;   // per-channel zeros (group_size -1 with zero points)
  void* y;
};

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
// wgmma's shared-memory descriptor for a K-major [rows][64 halves] tile in the 128-byte swizzle:
// 8-row core groups 1024 bytes apart (SBO), layout type 1 (128B swizzle) in bits 62-63.
__device__ __forceinline__ std::uint64_t desc_sw128(const void* p) {
  const std::uint64_t addr = smem_addr(p);
  return ((addr & 0x3FFFF) >> 4) | (static_cast<std::uint64_t>(1024 >> 4) << 32) | (1ull << 62);
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(N) : "memory"); }

__device__ __forceinline__ void cluster_sync() {
  asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;" ::: "memory");
}
__device__ __forceinline__ float4 ld_cluster_f4(const float* p, int rank) {
  std::uint32_t remote;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(remote) : "r"(smem_addr(p)), "r"(rank));
  float4 v;
  asm volatile("ld.shared::cluster.v4.f32 {%0, %1, %2, %3}, [%4];"
               : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w)
               : "r"(remote));
  return v;
}
__device__ __forceinline__ int cluster_rank() {
  int r;
  asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));
  return r;
}

// Packed x2 arithmetic in the activation dtype: sub / add / mul of two halves at once, one
// instruction each (hadd2<T>, hmul2<T>).
#define TG_X2_OP(NAME, PTX)                                                                   \
  template <typename T>                                                                       \
  __device__ __forceinline__ std::uint32_t NAME(std::uint32_t a, std::uint32_t b);            \
  template <>                                                                                 \
  __device__ __forceinline__ std::uint32_t NAME<tg_half>(std::uint32_t a, std::uint32_t b) {  \
    std::uint32_t r;                                                                          \
    asm(PTX ".rn.f16x2 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));                              \
    return r;                                                                                 \
  }                                                                                           \
  template <>                                                                                 \
  __device__ __forceinline__ std::uint32_t NAME<tg_bf16>(std::uint32_t a, std::uint32_t b) {  \
    std::uint32_t r;                                                                          \
    asm(PTX ".rn.bf16x2 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));                             \
    return r;                                                                                 \
  }
TG_X2_OP(hadd2, "add")
TG_X2_OP(hmul2, "mul")
#undef TG_X2_OP

#endif  // __CUDA_ARCH_FEAT_SM90_ALL

template <typename T, int BM, int WG>
__global__ void __launch_bounds__(Sm90Shape<BM, WG>::kThreads, Sm90Shape<BM, WG>::kMinBlocks)
    w4a16_gemm_sm90_kernel(const __grid_constant__ CUtensorMap tm_x, const __grid_constant__ CUtensorMap tm_w,
                           const __grid_constant__ CUtensorMap tm_s, const __grid_constant__ CUtensorMap tm_z,
                           const Sm90Params p) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using S = Sm90Shape<BM, WG>;
  constexpr int KC = S::kKC, BN = S::kBN, STAGES = S::kStages;
  // The kernel has no static shared memory, so the dynamic window starts at the CTA's shared base,
  // which is 1024-byte aligned as the swizzled x boxes need (checked: a misaligned tile would be
  // read back in the wrong swizzle). Indexing the array itself keeps the accesses LDS, not generic.
  extern __shared__ __align__(1024) unsigned char smem[];
  if (threadIdx.x == 0 && (smem_addr(smem) & 1023) != 0) __trap();
  auto x_st = [&](int s) { return smem + s * S::kStageBytes; };
  auto w_st = [&](int s) { return smem + s * S::kStageBytes + S::kX; };
  auto s_st = [&](int s) { return reinterpret_cast<const T*>(smem + s * S::kStageBytes + S::kX + S::kW); };
  auto z_st = [&](int s) { return reinterpret_cast<const T*>(smem + s * S::kStageBytes + S::kX + S::kW + S::kS); };
  std::uint64_t* full = reinterpret_cast<std::uint64_t*>(smem + std::max(STAGES * S::kStageBytes, S::kRed));
  std::uint64_t* empty = full + STAGES;

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int m0 = blockIdx.x * BM, n0 = blockIdx.y * BN, split = blockIdx.z;
  const int it0 = split * p.stages_per_split;
  const int it1 = std::min(p.stages_total, it0 + p.stages_per_split);
  const int nst = std::max(0, it1 - it0);

  if (threadIdx.x == WG * 128) {  // the producer's lane 0, while thread 0 sets up the barriers
    prefetch_map(&tm_x);
    prefetch_map(&tm_w);
    if (p.gps) {
      prefetch_map(&tm_s);
      if (p.asym) prefetch_map(&tm_z);
    }
  }
  if (threadIdx.x == 0) {
    for (int s = 0; s < STAGES; ++s) {
      mbar_init(&full[s], 1);
      mbar_init(&empty[s], WG * 4);  // lane 0 of every consumer warp
    }
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncthreads();

  float acc[BM / 2];
#pragma unroll
  for (int i = 0; i < BM / 2; ++i) acc[i] = 0.f;
  const int wg = warp >> 2, wq = warp & 3;  // consumer warpgroup, warp within it
  const int g = lane >> 2, t = lane & 3;

  if (warp == WG * 4) {
    // producer: one lane issues every copy of a stage, the full barrier counts their bytes
    if (lane == 0) {
      const std::uint32_t bytes = S::kX + S::kW + (p.gps ? p.gps * BN * 2 * (p.asym ? 2 : 1) : 0);
      for (int i = 0; i < nst; ++i) {
        const int s = i % STAGES;
        mbar_wait(&empty[s], ((i / STAGES) & 1) ^ 1);
        mbar_expect_tx(&full[s], bytes);
        const int c = (it0 + i) * KC;
#pragma unroll
        for (int kc = 0; kc < KC; ++kc) tma_2d(x_st(s) + kc * BM * 128, &tm_x, (c + kc) * 64, m0, &full[s]);
        tma_3d(w_st(s), &tm_w, 0, c, n0 / 16, &full[s]);
        if (p.gps) {
          const int g0 = (c * 64) >> p.log2_group;
          tma_2d(const_cast<T*>(s_st(s)), &tm_s, n0, g0, &full[s]);
          if (p.asym) tma_2d(const_cast<T*>(z_st(s)), &tm_z, n0, g0, &full[s]);
        }
      }
    }
  } else {
    // consumers
    const int row = 64 * wg + 16 * wq + g;  // this lane's rows n0 + row and n0 + row + 8
    const std::uint32_t magic = splat(Traits<T>::from_float(Traits<T>::kMagic));
    const std::uint32_t one = splat(Traits<T>::from_float(1.f));
    // (1024 + z) for rows row, row + 8: z = 8 when symmetric, the column's zero point per channel
    std::uint32_t zch[2];
    for (int h = 0; h < 2; ++h) {
      const int n = std::min(n0 + row + 8 * h, p.N - 1);
      const float z = p.gps == 0 && p.asym ? Traits<T>::to_float(static_cast<const T*>(p.zeros)[n]) : 8.f;
      zch[h] = splat(Traits<T>::from_float(Traits<T>::kMagic + z));
    }
    // the group's scale (1 per channel: applied to the result) and 1024 + zero point of half chunk
    // hh (32 k, groups are >= 32 deep) of chunk kc of stage s, for rows row and row + 8
    std::uint32_t sc[2], zz[2];
    auto load_scales = [&](int s, int c, int kc, int hh) {
      const int k0 = (c + kc) * 64 + 32 * hh;
      sc[0] = sc[1] = one;
      zz[0] = zch[0];
      zz[1] = zch[1];
      if (p.gps) {
        const T* sp = s_st(s) + ((k0 >> p.log2_group) - ((c * 64) >> p.log2_group)) * BN + row;
        sc[0] = splat(sp[0]);
        sc[1] = splat(sp[8]);
        if (p.asym) {
          const T* zp = sp + (z_st(s) - s_st(s));
          zz[0] = hadd2<T>(splat(zp[0]), magic);  // exact: small integers
          zz[1] = hadd2<T>(splat(zp[8]), magic);
        }
      }
    };
    for (int i = 0; i < nst; ++i) {
      const int s = i % STAGES;
      mbar_wait(&full[s], (i / STAGES) & 1);
      const int c = (it0 + i) * KC;
#pragma unroll
      for (int kc = 0; kc < KC; ++kc) {
        const uint4 w4 = *reinterpret_cast<const uint4*>(w_st(s) + ((4 * wg + wq) * KC + kc) * kTileBytes + lane * 16);
        const std::uint32_t words[4] = {w4.x, w4.y, w4.z, w4.w};
        const std::uint64_t desc = desc_sw128(x_st(s) + kc * BM * 128);
        // dequantize the chunk's 4 steps; steps 2 hh and 2 hh + 1 share a group (groups are >= 32 deep)
        std::uint32_t a[4][4];
#pragma unroll
        for (int hh = 0; hh < 2; ++hh) {
          load_scales(s, c, kc, hh);
          // (q - z) exact, the GEMV's dequant_word (fp16: one shift per word, 1.5 % faster here than
          // three), then its product with the scale rounds once, as a dequantized weight matrix would
#pragma unroll
          for (int jj = 0; jj < 2; ++jj) {
            dequant_word<T>(words[2 * hh + jj], zz[0], zz[1], a[2 * hh + jj]);
#pragma unroll
            for (int q = 0; q < 4; ++q) a[2 * hh + jj][q] = hmul2<T>(a[2 * hh + jj][q], sc[q & 1]);
          }
        }
        wgmma_fence();
#pragma unroll
        for (int j = 0; j < 4; ++j) wgmma_rs<T, BM>(acc, a[j], desc + 2 * j, 1);  // +32 bytes per k16 step
      }
      // One wait per stage. Waiting less often measured slower: one group kept in flight across
      // stages was within 1 % and raced; windows of 4 chunks per wait with the two warpgroups half a
      // window out of phase were 7 % slower over 144 shapes x configurations; a wgmma group per k16
      // step with its own registers and a wait for all but the stage's last 7 (CUTLASS's
      // mixed-input mainloop) was 8-16 % slower at every M (README, H200 notes, steps 3, 6, 9).
      // ptxas keeps a waited-for group's A registers safe only within the stage: redefining them
      // while a group that read them may still run serializes every wgmma (C7513).
      wgmma_commit();
      wgmma_wait<0>();
      if (lane == 0) mbar_arrive(&empty[s]);
    }
    if (p.gps == 0) {  // per-channel scales on the fp32 result
      const T* sp = static_cast<const T*>(p.scales);
      const float s0 = Traits<T>::to_float(sp[std::min(n0 + row, p.N - 1)]);
      const float s1 = Traits<T>::to_float(sp[std::min(n0 + row + 8, p.N - 1)]);
#pragma unroll
      for (int i = 0; i < BM / 2; ++i) acc[i] *= (i & 2) ? s1 : s0;
    }
  }

  // epilogue: every CTA parks its fp32 tile [BM][BN] in shared memory (over the drained stages) ...
  __syncthreads();
  float* red = reinterpret_cast<float*>(smem);
  constexpr int LD = BN + kRedPad;
  if (warp < WG * 4) {
    const int row = 64 * wg + 16 * wq + g;
#pragma unroll
    for (int i = 0; i < BM / 2; ++i) {
      const int m = 8 * (i >> 2) + 2 * t + (i & 1), n = row + 8 * ((i >> 1) & 1);
      red[m * LD + n] = acc[i];
    }
  }
  const int csize = gridDim.z;
  if (csize > 1) cluster_sync(); else __syncthreads();
  // ... and the CTAs of the cluster each sum an interleaved share of it, 4 columns per thread
  const int rank = csize > 1 ? cluster_rank() : 0;
  T* y = static_cast<T*>(p.y);
  for (int v = rank * blockDim.x + threadIdx.x; v < BM * BN / 4; v += csize * blockDim.x) {
    const int m = v / (BN / 4), nl = 4 * (v % (BN / 4));
    if (m0 + m >= p.M || n0 + nl >= p.N) continue;
    float4 sum = *reinterpret_cast<const float4*>(red + m * LD + nl);
    for (int q = 0; q < csize; ++q) {
      if (q == rank) continue;
      const float4 o = ld_cluster_f4(red + m * LD + nl, q);
      sum.x += o.x;
      sum.y += o.y;
      sum.z += o.z;
      sum.w += o.w;
    }
    T out[4] = {Traits<T>::from_float(sum.x), Traits<T>::from_float(sum.y), Traits<T>::from_float(sum.z),
                Traits<T>::from_float(sum.w)};
    uint2 packed;
    memcpy(&packed, out, 8);
    *reinterpret_cast<uint2*>(y + static_cast<std::size_t>(m0 + m) * p.N + n0 + nl) = packed;
  }
  if (csize > 1) cluster_sync();  // no CTA leaves while another still reads its tile
#endif
}

// --- host ------------------------------------------------------------------------------------------

// The kernel, its shared-memory opt-in done (more than 48 KB needs one, per instantiation and device).
template <typename T, int BM, int WG>
auto opted_in() {
  auto kernel = w4a16_gemm_sm90_kernel<T, BM, WG>;
  static bool done[kMaxDevices] = {};
  const int dev = device_props().index;
  if (!done[dev]) {
    TG_GPU_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Sm90Shape<BM, WG>::kSmem));
    done[dev] = true;
  }
  return kernel;
}

// A grid of `split`-CTA clusters along z (the K split): the launch and the occupancy query share it.
template <int BM, int WG>
struct ClusterLaunch {
  cudaLaunchAttribute attr[1];
  cudaLaunchConfig_t cfg{};
  ClusterLaunch(dim3 grid, int split, cudaStream_t st) {
    cfg.gridDim = grid;
    cfg.blockDim = dim3(Sm90Shape<BM, WG>::kThreads);
    cfg.dynamicSmemBytes = Sm90Shape<BM, WG>::kSmem;
    cfg.stream = st;
    attr[0].id = cudaLaunchAttributeClusterDimension;
    attr[0].val.clusterDim.x = 1;
    attr[0].val.clusterDim.y = 1;
    attr[0].val.clusterDim.z = split;
    cfg.attrs = attr;  // points into this object: not copyable
    cfg.numAttrs = 1;
  }
  ClusterLaunch(const ClusterLaunch&) = delete;
  ClusterLaunch& operator=(const ClusterLaunch&) = delete;
};

template <int BM>
int max_clusters(int split) {
  const ClusterLaunch<BM, 2> l(dim3(1, 1, split), split, nullptr);
  int n = 0;
  TG_GPU_CHECK(cudaOccupancyMaxActiveClusters(&n, opted_in<tg_half, BM, 2>(), &l.cfg));  // (3 warpgroups: also one CTA per SM)
  return n;
}

template <typename T, int BM, int WG>
void launch_sm90(const void* x, const void* qw, const void* s, const void* z, void* y, int M, int N, int K,
                 int group_size, int split, cudaStream_t st) {
  using Sh = Sm90Shape<BM, WG>;
  const CUtensorMapDataType half_type =
      std::is_same<T, tg_half>::value ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16 : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
  const int chunks = K / 64, tiles = N / 16;
  // x [M, K]: boxes of [BM rows][64 k], 128-byte swizzled as wgmma's B operand; rows past M read 0
  const cuuint64_t xd[2] = {cuuint64_t(K), cuuint64_t(M)}, xs[1] = {cuuint64_t(K) * 2};
  const cuuint32_t xb[2] = {64, BM};
  const CUtensorMap tx = make_map(half_type, x, 2, xd, xs, xb, CU_TENSOR_MAP_SWIZZLE_128B, "x");
  // packed weights as words [tiles][chunks][128]: boxes of [8 * WG tiles][KC chunks][128 words]
  const cuuint64_t wd[3] = {128, cuuint64_t(chunks), cuuint64_t(tiles)};
  const cuuint64_t ws[2] = {kTileBytes, cuuint64_t(chunks) * kTileBytes};
  const cuuint32_t wb[3] = {128, Sh::kKC, Sh::kTiles};
  const CUtensorMap tw = make_map(CU_TENSOR_MAP_DATA_TYPE_UINT32, qw, 3, wd, ws, wb, CU_TENSOR_MAP_SWIZZLE_NONE, "qweight");
  // scales / zeros [G, N]: boxes of [gps groups][BN columns]
  const int groups = group_size > 0 ? K / group_size : 1;
  const int gps = group_size > 0 ? std::max(1, Sh::kKC * 64 / group_size) : 0;
  CUtensorMap ts{}, tz{};
  if (gps) {
    const cuuint64_t sd[2] = {cuuint64_t(N), cuuint64_t(groups)}, ss[1] = {cuuint64_t(N) * 2};
    const cuuint32_t sb[2] = {Sh::kBN, cuuint32_t(gps)};
    ts = make_map(half_type, s, 2, sd, ss, sb, CU_TENSOR_MAP_SWIZZLE_NONE, "scales");
    if (z) tz = make_map(half_type, z, 2, sd, ss, sb, CU_TENSOR_MAP_SWIZZLE_NONE, "zeros");
  }
  Sm90Params prm{};
  prm.M = M;
  prm.N = N;
  prm.log2_group = group_size == 32 ? 5 : group_size == 64 ? 6 : group_size == 128 ? 7 : 0;
  prm.asym = z != nullptr;
  prm.stages_total = (chunks + Sh::kKC - 1) / Sh::kKC;
  prm.stages_per_split = (prm.stages_total + split - 1) / split;
  prm.gps = gps;
  prm.scales = s;
  prm.zeros = z;
  prm.y = y;

  const ClusterLaunch<BM, WG> l(dim3((M + BM - 1) / BM, (N + Sh::kBN - 1) / Sh::kBN, split), split, st);
  TG_GPU_CHECK(cudaLaunchKernelEx(&l.cfg, opted_in<T, BM, WG>(), tx, tw, ts, tz, prm));
  TG_CHECK_LAUNCH();
}

template <typename T>
void dispatch_bm(const void* x, const void* qw, const void* s, const void* z, void* y, int M, int N, int K,
                 int group_size, const GemmSm90Config& c, cudaStream_t st) {
#define TG_CALL_BM(BM_) \
  if (c.block_m == BM_) return launch_sm90<T, BM_, 2>(x, qw, s, z, y, M, N, K, group_size, c.split, st);
  // three consumer warpgroups (192 columns per CTA) at 128 tokens: while one waits on its wgmmas,
  // two dequantize (one CTA per SM: 416 threads x 128 registers fit where 544 would not)
  if (c.block_m == 128 && c.warpgroups == 3)
    return launch_sm90<T, 128, 3>(x, qw, s, z, y, M, N, K, group_size, c.split, st);
  TG_CALL_BM(8)
  TG_CALL_BM(16)
  TG_CALL_BM(32)
  TG_CALL_BM(64)
  TG_CALL_BM(128)
#undef TG_CALL_BM
  TG_CHECK_ARG(false, "w4a16_gemm_sm90: block_m must be 8, 16, 32, 64 or 128; got ", c.block_m);
}

}  // namespace

int w4a16_gemm_sm90_clusters(int block_m, int split) {
  TG_CHECK_ARG(split >= 1 && split <= 8, "w4a16_gemm_sm90_clusters: split must be 1..8; got ", split);
  const DeviceProps& d = device_props();
  if (d.cc_major != 9 || d.cc_minor != 0) return 0;
  constexpr int kBms[] = {8, 16, 32, 64, 128};
  int b = 0;
  while (b < 5 && kBms[b] != block_m) ++b;
  TG_CHECK_ARG(b < 5, "w4a16_gemm_sm90_clusters: block_m must be 8, 16, 32, 64 or 128; got ", block_m);
  // asked once per device, tile and split (0 = not yet); -1 records "no cluster of this size fits"
  static std::atomic<int> cache[kMaxDevices][5][9] = {};
  std::atomic<int>& slot = cache[d.index][b][split];
  int n = slot.load(std::memory_order_relaxed);
  if (n == 0) {
    switch (block_m) {
      case 8: n = max_clusters<8>(split); break;
      case 16: n = max_clusters<16>(split); break;
      case 32: n = max_clusters<32>(split); break;
      case 64: n = max_clusters<64>(split); break;
      default: n = max_clusters<128>(split); break;
    }
    n = n > 0 ? n : -1;
    slot.store(n, std::memory_order_relaxed);
  }
  return n;
}

void w4a16_gemm_sm90(const void* x, const void* qweight, const void* scales, const void* zeros, void* y, int M,
                     int N, int K, int group_size, DType dtype, std::uintptr_t stream, GemmSm90Config cfg) {
  check_w4_shape(N, K, group_size, dtype);
  TG_CHECK_ARG(M >= 1, "w4a16_gemm_sm90: M must be >= 1; got ", M);
  for (const void* p : {x, qweight, scales})
    TG_CHECK_ARG(reinterpret_cast<std::uintptr_t>(p) % 16 == 0,
                 "w4a16_gemm_sm90: x, qweight, scales and zeros must be 16-byte aligned (bulk tensor copies)");
  TG_CHECK_ARG(reinterpret_cast<std::uintptr_t>(zeros) % 16 == 0,
               "w4a16_gemm_sm90: x, qweight, scales and zeros must be 16-byte aligned (bulk tensor copies)");
  const DeviceProps& d = device_props();
  TG_CHECK_ARG(d.cc_major == 9 && d.cc_minor == 0, "w4a16_gemm_sm90 needs a Hopper GPU (compute capability 9.0); got ",
               d.cc_major, ".", d.cc_minor);
  if (cfg.block_m == 0 || cfg.split == 0 || cfg.warpgroups == 0) {  // the heuristic only where asked for
    const GemmSm90Config h = w4a16_gemm_sm90_config(M, N, K, d.sm_count);
    if (cfg.block_m == 0) cfg.block_m = h.block_m;
    if (cfg.split == 0) cfg.split = h.split;
    // its warpgroups belong to its tile and split; with either named otherwise, two
    if (cfg.warpgroups == 0) cfg.warpgroups = cfg.block_m == h.block_m && cfg.split == h.split ? h.warpgroups : 2;
  }
  TG_CHECK_ARG(cfg.split >= 1 && cfg.split <= 8, "w4a16_gemm_sm90: split (CTAs per cluster) must be 1..8; got ", cfg.split);
  TG_CHECK_ARG(cfg.warpgroups == 2 || (cfg.warpgroups == 3 && cfg.block_m == 128),
               "w4a16_gemm_sm90: warpgroups must be 2, or 3 with block_m 128; got warpgroups ", cfg.warpgroups,
               ", block_m ", cfg.block_m);
  auto st = as_stream(stream);
  if (dtype == DType::kF16) return dispatch_bm<tg_half>(x, qweight, scales, zeros, y, M, N, K, group_size, cfg, st);
  return dispatch_bm<tg_bf16>(x, qweight, scales, zeros, y, M, N, K, group_size, cfg, st);
}

}  // namespace tg
