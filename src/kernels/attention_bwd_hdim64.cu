// Backward attention, head dim 64.
#include "kernels/attention_bwd_kernel.cuh"

namespace gfwa::cuda::detail {
template void launch_attn_bwd<64>(const AttnBwdParams&, const AttnConsts&, cudaStream_t);
}  // namespace gfwa::cuda::detail
