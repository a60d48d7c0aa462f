#ifdef GFWA_WITH_CUDA
#include "dist/nccl_comm.h"

#include <spdlog/spdlog.h>

#include <cstring>
#include <thread>

#include "dist/dist_error.h"
#include "dist/exchange_text.h"
#include "dist/id_exchange.h"

namespace gfwa::dist {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kPollPause = std::chrono::microseconds(20);

ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::f32: return ncclFloat32;
    case DType::bf16: return ncclBfloat16;
    case DType::f64: return ncclFloat64;
  }
  return ncclFloat32;
}

ncclRedOp_t nccl_op(ReduceOp op) { return op == ReduceOp::avg ? ncclAvg : ncclSum; }

void check_cuda(cudaError_t e, int rank, const char* what) {
  if (e != cudaSuccess)
    throw DistError("rank " + std::to_string(rank) + ": " + what + ": " + cudaGetErrorString(e));
}

}  // namespace

std::vector<uint8_t> NcclComm::new_unique_id() {
  ncclUniqueId id;
  const ncclResult_t r = nccl().GetUniqueId(&id);
  if (r != ncclSuccess) throw DistError(std::string("ncclGetUniqueId failed: ") + nccl().GetErrorString(r));
  const auto* p = reinterpret_cast<const uint8_t*>(&id);
  return std::vector<uint8_t>(p, p + sizeof id);
}

NcclComm::NcclComm(const DistEnv& env, const std::vector<uint8_t>& id, std::chrono::milliseconds timeout)
    : api_(nccl()), rank_(env.rank), world_(env.world), timeout_(timeout) {
  ncclUniqueId uid;
  if (id.size() != sizeof uid)
    throw DistError("rank " + std::to_string(rank_) + ": NCCL id of " + std::to_string(id.size()) + " bytes, expected " +
                    std::to_string(sizeof uid));
  std::memcpy(&uid, id.data(), sizeof uid);
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;  // so that a missing peer cannot block us: we poll, then abort
  const ncclResult_t r = api_.CommInitRankConfig(&comm_, world_, uid, rank_, &config);
  if (r != ncclSuccess && r != ncclInProgress) {
    const std::string msg = api_.GetErrorString(r);
    if (comm_) api_.CommAbort(comm_);
    comm_ = nullptr;
    throw DistError("rank " + std::to_string(rank_) + ": NCCL init failed: " + msg);
  }
  check(r, "communicator init");
  int device = -1;
  cudaGetDevice(&device);
  spdlog::info("rank {}/{}: NCCL {} communicator ready on GPU {} ({})", rank_, world_, api_.version, device, api_.path);
}

NcclComm::~NcclComm() {
  // Finalize flushes pending work; if that cannot finish in time, abort rather than hang on exit.
  if (comm_) {
    try {
      check(api_.CommFinalize(comm_), "finalize");
      api_.CommDestroy(comm_);
    } catch (const DistError& e) {
      spdlog::error("{}", e.what());
    }
    comm_ = nullptr;
  }
  if (scratch_) cudaFree(scratch_);
}

void NcclComm::abort() {
  if (!comm_) return;
  api_.CommAbort(comm_);
  comm_ = nullptr;
}

void NcclComm::fail(const std::string& message) {
  abort();
  throw DistError("rank " + std::to_string(rank_) + ": " + message + "; NCCL communicator aborted");
}

// A non-blocking call may return ncclInProgress; its state then settles asynchronously.
ncclResult_t NcclComm::wait_ready(const char* what) {
  const auto deadline = Clock::now() + timeout_;
  for (;;) {
    ncclResult_t state = ncclSuccess;
    const ncclResult_t q = api_.CommGetAsyncError(comm_, &state);
    if (q != ncclSuccess) return q;
    if (state != ncclInProgress) return state;
    if (Clock::now() > deadline)
      fail(std::string("NCCL ") + what + " of " + std::to_string(world_) + " ranks not done within " +
           seconds_text(timeout_) + " (a rank missing or stuck?)");
    std::this_thread::sleep_for(kPollPause);
  }
}

void NcclComm::check(ncclResult_t r, const char* what) {
  if (!comm_) throw DistError("rank " + std::to_string(rank_) + ": NCCL " + what + " on an aborted communicator");
  if (r == ncclInProgress) r = wait_ready(what);
  if (r != ncclSuccess) {
    const char* last = api_.GetLastError(comm_);
    fail(std::string("NCCL ") + what + " failed: " + api_.GetErrorString(r) + (last && *last ? std::string(" (") + last + ")" : ""));
  }
}

void NcclComm::all_reduce(void* buf, size_t count, DType t, ReduceOp op, cudaStream_t stream) {
  check(api_.AllReduce(buf, buf, count, nccl_type(t), nccl_op(op), comm_, stream), "all_reduce");
}

void NcclComm::reduce_scatter(const void* send, void* recv, size_t recv_count, DType t, ReduceOp op,
                              cudaStream_t stream) {
  check(api_.ReduceScatter(send, recv, recv_count, nccl_type(t), nccl_op(op), comm_, stream), "reduce_scatter");
}

void NcclComm::all_gather(const void* send, void* recv, size_t send_count, DType t, cudaStream_t stream) {
  check(api_.AllGather(send, recv, send_count, nccl_type(t), comm_, stream), "all_gather");
}

void NcclComm::synchronize(cudaStream_t stream) {
  const auto deadline = Clock::now() + timeout_;
  for (;;) {
    const cudaError_t e = cudaStreamQuery(stream);
    if (e == cudaSuccess) return;
    if (e != cudaErrorNotReady) check_cuda(e, rank_, "waiting for collectives");
    ncclResult_t state = ncclSuccess;
    if (!comm_) throw DistError("rank " + std::to_string(rank_) + ": synchronize on an aborted NCCL communicator");
    api_.CommGetAsyncError(comm_, &state);
    if (state != ncclSuccess && state != ncclInProgress)
      fail(std::string("NCCL reports ") + api_.GetErrorString(state) + " while waiting for collectives (a peer failed?)");
    if (Clock::now() > deadline)
      fail("collectives did not finish within " + seconds_text(timeout_) +
           " (a rank died or stopped calling them?)");
    std::this_thread::sleep_for(kPollPause);
  }
}

void NcclComm::all_reduce_host(double* values, int n, ReduceOp op, cudaStream_t stream) {
  if (n <= 0) return;
  if (n > scratch_n_) {
    if (scratch_) check_cuda(cudaFree(scratch_), rank_, "cudaFree");
    scratch_ = nullptr;
    scratch_n_ = 0;
    check_cuda(cudaMalloc(&scratch_, sizeof(double) * size_t(n)), rank_, "cudaMalloc");
    scratch_n_ = n;
  }
  const size_t bytes = sizeof(double) * size_t(n);
  check_cuda(cudaMemcpyAsync(scratch_, values, bytes, cudaMemcpyHostToDevice, stream), rank_, "cudaMemcpyAsync");
  all_reduce(scratch_, size_t(n), DType::f64, op, stream);
  check_cuda(cudaMemcpyAsync(values, scratch_, bytes, cudaMemcpyDeviceToHost, stream), rank_, "cudaMemcpyAsync");
  synchronize(stream);
}

std::unique_ptr<NcclComm> init_nccl(const DistEnv& env, const DistributedConfig& cfg) {
  if (cfg.timeout_s <= 0)
    throw DistError("distributed.timeout_s = " + std::to_string(cfg.timeout_s) + ": must be positive");
  nccl();  // a missing library fails here, before any rank waits for another
  int visible = 0;
  check_cuda(cudaGetDeviceCount(&visible), env.rank, "cudaGetDeviceCount");
  const int device = cuda_device_for(env, visible);
  check_cuda(cudaSetDevice(device), env.rank, ("cudaSetDevice(" + std::to_string(device) + ")").c_str());
  const std::vector<uint8_t> id = env.rank == 0 ? NcclComm::new_unique_id() : std::vector<uint8_t>();
  const auto shared = exchange_id(env, cfg, id);
  return std::make_unique<NcclComm>(env, shared, std::chrono::seconds(cfg.timeout_s));
}

}  // namespace gfwa::dist
#endif
