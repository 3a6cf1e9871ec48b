#pragma once
// Adam and AdamW as LibTorch's own, to the bit on the CPU, with each step done in a handful of
// multi-tensor (_foreach) operations over all parameters instead of about ten small kernels per
// parameter tensor: on a GPU, res-unet's 114 tensors otherwise cost some thousand kernel
// launches a step for the optimiser alone. Same state and serialisation as LibTorch's, so
// checkpoints load into either. amsgrad is not supported (seg-train never sets it).
#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>

namespace seg {

class MultiTensorAdam : public torch::optim::Adam {
 public:
  using torch::optim::Adam::Adam;
  torch::Tensor step(LossClosure closure = nullptr) override;
};

class MultiTensorAdamW : public torch::optim::AdamW {
 public:
  using torch::optim::AdamW::AdamW;
  torch::Tensor step(LossClosure closure = nullptr) override;
};

// Drops every parameter's gradient (PyTorch's zero_grad(set_to_none=True)): the next backward
// writes fresh ones instead of adding to zeroed tensors, one kernel per tensor fewer.
void clear_gradients(const std::vector<at::Tensor>& parameters);

}  // namespace seg
