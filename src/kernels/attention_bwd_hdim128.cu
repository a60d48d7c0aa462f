// Backward attention, head dim 128.
#include "kernels/attention_bwd_kernel.cuh"

namespace gfwa::cuda::detail {
template void launch_attn_bwd<128>(const AttnBwdParams&, const AttnConsts&, cudaStream_t);
}  // namespace gfwa::cuda::detail
