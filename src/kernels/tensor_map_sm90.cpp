// TMA tensor maps for the sm_90a kernels (tensor_map_sm90.h). Host code: a .cpp of the kernels library
// (CUDA builds only), so the host compiler builds it instead of nvcc.
#ifdef GFWA_WITH_CUDA
#include <cudaTypedefs.h>

#include <mutex>
#include <stdexcept>
#include <string>

#include "kernels/cuda_check.h"
#include "kernels/tensor_map_sm90.h"

namespace gfwa::cuda::detail {
namespace {

PFN_cuTensorMapEncodeTiled_v12000 encoder() {
  static PFN_cuTensorMapEncodeTiled_v12000 fn = nullptr;
  static std::once_flag once;
  std::call_once(once, [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult found{};
    CUDA_CHECK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &found));
    if (found != cudaDriverEntryPointSuccess || f == nullptr)
      throw std::runtime_error("sm90 kernels: the CUDA driver has no cuTensorMapEncodeTiled (needs CUDA 12.0+)");
    fn = reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(f);
  });
  return fn;
}

CUtensorMap encode_matrix(const __nv_bfloat16* base, int64_t rows, int64_t cols, int box_rows, int box_cols,
                          CUtensorMapSwizzle swizzle, const char* what) {
  CUtensorMap map;
  const cuuint64_t dims[2] = {cuuint64_t(cols), cuuint64_t(rows)};
  const cuuint64_t strides[1] = {cuuint64_t(cols) * 2};
  const cuuint32_t box[2] = {cuuint32_t(box_cols), cuuint32_t(box_rows)};
  const cuuint32_t elem_strides[2] = {1, 1};
  const CUresult r = encoder()(&map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, const_cast<__nv_bfloat16*>(base), dims,
                               strides, box, elem_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, swizzle,
                               CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS)
    throw std::runtime_error(std::string(what) + ": cuTensorMapEncodeTiled failed with CUresult " +
                             std::to_string(int(r)) + " (rows " + std::to_string(rows) + ", cols " +
                             std::to_string(cols) + ", box rows " + std::to_string(box_rows) + ", box cols " +
                             std::to_string(box_cols) + ")");
  return map;
}

}  // namespace

CUtensorMap attn_tensor_map(const __nv_bfloat16* base, int64_t row_stride, int B, int T, int heads, int D, int rows) {
  CUtensorMap map;
  const cuuint64_t dims[4] = {cuuint64_t(D), cuuint64_t(heads), cuuint64_t(T), cuuint64_t(B)};
  const cuuint64_t strides[3] = {cuuint64_t(D) * 2, cuuint64_t(row_stride) * 2, cuuint64_t(row_stride) * 2 * T};
  const cuuint32_t box[4] = {64, 1, cuuint32_t(rows), 1};
  const cuuint32_t elem_strides[4] = {1, 1, 1, 1};
  const CUresult r = encoder()(&map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 4, const_cast<__nv_bfloat16*>(base), dims,
                               strides, box, elem_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                               CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS)
    throw std::runtime_error("attention sm90: cuTensorMapEncodeTiled failed with CUresult " + std::to_string(int(r)) +
                             " (B " + std::to_string(B) + ", T " + std::to_string(T) + ", heads " +
                             std::to_string(heads) + ", D " + std::to_string(D) + ", row stride " +
                             std::to_string(row_stride) + ")");
  return map;
}

CUtensorMap matrix_tensor_map(const __nv_bfloat16* base, int64_t rows, int64_t cols, int box_rows, const char* what) {
  return encode_matrix(base, rows, cols, box_rows, 64, CU_TENSOR_MAP_SWIZZLE_128B, what);
}

CUtensorMap matrix_tensor_map_plain(const __nv_bfloat16* base, int64_t rows, int64_t cols, int box_rows, int box_cols,
                                    const char* what) {
  return encode_matrix(base, rows, cols, box_rows, box_cols, CU_TENSOR_MAP_SWIZZLE_NONE, what);
}

}  // namespace gfwa::cuda::detail
#endif  // GFWA_WITH_CUDA
