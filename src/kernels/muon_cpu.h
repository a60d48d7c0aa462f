// CPU reference of Muon (the fp32 twin of muon.cuh): the momentum step, the Newton-Schulz
// orthogonalisation of one weight matrix and the update that applies it; muon_step.h holds the
// contract and the constants. The three are separate so that a ZeRO-1 rank can run the momentum
// on its shard, the orthogonalisation on whole matrices and the update on its part of each.
#pragma once
#include <cstddef>

#include "kernels/muon_step.h"

namespace gfwa::cpu {

// Over n elements: g = grad * grad_scale;  buf = momentum * buf + g;
// u = nesterov ? g + momentum * buf : buf. buf is updated and u written; u may be grad itself.
template <class F>
void muon_momentum(const F* grad, F* buf, F* u, size_t n, const MuonStep& h);

// out = the Newton-Schulz orthogonalisation (muon_step.h) of the row-major rows x cols matrix g,
// `steps` iterations in F arithmetic through matmul_cpu (fp32 for the cpu backend). A tall matrix
// is iterated as its transpose, so that A = X X^T is the smaller Gram matrix. out may not alias g.
template <class F>
void newton_schulz(const F* g, F* out, int rows, int cols, int steps);

// p = p - lr * weight_decay * p - lr * muon_shape_scale(rows, cols) * o over n elements of one
// rows x cols matrix (all of it, or a ZeRO-1 shard's part); element math in double.
template <class F>
void muon_apply(F* p, const F* o, size_t n, const MuonStep& h, int rows, int cols);

}  // namespace gfwa::cpu
