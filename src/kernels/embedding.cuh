// Token embedding on the GPU (twin of embedding_cpu). Forward gathers bf16 rows; backward adds
// each position's gradient into the fp32 gradient of its token's row. The backward is
// deterministic without atomics: positions are grouped by token on the host (a counting sort of
// the B*T ids the host already holds), and one block owns each distinct token's row, summing its
// positions in increasing order.
#pragma once
#include <cstdint>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace gfwa::cuda {

// Positions grouped by token: token[u] owns positions pos[start[u] .. start[u+1]).
struct TokenIndex {
  std::vector<int32_t> token, start, pos;
};
// Throws std::out_of_range naming the position when an id is outside [0, vocab).
TokenIndex make_token_index(const int32_t* ids, int N, int vocab);

// x[n, :] = table[ids[n], :]
void embedding_forward(cudaStream_t s, const int32_t* ids, const __nv_bfloat16* table, __nv_bfloat16* x, int N, int d);
// dtable[token[u], :] += sum over its positions p of dx[p, :]   (device copies of a TokenIndex)
void embedding_backward(cudaStream_t s, const __nv_bfloat16* dx, const int32_t* token, const int32_t* start,
                        const int32_t* pos, int n_unique, float* dtable, int d);

}  // namespace gfwa::cuda
