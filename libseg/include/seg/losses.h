#pragma once
// The training loss: weighted cross-entropy, optionally plus soft Dice, with deep supervision.
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

namespace seg {

// The loss of a step: logits (B x C x h x w, any h x w) upsampled bilinearly to the
// labels' grid (B x H x W channel indices), cross-entropy weighted by class_weights, plus for
// loss == "ce+dice" the soft Dice loss pooled over the batch (nnU-Net's batch Dice).
at::Tensor training_loss(const at::Tensor& logits, const at::Tensor& labels, const at::Tensor& class_weights,
                         const std::string& loss);
// Deep supervision (nnU-Net's): the loss of each of a network's outputs (forward_supervised:
// full resolution first, then coarser), weighted 1, 1/2, 1/4, ... and normalised to sum to 1.
at::Tensor training_loss(const std::vector<at::Tensor>& outputs, const at::Tensor& labels,
                         const at::Tensor& class_weights, const std::string& loss);

}  // namespace seg
