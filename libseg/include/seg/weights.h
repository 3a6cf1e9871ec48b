#pragma once
// Class weights for the cross-entropy loss, from label frequencies.
#include <ATen/core/Tensor.h>

#include <string>

namespace seg {

enum class WeightMode { power, inverse, none };
WeightMode parse_weight_mode(const std::string& name);  // "power" | "inverse" | "none"

// Pixel counts of each label 0..num_classes-1 over `labels` (any shape, integer), as int64.
at::Tensor label_counts(const at::Tensor& labels, int64_t num_classes);

// The largest p: past it the weights of rare and common labels part by more than float32 holds.
inline constexpr double kMaxWeightPower = 10;

// power: count^-p / mean(count^-p) (the notebook: p = 0.35; 0 < p <= kMaxWeightPower);
// inverse: the same with p = 1; none: all ones. Labels with count 0 get weight 0 before the
// division by the mean (their term would be infinite). Returns float, num_classes values.
at::Tensor class_weights(const at::Tensor& counts, WeightMode mode = WeightMode::power,
                         double power = 0.35);

}  // namespace seg
