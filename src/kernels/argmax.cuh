// Row arg max of bf16 logits on the GPU (twin of argmax_cpu.h): per-position accuracy in
// evaluation. Ties go to the lowest id.
#pragma once
#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace gfwa::cuda {

// logits [R, V] bf16 (row stride V); out[r] = the lowest j with logits[r, j] == max of the row.
void argmax_rows(cudaStream_t s, const __nv_bfloat16* logits, int R, int V, int32_t* out);

}  // namespace gfwa::cuda
