// CUDA gate scan of GatedFWA (docs/gatedfwa.md sections 2 and 4): the per-token log forget gates and
// their inclusive prefix sum lam, which attention.h reads; CPU twin: gate_cpu.h. Kernels in gate.cu.
#pragma once
#include <cuda_runtime.h>

namespace gfwa::cuda {

// hg, pre: [B,T,H] fp32 gate pre-activations in rows of ld >= H floats (columns of a packed projection
// output; ld = H: dense); lam = inclusive prefix sum along T of logsigmoid(beta*hg)/(beta+1e-3),
// beta = 1 + ELU(pre), dense [B,T,H]. One pass, double accumulation.
void gate_forward(const float* hg, const float* pre, int ld, float* lam, int B, int T, int H, cudaStream_t stream);
// dlam -> dhg, dpre (overwritten; dlam, dhg, dpre dense [B,T,H], hg and pre in rows of ld): reverse inclusive
// scan and the chain rule of docs/gatedfwa.md section 4.
void gate_backward(const float* hg, const float* pre, int ld, const float* dlam, float* dhg, float* dpre, int B,
                   int T, int H, cudaStream_t stream);

}  // namespace gfwa::cuda
