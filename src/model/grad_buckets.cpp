#include "model/grad_buckets.h"

#include <stdexcept>
#include <string>


namespace gfwa {

std::vector<GradBucket> plan_grad_buckets(const std::vector<ParamTensor>& tensors, size_t cap_bytes, size_t elem_bytes) {
  if (cap_bytes == 0 || elem_bytes == 0) throw std::invalid_argument("plan_grad_buckets: zero cap or element size");
  size_t expect = 0;
  for (const auto& t : tensors) {
    if (t.offset != expect) throw std::invalid_argument("plan_grad_buckets: tensor '" + t.name + "' is not contiguous");
    expect += t.numel;
  }
  std::vector<GradBucket> out;
  const size_t cap = cap_bytes / elem_bytes > 0 ? cap_bytes / elem_bytes : 1;  // in elements
  for (int i = int(tensors.size()) - 1; i >= 0; --i) {
    const ParamTensor& t = tensors[size_t(i)];
    if (!out.empty() && out.back().end - out.back().begin + t.numel <= cap) {
      out.back().begin = t.offset;
      out.back().first_tensor = i;
    } else {
      out.push_back({t.offset, t.offset + t.numel, i, i});
    }
  }
  return out;
}

BucketReadiness::BucketReadiness(const std::vector<GradBucket>& buckets, size_t n_tensors)
    : bucket_of_(n_tensors, -1), pending_init_(buckets.size(), 0) {
  for (size_t b = 0; b < buckets.size(); ++b)
    for (int t = buckets[b].first_tensor; t <= buckets[b].last_tensor; ++t) {
      if (t < 0 || size_t(t) >= n_tensors || bucket_of_[size_t(t)] != -1)
        throw std::invalid_argument("BucketReadiness: buckets do not partition the tensors");
      bucket_of_[size_t(t)] = int(b);
      ++pending_init_[b];
    }
  for (int b : bucket_of_)
    if (b < 0) throw std::invalid_argument("BucketReadiness: a tensor is in no bucket");
  reset();
}

void BucketReadiness::reset() {
  pending_ = pending_init_;
  ready_.assign(bucket_of_.size(), false);
  next_ = 0;
}

std::vector<int> BucketReadiness::mark_ready(int t) {
  if (t < 0 || size_t(t) >= bucket_of_.size()) throw std::out_of_range("BucketReadiness: no tensor " + std::to_string(t));
  if (ready_[size_t(t)]) throw std::logic_error("BucketReadiness: tensor " + std::to_string(t) + " marked ready twice");
  ready_[size_t(t)] = true;
  --pending_[size_t(bucket_of_[size_t(t)])];
  std::vector<int> launch;
  while (next_ < int(pending_.size()) && pending_[size_t(next_)] == 0) launch.push_back(next_++);
  return launch;
}

}  // namespace gfwa
