// Gradient buckets for the overlapped all-reduce. Backward finishes gradients in reverse layout
// order (final_norm and the last layer first, the embedding last: the tied classifier and the
// input lookup both add to it), so buckets are cut walking the layout backwards. Each bucket is a
// contiguous range of whole tensors; the partition depends only on the layout and the cap, so
// every rank launches the same collectives in the same order.
#pragma once
#include <cstddef>
#include <vector>

#include "model/param_layout.h"

namespace gfwa {

struct GradBucket {
  size_t begin = 0, end = 0;              // elements [begin, end) of the flat gradient buffer
  int first_tensor = 0, last_tensor = 0;  // layout indices, inclusive
};

// Buckets in launch order. A bucket holds at most cap_bytes unless it is a single larger tensor.
// Tensors must tile [0, total) in layout order, as ParamLayout's do.
std::vector<GradBucket> plan_grad_buckets(const std::vector<ParamTensor>& tensors, size_t cap_bytes, size_t elem_bytes);

// During one backward pass: which buckets hold only final gradients. Buckets are released strictly
// in launch order, even if a later one completes first, so the collective order never varies.
class BucketReadiness {
 public:
  BucketReadiness(const std::vector<GradBucket>& buckets, size_t n_tensors);
  void reset();  // before each backward pass whose gradients are reduced
  // Marks tensor `t`'s gradient final; returns the buckets to launch now, in order (maybe none).
  std::vector<int> mark_ready(int t);
  bool all_released() const { return next_ == int(pending_init_.size()); }

 private:
  std::vector<int> bucket_of_;
  std::vector<int> pending_init_, pending_;
  std::vector<bool> ready_;
  int next_ = 0;
};

}  // namespace gfwa
