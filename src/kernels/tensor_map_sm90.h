// TMA tensor maps (CUtensorMap) for the sm_90a kernels (attention, the GEMMs with SwiGLU). Host side; the driver's
// encoder is reached through the runtime (cudaGetDriverEntryPointByVersion), so nothing links libcuda.
#pragma once
#include <cuda.h>
#include <cuda_bf16.h>

#include <cstdint>

namespace gfwa::cuda::detail {

// Map of a [B, T, heads, D] bf16 tensor laid out as attention.h says (element (b, t, h, d) at
// base + (b*T + t) * row_stride + h*D + d), as a 4-d tensor (d, h, t, b). One load is a box of `rows` consecutive t
// by 64 columns of one head, 128-byte swizzled (the layout of wgmma_sm90.cuh); rows at t >= T read as zero.
// Throws naming the call and the driver's error code when the driver refuses the map.
CUtensorMap attn_tensor_map(const __nv_bfloat16* base, int64_t row_stride, int B, int T, int heads, int D, int rows);

// Map of a row-major [rows, cols] bf16 matrix (cols % 8 == 0: 16-byte row pitch) as a 2-d tensor (col, row). One
// load is a box of `box_rows` consecutive rows by 64 columns, 128-byte swizzled; rows past `rows` read as zero.
// Throws like attn_tensor_map; `what` names the matrix in the message.
CUtensorMap matrix_tensor_map(const __nv_bfloat16* base, int64_t rows, int64_t cols, int box_rows, const char* what);

// The same matrix, unswizzled: one load is a box of `box_rows` rows by `box_cols` columns (box_cols % 8 == 0, both
// <= 256) stored row after row, box_cols * 2 bytes a row; rows past `rows` read as zero.
CUtensorMap matrix_tensor_map_plain(const __nv_bfloat16* base, int64_t rows, int64_t cols, int box_rows, int box_cols,
                                    const char* what);

}  // namespace gfwa::cuda::detail
