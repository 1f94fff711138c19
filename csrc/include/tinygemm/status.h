// Errors: bad input is std::invalid_argument (Python sees ValueError), a failed GPU call is
// std::runtime_error (RuntimeError). Both carry a message that names the constraint and the values.
// Plain C++: kernels' host launchers, the harness, the bindings and the binaries all include it.
#pragma once

#include <stdexcept>
#include <string>
#include <type_traits>

namespace tg {

// Messages are built without iostreams: on a machine whose process had loaded another libstdc++
// (a GPU machine's own GCC build), formatting through std::ostringstream's locale crashed.
inline std::string to_str(const std::string& s) { return s; }
inline std::string to_str(const char* s) { return s; }
template <typename T, typename = std::enable_if_t<std::is_arithmetic_v<std::decay_t<T>>>>
std::string to_str(T v) {
  return std::to_string(v);
}

template <typename... Args>
std::string cat(Args&&... args) {
  std::string s;
  ((s += to_str(args)), ...);
  return s;
}

// Thrown by every GPU entry point of a build that has no CUDA or HIP (CPU-only install).
struct NoGpuBuild : std::runtime_error {
  explicit NoGpuBuild(const std::string& what)
      : std::runtime_error("tinygemm was built without GPU support (no CUDA toolkit or ROCm was found "
                           "when it was installed), so '" + what + "' cannot run. Reinstall on a machine "
                           "with nvcc or hipcc: pip install .") {}
};

}  // namespace tg

#define TG_CHECK_ARG(cond, ...)                                                    \
  do {                                                                             \
    if (!(cond)) throw std::invalid_argument(::tg::cat(__VA_ARGS__));              \
  } while (0)

#define TG_GPU_CHECK(expr)                                                         \
  do {                                                                             \
    auto tg_err_ = (expr);                                                         \
    if (tg_err_ != cudaSuccess)                                                    \
      throw std::runtime_error(::tg::cat(#expr, " failed: ", cudaGetErrorString(tg_err_), \
                                         " (", __FILE__, ":", __LINE__, ")"));    \
  } while (0)

// After a kernel launch: launch-configuration errors surface here, not at the next sync.
#define TG_CHECK_LAUNCH() TG_GPU_CHECK(cudaGetLastError())
