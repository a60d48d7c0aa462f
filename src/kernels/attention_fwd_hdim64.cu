// Forward attention, head dim 64.
#include "kernels/attention_fwd_kernel.cuh"

namespace gfwa::cuda::detail {
template void launch_attn_fwd<64>(const AttnParams&, const AttnConsts&, cudaStream_t);
}  // namespace gfwa::cuda::detail
