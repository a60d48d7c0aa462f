// The cuda backend's decoder (model/decoder.h). A prompt is prefilled by the training forward
// (CudaBackend::forward_hidden, the same kernels), whose keys, values and Lam then fill the slot's
// cache (kernels/decode.cuh). A step runs the model on one token per slot, bf16 like training,
// with attention through the cache; from the second step on it replays a CUDA graph of the whole
// step. Internal to model/: Backend::make_decoder makes it.
#pragma once
#ifdef GFWA_WITH_CUDA
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <vector>

#include "kernels/decode.cuh"
#include "model/cuda_arena.h"
#include "model/decoder.h"

namespace gfwa {

class CudaBackend;

class CudaDecoder final : public Decoder {
 public:
  CudaDecoder(CudaBackend& be, int batch, int64_t max_length);
  ~CudaDecoder() override;

  void prefill(int b, const int32_t* tokens, int n) override;
  void step(const int32_t* tokens) override;
  const std::vector<float>& logits() override;
  void greedy(int limit, int32_t* ids) override;
  int64_t cache_bytes() const override { return cache_bytes_; }

 private:
  void run_step();  // the kernels of one step (captured into graph_ once)

  CudaBackend& be_;
  std::vector<cuda::DecodeDims> dims_;  // per layer: its mode and cache capacity
  DeviceArena arena_;
  std::vector<cuda::DecodeCacheDev> cache_;
  int64_t cache_bytes_ = 0;
  __nv_bfloat16 *x_, *h_, *qkv_, *q_, *o_, *xm_, *u_, *g_;
  float *rstd_, *prek_, *prev_, *hg_, *pre_, *logits_dev_, *ws_;
  int32_t *tokens_dev_, *ids_dev_;
  int64_t* pos_dev_;
  std::vector<float> logits_;
  bool logits_fresh_ = false;
  int steps_ = 0;
  cudaGraphExec_t graph_ = nullptr;
};

}  // namespace gfwa
#endif  // GFWA_WITH_CUDA
