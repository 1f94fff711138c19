// w4a16_gemv, implementation kTma (Hopper, sm_90a): the GEMV's tensor-core compute (w4_mma.cuh)
// fed through shared memory by the bulk copy engine instead of through registers.
//
// Why (bench/results/h200/README.md, ncu on an H200): the register-pipelined GEMV keeps only two
// 16-byte loads per lane in flight, so a warp waits a whole DRAM latency every two stages; small
// layers (o_proj, qkv) have 4-8 chunks per warp and spend most of their time in that ramp (SMs busy
// 72-76 % of the kernel, DRAM at 24-30 % of peak), gate_up reaches 50 %. Here:
//   - one persistent CTA per SM owns a contiguous range of output tiles (groups of NT 16-wide
//     tiles), balanced to within one group, so there is no wave tail;
//   - a producer warp streams the range's bytes into a ring of shared-memory stages with 1D bulk
//     copies (a tile's chunks are contiguous in the packed layout: one copy per tile per stage),
//     plus the stage's x rows and (2D tensor copies) its group scales / zeros: with up to
//     kMaxStages stages, ~100+ KB per SM are in flight, several times what Little's law asks for
//     4.8 TB/s at the H200's latency, and no consumer register holds a load in flight;
//   - CW consumer warps split each stage's chunks, read x with ldmatrix (x in natural k order is
//     exactly the mma B fragment: this kernel reads the sm90 layout, natural k), and run the same
//     mma / dequant / group-scale code as the register GEMV; at the end of each tile group they sum
//     their partial tiles with shared-memory atomics and write y, while the producer keeps loading.
#include <algorithm>

#include "sm90_common.cuh"
#include "tinygemm/gpu.h"
#include "tinygemm/status.h"
#include "w4_common.cuh"
#include "w4_mma.cuh"
#include "w4a16.h"

namespace tg {
namespace {

constexpr int kChunkBytes = 512;     // one (16 n x 64 k) tile-chunk of packed weights
constexpr int kMaxStages = 32;       // mbarriers reserved; the ring uses what shared memory holds
constexpr int kSmemBudget = 220 * 1024;

constexpr int align128(int v) { return (v + 127) / 128 * 128; }

template <typename T, int GS, bool ASYM, int NT, int MT, int CW>
struct TmaGemvShape {
  using Stage = GemvStage<T, GS, ASYM, NT, MT>;
  static constexpr int kKC = Stage::kChunks;          // chunks per consumer warp per stage
  static constexpr int kChunks = CW * kKC;            // chunks (64 k each) per stage
  static constexpr int kW = NT * kChunks * kChunkBytes;
  static constexpr int kGroups = GS > 0 ? kChunks * 64 / GS : 1;  // scale rows per stage
  static constexpr int kS = GS > 0 ? align128(kGroups * NT * 16 * 2) : 0;
  static constexpr int kZ = ASYM ? align128(kGroups * NT * 16 * 2) : 0;
  // x rows of a stage, 16 bytes of padding each: ldmatrix's 8 row addresses hit distinct banks
  static constexpr int kXRow = kChunks * 64 * 2 + 16;
  // the consumer warps' partial output tiles, twice (alternating tile groups): plain stores and a
  // sum by the readers, where shared-memory fp32 atomics compile to compare-and-swap loops
  static constexpr int kRed = 2 * CW * NT * 16 * MT * 8 * 4;
  static constexpr int kThreads = CW * 32 + 32;
  static_assert(kGroups <= 256, "a tensor-copy box row count is at most 256");
  static_assert(kChunks * 64 % (GS > 0 ? GS : 64) == 0, "a stage holds whole groups");
  // bytes of one stage for `rows` rows of x
  static constexpr int stage_bytes(int rows) { return kW + kS + kZ + align128(rows * kXRow); }
  static int stages(int rows) { return std::min(kMaxStages, (kSmemBudget - kRed - 2 * 8 * kMaxStages) / stage_bytes(rows)); }
};

struct TmaGemvParams {
  const void* x;
  const void* qw;
  const void* scales;  // per-channel scales (group_size -1): applied to the result
  void* y;
  int M, N, K, chunks, tiles, units, stages, stage_bytes;
};

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
__device__ __forceinline__ void consumer_barrier(int threads) {
  asm volatile("bar.sync 1, %0;" ::"r"(threads) : "memory");
}
#endif

template <typename T, int GS, bool ASYM, int NT, int MT, int CW>
__global__ void __launch_bounds__(CW * 32 + 32, 1)
    w4a16_gemv_tma_kernel(const __grid_constant__ CUtensorMap tm_s, const __grid_constant__ CUtensorMap tm_z,
                          const TmaGemvParams p) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using S = TmaGemvShape<T, GS, ASYM, NT, MT, CW>;
  using Stage = typename S::Stage;
  constexpr int KC = S::kKC, BN = NT * 16, BM = MT * 8;
  extern __shared__ __align__(128) unsigned char smem[];
  const int stages = p.stages;
  auto w_st = [&](int s) { return smem + s * p.stage_bytes; };
  auto s_st = [&](int s) { return reinterpret_cast<const T*>(smem + s * p.stage_bytes + S::kW); };
  auto z_st = [&](int s) { return reinterpret_cast<const T*>(smem + s * p.stage_bytes + S::kW + S::kS); };
  auto x_st = [&](int s) { return smem + s * p.stage_bytes + S::kW + S::kS + S::kZ; };
  float* red = reinterpret_cast<float*>(smem + stages * p.stage_bytes);
  std::uint64_t* full = reinterpret_cast<std::uint64_t*>(smem + stages * p.stage_bytes + S::kRed);
  std::uint64_t* empty = full + kMaxStages;

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int u0 = static_cast<int>(static_cast<long long>(blockIdx.x) * p.units / gridDim.x);
  const int u1 = static_cast<int>(static_cast<long long>(blockIdx.x + 1) * p.units / gridDim.x);
  const int kstages = (p.chunks + S::kChunks - 1) / S::kChunks;

  if (threadIdx.x == 0) {
    for (int s = 0; s < stages; ++s) {
      mbar_init(&full[s], 1);
      mbar_init(&empty[s], CW);  // lane 0 of every consumer warp
    }
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncthreads();

  if (warp == CW) {
    // producer: per stage, lane i issues copy i (NT weight runs, M x rows, scales, zeros)
    int s = 0, phase = 0;
    for (int u = u0; u < u1; ++u) {
      const int t0 = u * NT, nv = min(NT, p.tiles - t0);
      for (int ks = 0; ks < kstages; ++ks) {
        const int c0 = ks * S::kChunks, nc = min(S::kChunks, p.chunks - c0);
        mbar_wait(&empty[s], phase ^ 1);
        if (lane == 0) {
          const std::uint32_t bytes = (nv * kChunkBytes + p.M * 128) * nc +
                                      (GS > 0 ? S::kGroups * BN * 2 : 0) + (ASYM ? S::kGroups * BN * 2 : 0);
          mbar_expect_tx(&full[s], bytes);
        }
        __syncwarp();
        const int ncopies = nv + p.M + (GS > 0 ? 1 : 0) + (ASYM ? 1 : 0);
        for (int i = lane; i < ncopies; i += 32) {
          if (i < nv) {
            const char* src = static_cast<const char*>(p.qw) +
                              (static_cast<std::size_t>(t0 + i) * p.chunks + c0) * kChunkBytes;
            bulk_1d(w_st(s) + i * S::kChunks * kChunkBytes, src, nc * kChunkBytes, &full[s]);
          } else if (i < nv + p.M) {
            const int m = i - nv;
            const T* src = static_cast<const T*>(p.x) + static_cast<std::size_t>(m) * p.K + c0 * 64;
            bulk_1d(x_st(s) + m * S::kXRow, src, nc * 128, &full[s]);
          } else if (GS > 0 && i == nv + p.M) {
            tma_2d(const_cast<T*>(s_st(s)), &tm_s, t0 * 16, c0 * 64 / (GS > 0 ? GS : 1), &full[s]);
          } else if (ASYM) {
            tma_2d(const_cast<T*>(z_st(s)), &tm_z, t0 * 16, GS > 0 ? c0 * 64 / GS : 0, &full[s]);
          }
        }
        if (++s == stages) {
          s = 0;
          phase ^= 1;
        }
      }
    }
    return;
  }

  // consumers
  const int g = lane >> 2, t = lane & 3;
  const std::uint32_t zsym = splat(Traits<T>::from_float(Traits<T>::kMagic + 8.f));
  float acc[NT][MT][4];
  zero_tiles(acc);
  // ldmatrix row addresses: lane l gives row l % 8 of matrix l / 8; rows past M repeat row M - 1
  // (their outputs are never written), so no row is read uninitialized
  int xoff[MT];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
    xoff[mt] = min(mt * 8 + (lane & 7), p.M - 1) * S::kXRow + 8 * (lane >> 3) * 2;

  int s = 0, phase = 0;
  for (int u = u0; u < u1; ++u) {
    const int t0 = u * NT;
    for (int ks = 0; ks < kstages; ++ks) {
      const int nc = min(S::kChunks, p.chunks - ks * S::kChunks);
      mbar_wait(&full[s], phase);
      Stage st;
#pragma unroll
      for (int uu = 0; uu < KC; ++uu) {
        const int cl = warp + uu * CW;  // chunk within the stage
        const bool ok = cl < nc;
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
          st.wq[uu][nt] = ok ? *reinterpret_cast<const int4*>(w_st(s) + (nt * S::kChunks + cl) * kChunkBytes + lane * 16)
                             : make_int4(0, 0, 0, 0);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
          for (int h = 0; h < 2; ++h)
            st.xv[uu][mt][h] = ok ? ldmatrix_x4(x_st(s) + xoff[mt] + (cl * 64 + 32 * h) * 2) : make_uint4(0, 0, 0, 0);
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
#pragma unroll
          for (int gi = 0; gi < Stage::NG; ++gi) {
            const int row = (GS > 0 ? (cl * 64 + 32 * gi) / (GS > 0 ? GS : 1) : 0) * BN + nt * 16 + g;
            if (GS > 0) {
              st.sc[uu][nt][gi][0] = Traits<T>::to_float(s_st(s)[row]);
              st.sc[uu][nt][gi][1] = Traits<T>::to_float(s_st(s)[row + 8]);
            }
            if (ASYM) {
              st.zm[uu][nt][gi][0] = splat(Traits<T>::from_float(Traits<T>::kMagic + Traits<T>::to_float(z_st(s)[row])));
              st.zm[uu][nt][gi][1] = splat(Traits<T>::from_float(Traits<T>::kMagic + Traits<T>::to_float(z_st(s)[row + 8])));
            } else {
              st.zm[uu][nt][gi][0] = st.zm[uu][nt][gi][1] = zsym;
            }
          }
      }
      // everything of the stage is in registers: hand the slot back before computing
      __syncwarp();
      if (lane == 0) mbar_arrive(&empty[s]);
      compute_stage(st, acc);
      if (++s == stages) {
        s = 0;
        phase ^= 1;
      }
    }
    // the tile group is done: park the warps' partial tiles, sum them, write y (alternating
    // buffers: one barrier per group, as a buffer is rewritten only after the next group's barrier,
    // which every reader of this one has passed)
    float* r = red + (u & 1) * CW * BN * BM;
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const int m = mt * 8 + 2 * t + (i & 1), n = nt * 16 + g + 8 * (i >> 1);
          r[(warp * BN + n) * BM + m] = acc[nt][mt][i];
          acc[nt][mt][i] = 0.f;
        }
    consumer_barrier(CW * 32);
    T* y = static_cast<T*>(p.y);
    for (int i = threadIdx.x; i < BN * p.M; i += CW * 32) {
      const int nl = i % BN, m = i / BN, n = t0 * 16 + nl;
      if (n >= p.N) continue;
      float v = 0.f;
#pragma unroll
      for (int w = 0; w < CW; ++w) v += r[(w * BN + nl) * BM + m];
      if (GS == 0) v *= Traits<T>::to_float(static_cast<const T*>(p.scales)[n]);
      y[static_cast<std::size_t>(m) * p.N + n] = Traits<T>::from_float(v);
    }
  }
#endif
}

template <typename T, int GS, bool ASYM, int NT, int MT, int CW>
void launch_tma(const void* x, const void* qw, const void* s, const void* z, void* y, int M, int N, int K,
                cudaStream_t st) {
  using Sh = TmaGemvShape<T, GS, ASYM, NT, MT, CW>;
  const DeviceProps& d = device_props();
  const CUtensorMapDataType half_type =
      std::is_same<T, tg_half>::value ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16 : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
  // scales / zeros [G, N]: boxes of [kGroups rows][NT * 16 columns] (rows past G read as 0)
  const int groups = GS > 0 ? K / GS : 1;
  const cuuint64_t sd[2] = {cuuint64_t(N), cuuint64_t(groups)}, ss[1] = {cuuint64_t(N) * 2};
  const cuuint32_t sb[2] = {NT * 16, cuuint32_t(Sh::kGroups)};
  CUtensorMap ts{}, tz{};
  if (GS > 0) ts = make_map(half_type, s, 2, sd, ss, sb, CU_TENSOR_MAP_SWIZZLE_NONE, "scales");
  if (ASYM) tz = make_map(half_type, z, 2, sd, ss, sb, CU_TENSOR_MAP_SWIZZLE_NONE, "zeros");
  TmaGemvParams prm{};
  prm.x = x;
  prm.qw = qw;
  prm.scales = s;
  prm.y = y;
  prm.M = M;
  prm.N = N;
  prm.K = K;
  prm.chunks = K / 64;
  prm.tiles = N / 16;
  prm.units = (prm.tiles + NT - 1) / NT;
  prm.stage_bytes = Sh::stage_bytes(M);
  prm.stages = Sh::stages(M);
  // a ring needs two stages (one filling while one is read); every compiled shape has >= 2 at M <= 16
  TG_CHECK_ARG(prm.stages >= 2, "w4a16_gemv (tma): a stage of ", prm.stage_bytes, " bytes leaves ", prm.stages,
               " in shared memory; n_tiles ", NT, ", warps ", CW, ", M ", M, " needs two");
  const int smem = prm.stages * prm.stage_bytes + Sh::kRed + 2 * 8 * kMaxStages;
  auto kernel = w4a16_gemv_tma_kernel<T, GS, ASYM, NT, MT, CW>;
  static bool opted_in[kMaxDevices] = {};
  if (!opted_in[d.index]) {
    TG_GPU_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBudget));
    opted_in[d.index] = true;
  }
  const int grid = std::min(d.sm_count, prm.units);
  kernel<<<grid, Sh::kThreads, smem, st>>>(ts, tz, prm);
  TG_CHECK_LAUNCH();
}

template <typename T, int GS, bool ASYM>
void dispatch_tma_shape(const void* x, const void* qw, const void* s, const void* z, void* y, int M, int N, int K,
                        const GemvConfig& c, cudaStream_t st) {
  const bool two = M > 8;
#define TG_CALL_SHAPE(NT_, CW_)                                                              \
  if (c.n_tiles == NT_ && c.warps == CW_) {                                                  \
    if (two) return launch_tma<T, GS, ASYM, NT_, 2, CW_>(x, qw, s, z, y, M, N, K, st);       \
    return launch_tma<T, GS, ASYM, NT_, 1, CW_>(x, qw, s, z, y, M, N, K, st);                \
  }
  TG_CALL_SHAPE(1, 16)
  TG_CALL_SHAPE(2, 8)
#undef TG_CALL_SHAPE
  TG_CHECK_ARG(false, "w4a16_gemv (tma): (n_tiles, warps) must be (1, 16) or (2, 8); got (", c.n_tiles, ", ",
               c.warps, ")");
}

template <typename T>
void dispatch_tma(const void* x, const void* qw, const void* s, const void* z, void* y, int M, int N, int K,
                  int gs, const GemvConfig& c, cudaStream_t st) {
  const bool asym = z != nullptr;
#define TG_CALL_GS(GS_, GSARG_)                                                             \
  if (gs == GSARG_) {                                                                       \
    if (asym) return dispatch_tma_shape<T, GS_, true>(x, qw, s, z, y, M, N, K, c, st);      \
    return dispatch_tma_shape<T, GS_, false>(x, qw, s, z, y, M, N, K, c, st);               \
  }
  TG_CALL_GS(32, 32)
  TG_CALL_GS(64, 64)
  TG_CALL_GS(128, 128)
  TG_CALL_GS(0, -1)
#undef TG_CALL_GS
  TG_CHECK_ARG(false, "w4a16_gemv (tma): no compiled kernel for group_size ", gs, " (32, 64, 128 or -1)");
}

}  // namespace

void w4a16_gemv_tma(const void* x, const void* qweight, const void* scales, const void* zeros, void* y, int M,
                    int N, int K, int group_size, DType dtype, std::uintptr_t stream, const GemvConfig& cfg) {
  TG_CHECK_ARG(M >= 1 && M <= 16, "w4a16_gemv (tma): M must be 1..16 (two m8 tiles); got ", M);
  const DeviceProps& d = device_props();
  TG_CHECK_ARG(d.cc_major == 9 && d.cc_minor == 0,
               "w4a16_gemv (tma) needs a Hopper GPU (compute capability 9.0); got ", d.cc_major, ".", d.cc_minor);
  for (const void* p : {x, qweight, scales, zeros})
    TG_CHECK_ARG(reinterpret_cast<std::uintptr_t>(p) % 16 == 0,
                 "w4a16_gemv (tma): x, qweight, scales and zeros must be 16-byte aligned (bulk copies)");
  auto st = as_stream(stream);
  if (dtype == DType::kF16) return dispatch_tma<tg_half>(x, qweight, scales, zeros, y, M, N, K, group_size, cfg, st);
  return dispatch_tma<tg_bf16>(x, qweight, scales, zeros, y, M, N, K, group_size, cfg, st);
}

}  // namespace tg
