#include <seg/error.h>
#include <seg/weights.h>

#include <torch/torch.h>

namespace seg {

WeightMode parse_weight_mode(const std::string& name) {
  if (name == "power") return WeightMode::power;
  if (name == "inverse") return WeightMode::inverse;
  if (name == "none") return WeightMode::none;
  throw UsageError("unknown weight mode \"" + name + "\" (use power, inverse or none)");
}

at::Tensor label_counts(const at::Tensor& labels, int64_t num_classes) {
  if (num_classes < 1) throw Error("label_counts", "num_classes must be at least 1");
  if (!labels.defined()) throw Error("label_counts", "no label maps (undefined tensor)");
  if (at::isFloatingType(labels.scalar_type()))
    throw Error("label_counts", "label maps must be integer tensors");
  auto flat = labels.reshape({-1}).to(at::kLong);
  if (flat.numel() == 0) return at::zeros({num_classes}, flat.options());
  const int64_t low = flat.min().item<int64_t>(), high = flat.max().item<int64_t>();
  if (low < 0 || high >= num_classes)
    throw Error("label_counts", "label value " + std::to_string(low < 0 ? low : high) +
                                    " is outside 0.." + std::to_string(num_classes - 1));
  return at::bincount(flat, {}, num_classes);
}

at::Tensor class_weights(const at::Tensor& counts, WeightMode mode, double power) {
  if (counts.dim() != 1 || counts.numel() == 0)
    throw Error("class_weights", "counts must be a non-empty vector");
  auto opts = counts.options().dtype(at::kFloat);
  if (mode == WeightMode::none) return at::ones({counts.numel()}, opts);
  if (mode == WeightMode::inverse) power = 1.0;
  if (!(power > 0 && power <= kMaxWeightPower))
    throw Error("class_weights", "the power must be more than 0 and at most " + std::to_string(static_cast<int>(kMaxWeightPower)));
  // Double precision for counts in the millions; an absent label would weigh infinity.
  auto c = counts.to(at::kDouble);
  auto present = c.gt(0);
  auto w = at::where(present, c.clamp_min(1).pow(-power), at::zeros_like(c));
  const double mean = w.mean().item<double>();
  if (!(mean > 0)) throw Error("class_weights", "every label count is zero: nothing to weigh");
  return (w / mean).to(at::kFloat);
}

}  // namespace seg
