// tinygemm-bench-bandwidth: device-to-device copy bandwidth, the measured memory ceiling that
// "% of measured bandwidth" and the byte floors are computed against. Counts bytes read + written.
#include "common.h"
#include "harness/device_ops.h"

int main(int argc, char** argv) {
  using namespace tg;
  bench::Args args("tinygemm-bench-bandwidth", "Device-to-device copy bandwidth (bytes read + written).");
  args.add("bytes", "1G", "bytes copied per launch (suffix K, M or G: powers of 1024)");
  args.parse(argc, argv);
  return bench::run_main([&] {
    std::size_t bytes = static_cast<std::size_t>(args.size("bytes", 16, 1ll << 40));
    if (args.flag("smoke") && !args.seen("bytes")) bytes = 64 << 20;
    bytes = (bytes + 15) / 16 * 16;
    const TimerOptions opts = args.timer_options();
    bench::select_device(args);  // after validating every argument: bad input is exit 2 everywhere

    cudaStream_t stream;
    TG_GPU_CHECK(cudaStreamCreate(&stream));
    // Cold L2 in graph mode (a replay has no flush between its launches): launches rotate through
    // source/destination pairs, as many as the harness's rule asks (rotation_copies, timer.h; the
    // same as tinygemm.timing and tinygemm-bench-gemm). Copies are capped at 8 GiB of buffers; a result
    // whose rotation falls short is labelled "cold-first" (bench::l2_label).
    const std::size_t l2 = device_info().l2_bytes;
    int copies = 1;
    if (opts.l2 == L2Mode::kCold && (opts.mode == TimingMode::kGraph || opts.mode == TimingMode::kAuto)) {
      const std::size_t want = static_cast<std::size_t>(rotation_copies(bytes, l2));
      const std::size_t fit = std::max<std::size_t>(1, (std::size_t(8) << 30) / (2 * bytes));
      copies = static_cast<int>(std::min(want, fit));
    }
    std::vector<void*> src(copies), dst(copies);
    const auto s = reinterpret_cast<std::uintptr_t>(stream);
    for (int i = 0; i < copies; ++i) {
      TG_GPU_CHECK(cudaMalloc(&src[i], bytes));
      TG_GPU_CHECK(cudaMalloc(&dst[i], bytes));
      fill_uniform(src[i], bytes / 4, DType::kF32, -1.f, 1.f, 1 + i, s);
    }
    auto launch = [&](int i) {
      TG_GPU_CHECK(cudaMemcpyAsync(dst[i % copies], src[i % copies], bytes, cudaMemcpyDeviceToDevice, stream));
    };

    bench::Record rec;
    rec.set("name", "bandwidth").set("device", device_info().name).set("bytes", bytes);
    if (args.flag("profile")) {
      bench::profile_once([&] { launch(0); }, stream, "tinygemm-bench-bandwidth");
      rec.set("profiled", 1);
    } else {
      Timer timer(s);
      TimerResult r = timer.measure(launch, opts);
      r.l2 = bench::l2_label(r, copies, bytes, l2);
      rec.timing(r).set("buffer_copies", copies).set("gbps", 2.0 * bytes / (r.us.median * 1e3));
    }
    bench::emit(args, rec);
    for (void* p : src) TG_GPU_CHECK(cudaFree(p));
    for (void* p : dst) TG_GPU_CHECK(cudaFree(p));
    TG_GPU_CHECK(cudaStreamDestroy(stream));
    return 0;
  });
}
