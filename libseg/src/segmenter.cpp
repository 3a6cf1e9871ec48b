#include <seg/error.h>
#include <seg/postprocess.h>
#include <seg/segmenter.h>

#include <torch/torch.h>

#include <algorithm>

namespace seg {

std::vector<std::string> clean_up_steps(const std::vector<Model>& models, bool use_recommended,
                                        const std::vector<std::string>& asked) {
  std::vector<std::string> steps;
  for (const auto& step : postprocessing_steps()) {
    const bool recommended = use_recommended && !models.empty() && std::all_of(models.begin(), models.end(), [&](const Model& m) {
      return std::find(m.info.postprocessing.begin(), m.info.postprocessing.end(), step) != m.info.postprocessing.end();
    });
    if (recommended || std::find(asked.begin(), asked.end(), step) != asked.end()) steps.push_back(step);
  }
  return steps;
}

Segmenter::Segmenter(std::vector<Model> models, SegmenterOptions options, const at::Device& device,
                     const std::string& source)
    : models_(std::move(models)), options_(std::move(options)), device_(device) {
  if (models_.empty()) throw UsageError("no model to segment with");
  for (auto& model : models_) {
    if (model.info.classes.entries != models_.front().info.classes.entries)
      throw Error(source, "the models have different classes; an ensemble needs models trained on the same class table");
    model.net->to(device_);
    model.net->eval();
  }
  check_postprocessing_steps(options_.postprocessing, source);
  if (options_.whole && models_.front().info.overlaps.empty())
    throw Error(source, "does not record which structures its training labels drew over others, so they cannot be "
                        "made whole; add them with seg-convert MODEL -o OUT.pth --overlap UNDER:OVER");
  if (options_.predict.reframe && !models_.front().info.framing) options_.predict.reframe = false;
}

Segmentation Segmenter::segment(const at::Tensor& raw_images) const {
  torch::NoGradGuard no_grad;
  const Model& model = models_.front();
  const bool clean_up_uses_probabilities =
      std::find(options_.postprocessing.begin(), options_.postprocessing.end(), "largest-component") !=
      options_.postprocessing.end();
  const bool wants_probabilities = options_.probabilities || clean_up_uses_probabilities;
  Segmentation result;
  at::Tensor labels, probabilities;
  if (models_.size() == 1 && !options_.predict.tta && !options_.predict.reframe) {
    // One model: labels from its logits directly.
    const auto logits = predict_logits(model, raw_images, device_, options_.predict);
    labels = logits_to_labels(logits, model.info.classes);
    if (wants_probabilities) probabilities = torch::softmax(logits, 1);
  } else {
    probabilities = predict_probabilities(models_, raw_images, device_, options_.predict, &result.reframed);
    labels = logits_to_labels(probabilities, model.info.classes);
  }
  labels = labels.cpu();
  if (probabilities.defined()) probabilities = probabilities.cpu();
  labels = postprocess(labels, options_.postprocessing, model.info.classes, probabilities);
  const bool restore = (options_.whole || options_.masks) && !model.info.overlaps.empty();
  const at::Tensor restored = restore ? restore_covered(labels, model.info.overlaps) : labels;
  if (options_.masks) {
    result.restored = restored;
    result.as_predicted = labels;
  }
  result.labels = options_.whole ? restored : labels;
  if (options_.probabilities) result.probabilities = probabilities;
  return result;
}

std::vector<std::pair<std::string, at::Tensor>> Segmenter::structure_masks(const Segmentation& result,
                                                                           int64_t index) const {
  if (!result.restored.defined()) throw UsageError("structure masks need SegmenterOptions::masks");
  const auto& info = models_.front().info;
  std::vector<std::pair<std::string, at::Tensor>> masks;
  for (const auto& [name, value] : info.classes.entries) {
    if (value == 0) continue;
    const bool drawn_over = std::any_of(info.overlaps.begin(), info.overlaps.end(),
                                        [value = value](const Overlap& o) { return o.under == value; });
    masks.emplace_back(name, (drawn_over ? result.restored : result.as_predicted)[index] == value);
  }
  return masks;
}

}  // namespace seg
