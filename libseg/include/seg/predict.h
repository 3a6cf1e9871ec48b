#pragma once
// From raw pixels to label maps with a trained model.
#include <seg/model_file.h>

#include <ATen/core/Tensor.h>

namespace seg {

// Raw intensities (B x H x W or B x 1 x H x W, any numeric dtype) -> float B x 1 x H x W
// network input, normalised as the model says. Stays on the input's device.
at::Tensor normalize_images(const at::Tensor& raw, const Normalization& normalization);

// Resamples a float B x C x H x W batch to height x width: area averaging when shrinking
// both ways, bilinear otherwise (align_corners = false, as in training).
at::Tensor resize_batch(const at::Tensor& images, int64_t height, int64_t width);

// Network logits brought to height x width (bilinear, align_corners = false): how training
// scores a coarse prediction against full-size labels, and how inference returns to an
// image's own grid.
at::Tensor upsample_logits(const at::Tensor& logits, int64_t height, int64_t width);

// Argmax over channels, mapped to the class values of `classes` (channel k -> entries[k]),
// as kByte B x H x W.
at::Tensor logits_to_labels(const at::Tensor& logits, const ClassTable& classes);

// Segments a batch of raw images that share one size H x W: normalise, resample to the
// model's input size, run the network without autograd, bring the logits back to H x W.
// Returns the logits (float B x C x H x W on `device`); use logits_to_labels or softmax.
at::Tensor predict_logits(const Model& model, const at::Tensor& raw_images, const at::Device& device);

// "auto" -> CUDA when available else CPU; "cpu"; "cuda" or "cuda:N" (seg::UsageError when
// CUDA is asked for and absent).
at::Device parse_device(const std::string& name);

}  // namespace seg
