#include <seg/losses.h>
#include <seg/predict.h>

#include <torch/torch.h>

namespace seg {
namespace F = torch::nn::functional;

namespace {
// 1 - mean over the classes of the soft Dice, pooled over the batch (nnU-Net's batch Dice).
at::Tensor soft_dice_loss(const at::Tensor& logits, const at::Tensor& labels) {
  const auto probs = torch::softmax(logits, 1);
  const auto onehot = F::one_hot(labels, logits.size(1)).permute({0, 3, 1, 2}).to(probs.scalar_type());
  const std::vector<int64_t> dims{0, 2, 3};
  const auto intersection = (probs * onehot).sum(dims);
  const auto total = probs.sum(dims) + onehot.sum(dims);
  return 1 - ((2 * intersection + 1e-5) / (total + 1e-5)).mean();
}
}  // namespace

at::Tensor training_loss(const at::Tensor& logits, const at::Tensor& labels, const at::Tensor& class_weights,
                         const std::string& loss) {
  const auto full = upsample_logits(logits, labels.size(1), labels.size(2));
  auto value = F::cross_entropy(full, labels, F::CrossEntropyFuncOptions().weight(class_weights));
  if (loss == "ce+dice") value = value + soft_dice_loss(full, labels);
  return value;
}

at::Tensor training_loss(const std::vector<at::Tensor>& outputs, const at::Tensor& labels,
                         const at::Tensor& class_weights, const std::string& loss) {
  at::Tensor total;
  double weight = 1.0, weight_sum = 0.0;
  for (const auto& logits : outputs) {
    const auto term = weight * training_loss(logits, labels, class_weights, loss);
    total = total.defined() ? total + term : term;
    weight_sum += weight;
    weight /= 2;
  }
  return total / weight_sum;
}

}  // namespace seg
