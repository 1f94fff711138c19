// w4a16_gemv: y[M, N] = x[M, K] . W[K, N], W packed INT4 (layout in w4a16.h), fp32 accumulation.
//
// Decode is memory-bound: the kernel must stream the packed weights at the copy bandwidth and keep
// everything else off that path. Two implementations of the same function:
//
// mma (NVIDIA sm_80+): tensor-core mma.m16n8k16 with the *weights as the A operand* (16 n x 16 k)
// and x^T as B (16 k x 8 m): "swap AB", so M <= 8 fills one n8 tile and M <= 16 two, instead of
// wasting 15/16 of an m16 tile at M = 1. With fp32 FMAs instead, M = 16 would need 16 FMAs per
// weight and become compute-bound (~56 us for 4096 x 28672 on an H100, against a ~20 us byte floor).
// The packed layout puts lane (g, t)'s 8 nibbles for mma j in one 32-bit word, exactly the A
// fragment's elements, so a lane's 16-byte load feeds four mmas with no shuffles; physical k is
// permuted so that the same lane's x values are 4 consecutive halves (one 8-byte load per mma).
// Weights are dequantized to exact small integers (q - z) with the 1024 + q magic-number trick; the
// group scale is applied to the fp32 mma result per group, not per weight.
//
// simt (HIP, and NVIDIA before sm_80): each thread decodes whole words and accumulates in fp32 with
// plain FMAs, reducing through shared-memory atomics. No warp-size assumption, so it runs on wave64.
#include <algorithm>

#include "tinygemm/gpu.h"
#include "tinygemm/status.h"
#include "w4_common.cuh"
#include "w4_mma.cuh"
#include "w4a16.h"

namespace tg {

namespace {

#if !defined(TINYGEMM_HIP)
// Weights are read exactly once: stream them past L1 and mark them evict-first in L2.
__device__ __forceinline__ int4 load_stream(const int4* p) { return __ldcs(p); }

// A lane's x values for mmas 2h and 2h + 1, as (b0, b1) of the first and (b0, b1) of the second, are
// 8 consecutive values (pairs 4t .. 4t + 3 of the 32-value block) in the GEMV layout: one 16-byte
// load. In the sm90 layout's natural k order they are pairs t, t + 4, t + 8, t + 12. Measured on an
// H200 (bench/results/h200/README.md): four 4-byte loads per lane made M = 8 37 % slower than the
// GEMV layout (each touches 8 rows' cache lines for 16 bytes of each: L1-bound), a quad transpose
// with shuffles ~15 % at every M. So the sm90 layout's x goes through shared memory: every lane
// copies 16 contiguous bytes of one row (cp.async, in flight with the stage's weights), and
// ldmatrix hands each lane its pairs, which for natural k order is exactly the mma B fragment.
// Per warp and stage: [kChunks][MT][2 halves of 32 k][8 rows][64 bytes], the 16-byte segments of
// row r XOR-swizzled by (r / 2) % 4 so that ldmatrix's 8 row reads hit distinct banks.
__device__ __forceinline__ int xs_seg(int r, int s) { return r * 64 + ((s ^ ((r >> 1) & 3)) * 16); }

__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool fill) {
  const std::uint32_t d = static_cast<std::uint32_t>(__cvta_generic_to_shared(dst));
#if __CUDA_ARCH__ >= 800
  // .ca, not .cg: x is re-read by every block of the SM (once per tile), and the GEMV layout's x
  // loads are fast because L1 serves those re-reads; .cg sent all of them to L2 (measured at
  // 1838e7f with .cg: M = 8 summed 62.3 us against the GEMV layout's 48.2)
  asm volatile("cp.async.ca.shared.global [%0], [%1], 16, %2;" ::"r"(d), "l"(src), "r"(fill ? 16 : 0) : "memory");
#endif
}
__device__ __forceinline__ void cp_async_commit() {
#if __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;" ::: "memory");
#endif
}
template <int N>
__device__ __forceinline__ void cp_async_wait() {
#if __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
#endif
}

template <typename T, int GS, bool ASYM, int NT, int MT>
struct GemvCtx {
  // Bases and this lane's 32-bit offsets from them (a 64-bit pointer per tile and row cost the
  // unchecked loop ~10 registers, over the 64 that two 512-thread blocks per SM allow).
  const T* x;  // the block's first row
  const int4* qw;
  const T *scales, *zeros;
  int xo[MT];  // this lane's x row (row 0 for rows past M: in bounds, feeds unwritten columns)
  int qo[NT];  // this lane's words of tile nt, chunk 0 (int4 units)
  int so[NT];  // this lane's row g of tile nt in the scale / zero matrices, group 0
  bool knat;  // weights in the sm90 layout (natural k): x staged through shared memory
  unsigned char* xs;  // knat: this warp's x staging, two stages
  bool xok[MT], tok[NT];
  int N, chunks;
  int lane, g;
  std::uint32_t zsym;
};

// Bytes of one warp's x staging for one stage (knat).
template <int KCH, int MT>
constexpr int kXsStage = KCH * MT * 2 * 512;

// Stage s of a warp: chunks s * kChunks .. + kChunks - 1 (consecutive, so its addresses are one base
// plus constants and a scale group may span its chunks). CHECK: the stage may reach past K or a
// tile past N (the block's last stage when K / 64 is odd, a half-filled last tile): those loads are
// skipped and their registers zeroed. The blocks that need neither (every Llama layer) run the loop
// with CHECK = false: no predicates, no zero fills (measured on an H200 with the SASS: the checks
// and the per-chunk 64-bit address arithmetic were ~half of the loop's instructions, in a kernel
// that is instruction-bound; bench/results/h200/README.md).
template <bool CHECK, typename T, int GS, bool ASYM, int NT, int MT>
__device__ __forceinline__ void load_stage(GemvStage<T, GS, ASYM, NT, MT>& st, const GemvCtx<T, GS, ASYM, NT, MT>& cx,
                                           int s, int buf) {
  using S = GemvStage<T, GS, ASYM, NT, MT>;
  const int cb = s * S::kChunks;
#pragma unroll
  for (int u = 0; u < S::kChunks; ++u) {
    const int c = cb + u;
    const bool cok = !CHECK || c < cx.chunks;
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
      st.wq[u][nt] = !CHECK || (cok && cx.tok[nt]) ? load_stream(cx.qw + (cx.qo[nt] + c * 32)) : make_int4(0, 0, 0, 0);
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        if (cx.knat) {
          // lane (row r = g, segment s = t): 16 bytes of row r; a chunk past K copies zeros (its
          // weights are zero too, and 0 * garbage could be NaN); rows past M copy nothing (they
          // only feed output columns that are never written)
          unsigned char* d = cx.xs + buf * kXsStage<S::kChunks, MT> + ((u * MT + mt) * 2 + h) * 512;
          if (cx.xok[mt]) cp_async16(d + xs_seg(cx.g, cx.lane & 3), cx.x + (cx.xo[mt] + (cok ? c * 64 + 32 * h : 0)), cok);
        } else {
          st.xv[u][mt][h] = CHECK && !(cok && cx.xok[mt]) ? make_uint4(0, 0, 0, 0)
                                                          : *reinterpret_cast<const uint4*>(cx.x + (cx.xo[mt] + c * 64 + 32 * h));
        }
      }
#pragma unroll
    for (int gi = 0; gi < S::NG; ++gi) {
      // the scale row of (chunk c, half gi); a stage starts on a group boundary when its 64 * kChunks
      // k are a multiple of GS, and then rows repeat within it at compile-time known (u, gi)
      constexpr bool kAligned = GS > 0 && (S::kChunks * 64) % (GS > 0 ? GS : 1) == 0;
      constexpr int kGs = GS > 0 ? GS : 64;  // (GS = 0: no rows; a divisor that compiles)
      const int off = u * 64 + gi * 32;
      const bool same = kAligned && (off > 0) && (off / kGs == (off - (S::NG == 2 ? 32 : 64)) / kGs);
      const int row = GS > 0 ? (kAligned ? cb * 64 / kGs + off / kGs : (c * 64 + gi * 32) / kGs) : 0;
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        if (same && !ASYM) {  // the group of the previous (u, gi): its scale, already loaded
          const int pu = S::NG == 2 ? (gi ? u : u - 1) : u - 1, pg = S::NG == 2 ? 1 - gi : 0;
          st.sc[u][nt][gi][0] = st.sc[pu][nt][pg][0];
          st.sc[u][nt][gi][1] = st.sc[pu][nt][pg][1];
          st.zm[u][nt][gi][0] = st.zm[u][nt][gi][1] = cx.zsym;
          continue;
        }
        const int at = cx.so[nt] + row * cx.N;
        const bool ok = !CHECK || (cok && cx.tok[nt]);
        if (GS > 0) {
          st.sc[u][nt][gi][0] = ok ? Traits<T>::to_float(cx.scales[at]) : 0.f;
          st.sc[u][nt][gi][1] = ok ? Traits<T>::to_float(cx.scales[at + 8]) : 0.f;
        }
        if (ASYM) {
          st.zm[u][nt][gi][0] = splat(Traits<T>::from_float(Traits<T>::kMagic + (ok ? Traits<T>::to_float(cx.zeros[at]) : 0.f)));
          st.zm[u][nt][gi][1] = splat(Traits<T>::from_float(Traits<T>::kMagic + (ok ? Traits<T>::to_float(cx.zeros[at + 8]) : 0.f)));
        } else {
          st.zm[u][nt][gi][0] = st.zm[u][nt][gi][1] = cx.zsym;
        }
      }
    }
  }
  if (cx.knat) cp_async_commit();
}

// knat: the stage's x from its staging into the registers compute_stage reads (the stage issued
// after it may still be in flight: wait_group 1).
template <typename T, int GS, bool ASYM, int NT, int MT>
__device__ __forceinline__ void fetch_x(GemvStage<T, GS, ASYM, NT, MT>& st, const GemvCtx<T, GS, ASYM, NT, MT>& cx,
                                        int buf) {
  using S = GemvStage<T, GS, ASYM, NT, MT>;
  cp_async_wait<1>();
  __syncwarp();
  // ldmatrix: lane l gives row l % 8 of matrix l / 8, the 8-deep k segment l / 8 of the 32
  const int off = xs_seg(cx.lane & 7, cx.lane >> 3);
#pragma unroll
  for (int u = 0; u < S::kChunks; ++u)
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int h = 0; h < 2; ++h)
        st.xv[u][mt][h] = ldmatrix_x4(cx.xs + buf * kXsStage<S::kChunks, MT> + ((u * MT + mt) * 2 + h) * 512 + off);
}

// Two register stages: the loads of the next stage are issued before the current one is computed,
// so every warp always has 2 x 64 bytes per lane in flight (latency-bound otherwise). Warp w takes
// stages w, w + warps, w + 2 * warps, ... of the K / 64 / kChunks. The loads stay unconditional, as
// straight-line code (branching around them cost ptxas ~14 registers): a stage past the end
// re-reads the last one (an L2 hit: its own warp has just read it) and is not computed.
template <bool CHECK, bool KNAT, typename T, int GS, bool ASYM, int NT, int MT>
__device__ __forceinline__ void gemv_loop(const GemvCtx<T, GS, ASYM, NT, MT>& cx, float (&acc)[NT][MT][4], int warp,
                                          int warps) {
  using Stage = GemvStage<T, GS, ASYM, NT, MT>;
  const int last = (cx.chunks + Stage::kChunks - 1) / Stage::kChunks - 1;
  if (warp > last) return;
  Stage sa, sb;
  load_stage<CHECK>(sa, cx, warp, 0);
  for (int s = warp; s <= last; s += 2 * warps) {
    load_stage<CHECK>(sb, cx, min(s + warps, last), 1);
    if (KNAT) fetch_x(sa, cx, 0);
    compute_stage<T, GS, ASYM, NT, MT, true>(sa, acc);
    if (s + warps > last) break;
    load_stage<CHECK>(sa, cx, min(s + 2 * warps, last), 0);
    if (KNAT) fetch_x(sb, cx, 1);
    compute_stage<T, GS, ASYM, NT, MT, true>(sb, acc);
  }
  if (KNAT) cp_async_wait<0>();  // nothing may land in shared memory after the warp moves on
}

// 512 threads only for one tile per block. The symmetric one-m8-tile kernels with one scale group per
// chunk or fewer, the decode path of most checkpoints, are held to 64 registers: two 512-thread
// blocks or four 256-thread ones per SM, what they had before the unchecked loop (ptxas gave its
// two-tile variant 78 without the bound, and spills nothing under it).
template <int GS, bool ASYM, int NT, int MT>
constexpr int kGemvMinBlocks = MT == 1 && !ASYM && GS != 32 && NT == 1 ? 2 : 0;
template <typename T, int GS, bool ASYM, int NT, int MT, bool KNAT>
__global__ void __launch_bounds__(NT == 1 ? 512 : 256, (kGemvMinBlocks<GS, ASYM, NT, MT>)) w4a16_gemv_mma_kernel(const T* __restrict__ x, const int4* __restrict__ qw,
                                                             const T* __restrict__ scales,
                                                             const T* __restrict__ zeros, T* __restrict__ y,
                                                             int M, int N, int K) {
  extern __shared__ float red[];  // [warps][NT * 16][MT * 8], then (knat) [warps][2 stages] x staging
  using Stage = GemvStage<T, GS, ASYM, NT, MT>;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int m0 = blockIdx.y * 16;
  GemvCtx<T, GS, ASYM, NT, MT> cx;
  cx.knat = KNAT;  // a compile-time constant: the GEMV layout's kernels are the code they always were
  const int tile0 = blockIdx.x * NT;
  cx.N = N;
  cx.chunks = K / 64;
  cx.lane = lane;
  cx.g = g;
  // 1024 + 8 (fp16) or 128 + 8 (bf16): the symmetric format's implicit zero point.
  cx.zsym = splat(Traits<T>::from_float(Traits<T>::kMagic + 8.f));
  cx.x = x + static_cast<std::size_t>(m0) * K;
  cx.qw = qw;
  cx.scales = scales;
  cx.zeros = zeros;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
    const int m = mt * 8 + g;
    cx.xok[mt] = m0 + m < M;
    cx.xo[mt] = (cx.xok[mt] ? m : 0) * K + 8 * t;
  }
  cx.xs = reinterpret_cast<unsigned char*>(red + warps * NT * 16 * MT * 8) + warp * 2 * kXsStage<Stage::kChunks, MT>;
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    cx.tok[nt] = tile0 + nt < N / 16;
    cx.qo[nt] = (tile0 + nt) * cx.chunks * 32 + lane;
    cx.so[nt] = (tile0 + nt) * 16 + g;
  }

  float acc[NT][MT][4];
  zero_tiles(acc);

  // Blocks whose every stage is whole (K / 64 a multiple of the stage's chunks, every tile inside N)
  // run the loop without bounds checks; the choice is uniform over the block.
  if (cx.chunks % Stage::kChunks == 0 && tile0 + NT <= N / 16)
    gemv_loop<false, KNAT>(cx, acc, warp, warps);
  else
    gemv_loop<true, KNAT>(cx, acc, warp, warps);

  // reduce the warps' K-slices through shared memory, then write y coalesced along n
  constexpr int BN = NT * 16, BM = MT * 8;
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
      float* r = red + static_cast<std::size_t>(warp) * BN * BM;
      r[(nt * 16 + g) * BM + mt * 8 + 2 * t] = acc[nt][mt][0];
      r[(nt * 16 + g) * BM + mt * 8 + 2 * t + 1] = acc[nt][mt][1];
      r[(nt * 16 + g + 8) * BM + mt * 8 + 2 * t] = acc[nt][mt][2];
      r[(nt * 16 + g + 8) * BM + mt * 8 + 2 * t + 1] = acc[nt][mt][3];
    }
  __syncthreads();
  for (int i = threadIdx.x; i < BN * BM; i += blockDim.x) {
    const int nl = i % BN, ml = i / BN;
    const int n = tile0 * 16 + nl, m = m0 + ml;
    if (n >= N || m >= M) continue;
    float s = 0.f;
    for (int w = 0; w < warps; ++w) s += red[(static_cast<std::size_t>(w) * BN + nl) * BM + ml];
    if (GS == 0) s *= Traits<T>::to_float(scales[n]);
    y[static_cast<std::size_t>(m) * N + n] = Traits<T>::from_float(s);
  }
}
#endif  // !TINYGEMM_HIP

// Portable path: a block owns one 16-wide tile and up to 16 rows of x; threads walk the tile's words.
template <typename T>
__global__ void __launch_bounds__(256) w4a16_gemv_simt_kernel(const T* __restrict__ x, const int* __restrict__ qw,
                                                              const T* __restrict__ scales,
                                                              const T* __restrict__ zeros, T* __restrict__ y,
                                                              int M, int N, int K, int group_size) {
  __shared__ float red[16][16];  // [m][n]
  for (int i = threadIdx.x; i < 256; i += blockDim.x) red[i / 16][i % 16] = 0.f;
  __syncthreads();
  const int tile = blockIdx.x, chunks = K / 64, m0 = blockIdx.y * 16;
  const int rows = min(16, M - m0);
  const int gs = group_size > 0 ? group_size : K;
  float acc[16][2];
  for (int m = 0; m < 16; ++m) acc[m][0] = acc[m][1] = 0.f;
  // one word per iteration: (chunk, lane, j); its 8 nibbles cover rows n = g and g + 8
  for (int w = threadIdx.x; w < chunks * 128; w += blockDim.x) {
    const int c = w / 128, lane = (w / 4) % 32, j = w % 4;
    const unsigned word = static_cast<unsigned>(qw[(static_cast<std::size_t>(tile) * chunks + c) * 128 + w % 128]);
    for (int p = 0; p < 8; ++p) {
      const int n = tile * 16 + nib_n(lane, p), k = c * 64 + nib_k(lane, j, p);
      const int grp = k / gs;
      const float s = Traits<T>::to_float(scales[static_cast<std::size_t>(grp) * N + n]);
      const float z = zeros ? Traits<T>::to_float(zeros[static_cast<std::size_t>(grp) * N + n]) : 8.f;
      const float wv = (static_cast<float>((word >> (4 * p)) & 0xFu) - z) * s;
      for (int m = 0; m < rows; ++m)
        acc[m][p & 1] += wv * Traits<T>::to_float(x[static_cast<std::size_t>(m0 + m) * K + k]);
    }
    // the rows n this thread touched depend on its lane; flush per word to keep registers static
    for (int m = 0; m < rows; ++m) {
      atomicAdd(&red[m][lane >> 2], acc[m][0]);
      atomicAdd(&red[m][(lane >> 2) + 8], acc[m][1]);
      acc[m][0] = acc[m][1] = 0.f;
    }
  }
  __syncthreads();
  for (int i = threadIdx.x; i < rows * 16; i += blockDim.x) {
    const int m = i / 16, nl = i % 16;
    y[static_cast<std::size_t>(m0 + m) * N + tile * 16 + nl] = Traits<T>::from_float(red[m][nl]);
  }
}

#if !defined(TINYGEMM_HIP)
template <typename T, int GS, bool ASYM, int NT, int MT, bool KNAT>
void launch_mma(const void* x, const void* qw, const void* s, const void* z, void* y, int M, int N, int K,
                int warps, cudaStream_t st) {
  if constexpr (KNAT && NT == 4) {
    // not compiled: 4 tiles per block never won on the GEMV layout (bench/tune_w4a16_gemv.py), and
    // each sm90-layout configuration doubles the file's build time
    TG_CHECK_ARG(false, "w4a16_gemv: n_tiles 4 is not compiled for the sm90 layout (1 or 2)");
  } else {
    const dim3 grid((N / 16 + NT - 1) / NT, (M + 15) / 16);
    const std::size_t smem = sizeof(float) * warps * NT * 16 * MT * 8 +
                             (KNAT ? warps * 2 * kXsStage<GemvStage<T, GS, ASYM, NT, MT>::kChunks, MT> : 0);
    auto kernel = w4a16_gemv_mma_kernel<T, GS, ASYM, NT, MT, KNAT>;
    if (smem > 48 * 1024)
      TG_GPU_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
    kernel<<<grid, warps * 32, smem, st>>>(static_cast<const T*>(x), static_cast<const int4*>(qw),
                                           static_cast<const T*>(s), static_cast<const T*>(z), static_cast<T*>(y),
                                           M, N, K);
    TG_CHECK_LAUNCH();
  }
}

// The compiled configurations: dtype x group size x {symmetric, zero point} x tiles per block x
// m8 tiles. NT: 4 when N gives enough blocks (fewer x re-reads per weight byte), else 2 or 1 to fill
// the SMs. MT: 1 m8 tile for M <= 8, 2 for 9..16 rows per block (larger M loops over blocks).
template <typename T, int GS, bool ASYM>
void dispatch_nt_mt(const void* x, const void* qw, const void* s, const void* z, void* y, int M, int N, int K,
                    const GemvConfig& c, bool knat, cudaStream_t st) {
  const bool two = M > 8;
#define TG_CALL_IF(NT_)                                                                            \
  if (c.n_tiles == NT_) {                                                                          \
    if (two) {                                                                                     \
      if (knat) return launch_mma<T, GS, ASYM, NT_, 2, true>(x, qw, s, z, y, M, N, K, c.warps, st); \
      return launch_mma<T, GS, ASYM, NT_, 2, false>(x, qw, s, z, y, M, N, K, c.warps, st);         \
    }                                                                                              \
    if (knat) return launch_mma<T, GS, ASYM, NT_, 1, true>(x, qw, s, z, y, M, N, K, c.warps, st);   \
    return launch_mma<T, GS, ASYM, NT_, 1, false>(x, qw, s, z, y, M, N, K, c.warps, st);           \
  }
  TG_CALL_IF(1)
  TG_CALL_IF(2)
  TG_CALL_IF(4)
#undef TG_CALL_IF
  TG_CHECK_ARG(false, "w4a16_gemv: n_tiles must be 1, 2 or 4; got ", c.n_tiles);
}

template <typename T>
void dispatch_mma(const void* x, const void* qw, const void* s, const void* z, void* y, int M, int N, int K,
                  int gs, const GemvConfig& c, bool knat, cudaStream_t st) {
  const bool asym = z != nullptr;
#define TG_CALL_GS(GS_, GSARG_)                                                              \
  if (gs == GSARG_) {                                                                        \
    if (asym) return dispatch_nt_mt<T, GS_, true>(x, qw, s, z, y, M, N, K, c, knat, st);     \
    return dispatch_nt_mt<T, GS_, false>(x, qw, s, z, y, M, N, K, c, knat, st);              \
  }
  TG_CALL_GS(32, 32)
  TG_CALL_GS(64, 64)
  TG_CALL_GS(128, 128)
  TG_CALL_GS(0, -1)
#undef TG_CALL_GS
  TG_CHECK_ARG(false, "w4a16_gemv: no compiled kernel for group_size ", gs, " (32, 64, 128 or -1)");
}
#endif

}  // namespace

void w4a16_gemv(const void* x, const void* qweight, const void* scales, const void* zeros, void* y, int M, int N,
                int K, int group_size, DType dtype, std::uintptr_t stream, GemvConfig cfg, W4Layout layout) {
  check_w4_shape(N, K, group_size, dtype);
  TG_CHECK_ARG(M >= 1, "w4a16_gemv: M must be >= 1; got ", M);
  TG_CHECK_ARG(reinterpret_cast<std::uintptr_t>(qweight) % 16 == 0,
               "w4a16_gemv: packed weights must be 16-byte aligned (one 16-byte load per lane)");
  TG_CHECK_ARG(reinterpret_cast<std::uintptr_t>(x) % 16 == 0, "w4a16_gemv: x must be 16-byte aligned");
  // the kernels address the weights and scales by 32-bit offsets (fewer registers in the loop)
  TG_CHECK_ARG(static_cast<long long>(N) * K / 32 <= 0x7fffffffLL,
               "w4a16_gemv: N x K / 32 must fit in 31 bits (the kernels' 32-bit offsets); got N = ", N, ", K = ", K);
  const DeviceProps& d = device_props();
  const int major = d.cc_major;
  GemvConfig h = w4a16_gemv_config(M, N, K, d.sm_count, major, layout);
  if (cfg.impl == GemvImpl::kAuto) cfg.impl = h.impl;
  if (cfg.impl != h.impl) {  // an implementation named by the caller: its own defaults
    h = cfg.impl == GemvImpl::kTma ? GemvConfig{kGemvTmaShapes[0][0], kGemvTmaShapes[0][1], GemvImpl::kTma}
                                   : w4a16_gemv_config(M, N, K, d.sm_count, major);
  }
  if (cfg.n_tiles == 0) cfg.n_tiles = h.n_tiles;
  if (cfg.warps == 0) cfg.warps = h.warps;
  check_gemv_config(cfg);
  if (cfg.impl == GemvImpl::kTma) {
    TG_CHECK_ARG(layout == W4Layout::kSm90, "w4a16_gemv: the tma implementation reads the sm90 layout ('",
                 kLayoutNames[1], "') only");
    return w4a16_gemv_tma(x, qweight, scales, zeros, y, M, N, K, group_size, dtype, stream, cfg);
  }
  auto st = as_stream(stream);
  if (cfg.impl == GemvImpl::kMma) {
#if defined(TINYGEMM_HIP)
    TG_CHECK_ARG(false, "w4a16_gemv: the mma implementation is NVIDIA-only (sm_80+); use impl='simt' on AMD");
#else
    TG_CHECK_ARG(major >= 8, "w4a16_gemv: the mma implementation needs compute capability 8.0+; got ", major);
    const bool knat = layout == W4Layout::kSm90;
    if (dtype == DType::kF16) return dispatch_mma<tg_half>(x, qweight, scales, zeros, y, M, N, K, group_size, cfg, knat, st);
    return dispatch_mma<tg_bf16>(x, qweight, scales, zeros, y, M, N, K, group_size, cfg, knat, st);
#endif
  }
  TG_CHECK_ARG(cfg.impl == GemvImpl::kSimt, "w4a16_gemv: impl must be 'auto', 'mma', 'simt' or 'tma' (0..3); got ",
               static_cast<int>(cfg.impl));
  TG_CHECK_ARG(layout == W4Layout::kV1, "w4a16_gemv: the portable (simt) implementation reads the GEMV layout only");
  const dim3 grid(N / 16, (M + 15) / 16);
  if (dtype == DType::kF16)
    w4a16_gemv_simt_kernel<tg_half><<<grid, 256, 0, st>>>(
        static_cast<const tg_half*>(x), static_cast<const int*>(qweight), static_cast<const tg_half*>(scales),
        static_cast<const tg_half*>(zeros), static_cast<tg_half*>(y), M, N, K, group_size);
  else
    w4a16_gemv_simt_kernel<tg_bf16><<<grid, 256, 0, st>>>(
        static_cast<const tg_bf16*>(x), static_cast<const int*>(qweight), static_cast<const tg_bf16*>(scales),
        static_cast<const tg_bf16*>(zeros), static_cast<tg_bf16*>(y), M, N, K, group_size);
  TG_CHECK_LAUNCH();
}

}  // namespace tg
