// Every parameter tensor of the decoder at a fixed offset in one flat buffer. Both backends, the
// optimizer and checkpoints use this one layout, so a checkpoint moves between backends unchanged.
// Weights are [out, in] row-major (y = x W^T), as in PyTorch.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "model/model_config.h"

namespace gfwa {

struct ParamTensor {
  std::string name;              // e.g. "layers.3.attn.wq"
  std::vector<int> shape;
  size_t offset = 0;             // in elements, into the flat buffer
  size_t numel = 0;
  bool decay = false;            // weight decay applies (2-D weights only)
  bool hidden = false;           // a hidden weight matrix (attention and MLP projections): Muon's
                                 // under optimizer.type muon; the embedding and gates (GatedFWA's and
                                 // NSA's) are not
};

class ParamLayout {
 public:
  explicit ParamLayout(const ModelConfig& cfg);
  const std::vector<ParamTensor>& tensors() const { return tensors_; }
  const ParamTensor& get(const std::string& name) const;  // throws std::out_of_range naming the tensor
  size_t total() const { return total_; }

 private:
  void add(const std::string& name, std::vector<int> shape, bool hidden = false);
  std::vector<ParamTensor> tensors_;
  size_t total_ = 0;
};

}  // namespace gfwa
