// The device collectives a backend shares gradients with across the ranks of a data-parallel run:
// the only part of dist/ that model/ sees. NcclComm implements it; a backend holds a pointer and
// never learns how the ranks found each other.
#pragma once
#ifdef GFWA_WITH_CUDA
#include <cuda_runtime.h>

#include <cstddef>

namespace gfwa::dist {

enum class DType { f32, bf16, f64 };
enum class ReduceOp { sum, avg };

class Collectives {
 public:
  virtual ~Collectives() = default;
  virtual int rank() const = 0;
  virtual int world() const = 0;

  // Enqueued on `stream`; counts are elements. reduce_scatter: send holds recv_count * world
  // elements, rank r receives block r. all_gather: recv gets send_count * world elements, block r
  // from rank r. Buffers of one call must not overlap except all_reduce's in-place buffer.
  virtual void all_reduce(void* buf, size_t count, DType t, ReduceOp op, cudaStream_t stream) = 0;
  virtual void reduce_scatter(const void* send, void* recv, size_t recv_count, DType t, ReduceOp op,
                              cudaStream_t stream) = 0;
  virtual void all_gather(const void* send, void* recv, size_t send_count, DType t, cudaStream_t stream) = 0;

  // A stream synchronisation that gives up: throws if a peer failed or the stream's work did not
  // finish within the implementation's timeout.
  virtual void synchronize(cudaStream_t stream) = 0;
  // Reduces n host values across ranks in place (losses, squared norms); synchronous.
  virtual void all_reduce_host(double* values, int n, ReduceOp op, cudaStream_t stream) = 0;
};

}  // namespace gfwa::dist
#endif
