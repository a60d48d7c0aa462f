// Backward attention for sm_90a, head dim 128.
#include "kernels/attention_bwd_sm90_kernel.cuh"

namespace gfwa::cuda::detail {
template void launch_attn_bwd_sm90<128>(const AttnBwdParams&, const AttnConsts&, cudaStream_t);
}  // namespace gfwa::cuda::detail
