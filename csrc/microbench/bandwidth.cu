// tinygemm-bench-bandwidth: device-to-device copy bandwidth, the measured memory ceiling that
// "% of measured bandwidth" and the byte floors are computed against. Counts bytes read + written.
#include "common.h"
#include "harness/device_ops.h"

int main(int argc, char** argv) {
  using namespace tg;
  bench::Args args("tinygemm-bench-bandwidth", "Device-to-device copy bandwidth (bytes read + written).");
  args.add("bytes", "1G", "bytes copied per launch (suffix K, M or G)");
  args.parse(argc, argv);
  return bench::run_main([&] {
    std::size_t bytes = static_cast<std::size_t>(args.integer("bytes", 16, 1ll << 40));
    if (args.flag("smoke") && !args.seen("bytes")) bytes = 64 << 20;
    bytes = (bytes + 15) / 16 * 16;
    const TimerOptions opts = args.timer_options();
    bench::select_device(args);  // after validating every argument: bad input is exit 2 everywhere

    cudaStream_t stream;
    TG_GPU_CHECK(cudaStreamCreate(&stream));
    void *src = nullptr, *dst = nullptr;
    TG_GPU_CHECK(cudaMalloc(&src, bytes));
    TG_GPU_CHECK(cudaMalloc(&dst, bytes));
    const auto s = reinterpret_cast<std::uintptr_t>(stream);
    fill_uniform(src, bytes / 4, DType::kF32, -1.f, 1.f, 1, s);
    auto launch = [&](int) { TG_GPU_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream)); };

    bench::Record rec;
    rec.set("name", "bandwidth").set("device", device_info().name).set("bytes", bytes);
    if (args.flag("profile")) {
      bench::profile_once([&] { launch(0); }, stream, "tinygemm-bench-bandwidth");
      rec.set("profiled", 1);
    } else {
      Timer timer(s);
      const TimerResult r = timer.measure(launch, opts);
      rec.timing(r).set("gbps", 2.0 * bytes / (r.us.median * 1e3));
    }
    bench::emit(args, rec);
    TG_GPU_CHECK(cudaFree(src));
    TG_GPU_CHECK(cudaFree(dst));
    TG_GPU_CHECK(cudaStreamDestroy(stream));
    return 0;
  });
}
