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

// Adam's or AdamW's step worked out entirely on the parameters' device, the learning rate and
// the step count held there in tensors: the step a CUDA graph can capture and replay (the
// optimisers above compute the bias correction on the host, which a graph would freeze at its
// capture). It steps an optimiser's parameters with that optimiser's own state (exp_avg,
// exp_avg_sq; created as it would), so checkpoints save and load as before once
// sync_step_count has copied the count back. One parameter group; every parameter must have
// a gradient at each step. Equal to MultiTensorAdam(W) to float rounding.
class DeviceStepAdam {
 public:
  // decoupled: AdamW's weight decay (the optimiser must be a torch::optim::AdamW), else Adam's.
  DeviceStepAdam(torch::optim::Optimizer& optimizer, bool decoupled);
  void set_lr(double lr);  // the optimiser's too; queued on the device: no host-device sync
  void step();
  void sync_step_count();  // the optimiser's per-parameter step = the device count (one read)

 private:
  torch::optim::Optimizer& optimizer_;
  bool decoupled_;
  double beta1_, beta2_, eps_, decay_;
  std::vector<at::Tensor> params_, exp_avgs_, exp_avg_sqs_;
  at::Tensor lr_, step_;  // 0-dim, double, on the parameters' device
};

// Drops every parameter's gradient (PyTorch's zero_grad(set_to_none=True)): the next backward
// writes fresh ones instead of adding to zeroed tensors, one kernel per tensor fewer.
void clear_gradients(const std::vector<at::Tensor>& parameters);

}  // namespace seg
