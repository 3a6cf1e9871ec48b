#pragma once
// Segmentation networks and the registry that makes them by name.
#include <torch/nn/module.h>

#include <functional>
#include <string>
#include <vector>

namespace seg {

// Every network maps B x in_channels x H x W to B x num_classes x h x w logits; h x w may be
// coarser than the input (the fully convolutional nets predict at 1/4): callers upsample.
class SegNetImpl : public torch::nn::Module {
 public:
  virtual at::Tensor forward(const at::Tensor& x) = 0;
  // For training: forward()'s logits first, then any auxiliary logits of coarser decoder
  // levels that deep supervision scores too (finest first). Inference uses forward() alone.
  virtual std::vector<at::Tensor> forward_supervised(const at::Tensor& x) { return {forward(x)}; }
};
using SegNet = std::shared_ptr<SegNetImpl>;

struct NetworkSpec {
  std::string architecture;  // a registry name: "fcn", "fcn-wide", "light-unet", ...
  int64_t in_channels = 1;
  int64_t num_classes = 6;
};

struct RegisteredNetwork {
  std::string name;
  std::string description;
  std::function<SegNet(const NetworkSpec&)> make;
};

// The registry, in the order --help lists it.
const std::vector<RegisteredNetwork>& network_registry();
// Throws seg::UsageError listing the known names when `spec.architecture` is unknown.
SegNet make_network(const NetworkSpec& spec);
std::vector<std::string> network_names();

int64_t count_trainable_parameters(const torch::nn::Module& module);
// Stores every 4-D weight in NHWC (channels-last) memory order, in place: the same values, the
// layout cuDNN's tensor-core convolutions prefer (seg-train --channels-last).
void use_channels_last(torch::nn::Module& module);
// One line per leaf module: name, type, parameter count; then the total.
std::string describe_network(const torch::nn::Module& module);

}  // namespace seg
