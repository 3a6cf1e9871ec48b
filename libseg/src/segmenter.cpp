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

std::vector<FilmPrediction> Segmenter::predict(const std::vector<at::Tensor>& films) const {
  return predict_films(models_, films, device_, options_.predict);
}

Segmentation Segmenter::finish(const FilmPrediction& prediction) const {
  const Model& model = models_.front();
  const int64_t width = prediction.width();
  const NextLikeliest next_likeliest = [&](int64_t, int64_t pixel, int dropped) {
    return prediction.likeliest_channel_except(pixel / width, pixel % width, dropped);
  };
  Segmentation result;
  const auto labels = postprocess(prediction.labels().unsqueeze(0), options_.postprocessing, model.info.classes,
                                  next_likeliest);
  const bool restore = (options_.whole || options_.masks) && !model.info.overlaps.empty();
  const at::Tensor restored = restore ? restore_covered(labels, model.info.overlaps) : labels;
  if (options_.masks) {
    result.restored = restored;
    result.as_predicted = labels;
  }
  result.labels = options_.whole ? restored : labels;
  if (options_.probabilities) result.probabilities = prediction.probabilities().unsqueeze(0);
  result.reframed = prediction.reframed() ? 1 : 0;
  return result;
}

Segmentation Segmenter::segment(const at::Tensor& raw_images) const {
  const auto predictions = predict(raw_images.cpu().unbind(0));
  std::vector<Segmentation> films;
  for (const auto& prediction : predictions) films.push_back(finish(prediction));
  Segmentation result;
  auto stacked = [&](at::Tensor Segmentation::*part) {
    std::vector<at::Tensor> parts;
    for (const auto& film : films)
      if ((film.*part).defined()) parts.push_back(film.*part);
    return parts.empty() ? at::Tensor() : torch::cat(parts);
  };
  result.labels = stacked(&Segmentation::labels);
  result.probabilities = stacked(&Segmentation::probabilities);
  result.restored = stacked(&Segmentation::restored);
  result.as_predicted = stacked(&Segmentation::as_predicted);
  for (const auto& film : films) result.reframed += film.reframed;
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
