#include <seg/metrics.h>
#include <seg/postprocess.h>
#include <seg/predict.h>
#include <seg/validation.h>

#include "training_parts.h"

#include <torch/torch.h>

namespace seg {
namespace {
constexpr const char* kHeldOutOfSplit = " cases held out of split ";  // in ValidationCases::source

// holdout cases of `split`: the k-th, 2k-th, ... of them as listed, k = size / holdout.
ValidationCases held_out(const Dataset& data, const std::string& split, int64_t holdout) {
  const auto& cases = data.splits.at(split);
  const auto n = static_cast<int64_t>(cases.size());
  if (holdout > n / 2)
    throw Error(data.source, "split \"" + split + "\" has " + std::to_string(n) + " cases, too few to hold " +
                                 std::to_string(holdout) + " out for validation and train on the rest; hold out at most " +
                                 std::to_string(n / 2) + " or validate on another split");
  const int64_t k = n / holdout;
  ValidationCases chosen;
  for (int64_t i = 0; i < n; ++i) {
    const bool held = (i + 1) % k == 0 && (i + 1) / k <= holdout;
    (held ? chosen.val : chosen.train).push_back(cases[static_cast<size_t>(i)]);
  }
  chosen.source = std::to_string(holdout) + kHeldOutOfSplit + split + ", every " + std::to_string(k) +
                  (k == 2 ? "nd" : k == 3 ? "rd" : "th") + " as listed";
  return chosen;
}
}  // namespace

ValidationCases choose_validation_cases(const Dataset& data, const Recipe& recipe) {
  const ValidationRule& rule = recipe.validation;
  const std::string& train = recipe.train_split;
  if (!data.splits.count(train)) data.split_indices(train);  // throws, naming the splits there are
  ValidationCases none{data.splits.at(train), {}, "none", ""};
  if (rule.every == 0) return none;
  if (rule.split.empty()) return rule.holdout > 0 ? held_out(data, train, rule.holdout) : none;
  if (data.splits.count(rule.split)) {
    if (data.splits.at(rule.split).empty()) throw Error(data.source, "split \"" + rule.split + "\" lists no cases to validate on");
    return {data.splits.at(train), data.splits.at(rule.split), "split " + rule.split, ""};
  }
  std::vector<std::string> others;
  for (const auto& [name, cases] : data.splits)
    if (name != train && !cases.empty()) others.push_back(name);
  const std::string missing = "the recipe validates on split \"" + rule.split + "\", which the data lacks: ";
  if (others.size() == 1) {
    ValidationCases chosen{data.splits.at(train), data.splits.at(others[0]), "split " + others[0], ""};
    chosen.note = missing + "validating on its split \"" + others[0] + "\"";
    return chosen;
  }
  if (others.empty()) {
    const int64_t wanted = rule.holdout > 0 ? rule.holdout : ValidationRule{}.holdout;
    const int64_t holdout = std::min<int64_t>(wanted, static_cast<int64_t>(data.splits.at(train).size()) / 2);
    if (holdout < 1) {
      none.note = missing + "no validation";
      return none;
    }
    ValidationCases chosen = held_out(data, train, holdout);
    chosen.note = missing + "validating on " + chosen.source;
    return chosen;
  }
  std::string list;
  for (const auto& o : others) list += (list.empty() ? "" : ", ") + o;
  throw Error(data.source, "has no split \"" + rule.split + "\" to validate on but several others (" + list +
                               "); name one as the recipe's validation split");
}

at::Tensor labels_to_channels(const at::Tensor& labels, const ClassTable& classes) {
  std::vector<int64_t> lut(256, 0);
  for (size_t k = 0; k < classes.entries.size(); ++k) lut[static_cast<size_t>(classes.entries[k].second)] = static_cast<int64_t>(k);
  return torch::tensor(lut, torch::kLong).index_select(0, labels.to(torch::kLong).flatten()).view(labels.sizes());
}

DeviceData to_device(const Dataset& part, const Normalization& norm, const ClassTable& classes, const at::Device& device) {
  DeviceData d;
  d.images = normalize_images(part.images, norm).to(device);
  d.labels = labels_to_channels(part.labels, classes).to(device);
  return d;
}

Validation validate(SegNetImpl& net, const DeviceData& val, const ClassTable& classes, Communicator* comm,
                    bool score_postprocessing) {
  torch::NoGradGuard no_grad;
  net.eval();
  const int64_t num_classes = classes.size();
  const int64_t n = val.images.size(0), chunk = 16;
  const auto own = comm ? torch::arange(comm->rank(), n, comm->size(), torch::TensorOptions().dtype(torch::kLong).device(val.images.device()))
                        : at::Tensor();
  const auto images = comm ? val.images.index_select(0, own) : val.images;
  const auto labels = comm ? val.labels.index_select(0, own) : val.labels;
  const auto& candidates = postprocessing_candidates();
  const int64_t rows = score_postprocessing ? static_cast<int64_t>(candidates.size()) : 1;
  // Row 0: plain argmax; row k: candidate k (row 0 again for the empty candidate).
  at::Tensor sums = torch::zeros({rows, num_classes - 1}, torch::TensorOptions().dtype(torch::kFloat).device(val.images.device()));
  for (int64_t start = 0; start < images.size(0); start += chunk) {
    const int64_t len = std::min(chunk, images.size(0) - start);
    auto x = images.narrow(0, start, len);
    auto y = labels.narrow(0, start, len);
    auto logits = upsample_logits(net.forward(x), y.size(1), y.size(2));
    sums[0] += dice_per_case(logits.argmax(1), y, num_classes).sum(0);
    if (!score_postprocessing) continue;
    const auto probabilities = torch::softmax(logits, 1).cpu();
    const auto plain = logits_to_labels(logits, classes).cpu();
    const auto truth = y.cpu();
    for (size_t k = 1; k < candidates.size(); ++k) {
      const auto cleaned = labels_to_channels(postprocess(plain, candidates[k], classes, probabilities), classes);
      sums[static_cast<int64_t>(k)] += dice_per_case(cleaned, truth, num_classes).sum(0).to(sums.device());
    }
  }
  if (comm) comm->all_reduce_sum(sums);
  net.train();
  const auto mean = (sums / static_cast<double>(n)).to(torch::kCPU, torch::kDouble).contiguous();
  Validation result;
  result.dice.assign(mean.data_ptr<double>(), mean.data_ptr<double>() + (num_classes - 1));
  if (score_postprocessing)
    for (int64_t k = 0; k < rows; ++k) result.candidate_mean_dice.push_back(mean[k].mean().item<double>());
  return result;
}

size_t best_postprocessing(const std::vector<double>& candidate_mean_dice) {
  size_t best = 0;
  for (size_t k = 1; k < candidate_mean_dice.size(); ++k)
    if (candidate_mean_dice[k] > candidate_mean_dice[best]) best = k;
  return best;
}

bool held_out_of_training(const std::string& source) { return source.find(kHeldOutOfSplit) != std::string::npos; }

}  // namespace seg
