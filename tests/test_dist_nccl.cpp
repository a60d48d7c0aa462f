// The NCCL wrapper. On any machine: loading libnccl (dlopen) and forcing NVLink multicast off.
// With a GPU: a 1-rank communicator (every collective is the identity, bit for bit) and a launch
// whose second rank never comes, which must fail within the timeout instead of hanging.
#ifdef GFWA_WITH_CUDA
#include <gtest/gtest.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>

#include "dist/dist_error.h"
#include "dist/nccl_comm.h"

using namespace gfwa;
using namespace gfwa::dist;
using namespace std::chrono_literals;

namespace {

bool has_gpu() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

// Empty when NCCL loads, else why not.
std::string nccl_problem() {
  try {
    nccl();
  } catch (const DistError& e) {
    return e.what();
  }
  return "";
}

#define SKIP_WITHOUT_GPU_AND_NCCL()                                                          \
  do {                                                                                       \
    if (!has_gpu()) GTEST_SKIP() << "no CUDA device";                                        \
    if (const std::string p = nccl_problem(); !p.empty()) GTEST_SKIP() << "no NCCL: " << p;  \
  } while (0)

template <typename T>
struct DeviceBuffer {
  T* p = nullptr;
  size_t n;
  explicit DeviceBuffer(size_t count) : n(count) { EXPECT_EQ(cudaMalloc(&p, n * sizeof(T)), cudaSuccess); }
  ~DeviceBuffer() { cudaFree(p); }
  // A pageable cudaMemcpy may return before its DMA lands; the collectives run on a non-blocking stream
  // that does not wait for it, so synchronise here (an all_gather once read the NaN poison instead).
  void put(const std::vector<T>& h) {
    ASSERT_EQ(cudaMemcpy(p, h.data(), n * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  }
  std::vector<T> get() const {
    std::vector<T> h(n);
    EXPECT_EQ(cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    return h;
  }
};

template <typename T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

}  // namespace

TEST(NcclLibrary, MissingLibraryNamesThePath) {
  try {
    load_nccl("/nonexistent/dir/libnccl.so.2");
    FAIL() << "loaded a library that does not exist";
  } catch (const DistError& e) {
    const std::string m = e.what();
    EXPECT_EQ(m.find("cannot load NCCL from /nonexistent/dir/libnccl.so.2: "), 0u) << m;
    EXPECT_NE(m.find("GFWA_NCCL_LIBRARY"), std::string::npos) << m;
  }
}

TEST(NcclLibrary, NvlinkMulticastIsForcedOff) {
  ASSERT_EQ(::setenv("NCCL_NVLS_ENABLE", "1", 1), 0);
  force_nvls_off();
  ASSERT_NE(std::getenv("NCCL_NVLS_ENABLE"), nullptr);
  EXPECT_STREQ(std::getenv("NCCL_NVLS_ENABLE"), "0");
  ::unsetenv("NCCL_NVLS_ENABLE");
  force_nvls_off();
  EXPECT_STREQ(std::getenv("NCCL_NVLS_ENABLE"), "0");
}

TEST(NcclLibrary, LoadsTheInstalledLibrary) {
  if (const std::string p = nccl_problem(); !p.empty()) GTEST_SKIP() << "no NCCL on this machine: " << p;
  EXPECT_GE(nccl().version, kMinNcclVersion);
  EXPECT_STREQ(std::getenv("NCCL_NVLS_ENABLE"), "0");  // set before NCCL could read it
}

TEST(NcclComm, OneRankCollectivesAreIdentity) {
  SKIP_WITHOUT_GPU_AND_NCCL();
  DistEnv env;  // a single process
  env.launcher = "single";
  DistributedConfig cfg;
  cfg.timeout_s = 60;
  auto comm = init_nccl(env, cfg);
  ASSERT_EQ(comm->world(), 1);
  cudaStream_t stream;
  ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);

  const size_t n = 1000003;  // odd, not a multiple of any vector width
  std::mt19937_64 rng(90);
  std::normal_distribution<float> nd(0.f, 3.f);
  std::vector<float> f(n);
  for (auto& x : f) x = nd(rng);
  std::vector<uint16_t> h(n);  // bf16 bit patterns of finite values
  for (auto& x : h) {
    const float v = nd(rng);
    uint32_t u;
    std::memcpy(&u, &v, 4);
    x = uint16_t(u >> 16);
  }
  const std::vector<float> nan(n, NAN);
  const std::vector<uint16_t> bf_nan(n, 0x7fc0);

  DeviceBuffer<float> a(n), out(n);
  for (ReduceOp op : {ReduceOp::sum, ReduceOp::avg}) {
    a.put(f);
    comm->all_reduce(a.p, n, DType::f32, op, stream);
    comm->synchronize(stream);
    EXPECT_TRUE(same_bits(a.get(), f));
  }
  DeviceBuffer<uint16_t> b(n);
  b.put(h);
  comm->all_reduce(b.p, n, DType::bf16, ReduceOp::sum, stream);
  comm->synchronize(stream);
  EXPECT_TRUE(same_bits(b.get(), h));

  a.put(f);
  out.put(nan);
  comm->reduce_scatter(a.p, out.p, n, DType::f32, ReduceOp::avg, stream);
  comm->synchronize(stream);
  EXPECT_TRUE(same_bits(out.get(), f));
  out.put(nan);
  comm->all_gather(a.p, out.p, n, DType::f32, stream);
  comm->synchronize(stream);
  EXPECT_TRUE(same_bits(out.get(), f));
  DeviceBuffer<uint16_t> b_out(n);
  b_out.put(bf_nan);
  comm->all_gather(b.p, b_out.p, n, DType::bf16, stream);
  comm->synchronize(stream);
  EXPECT_TRUE(same_bits(b_out.get(), h));

  std::vector<double> host{1.5, -2.25, 3e10, 7.0};
  const auto host0 = host;
  comm->all_reduce_host(host.data(), int(host.size()), ReduceOp::avg, stream);
  EXPECT_TRUE(same_bits(host, host0));
  comm.reset();  // finalize + destroy must return
  cudaStreamDestroy(stream);
}

TEST(NcclComm, MissingRankFailsWithinTheTimeout) {
  SKIP_WITHOUT_GPU_AND_NCCL();
  DistEnv env;
  env.world = 2;  // rank 1 never comes
  ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
  const auto id = NcclComm::new_unique_id();
  EXPECT_EQ(id.size(), 128u);
  const auto start = std::chrono::steady_clock::now();
  try {
    NcclComm comm(env, id, 3s);
    FAIL() << "a 2-rank communicator came up with one rank";
  } catch (const DistError& e) {
    EXPECT_EQ(std::string(e.what()),
              "rank 0: NCCL communicator init of 2 ranks not done within 3 s (a rank missing or stuck?); "
              "NCCL communicator aborted");
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 30s);
}
#endif
