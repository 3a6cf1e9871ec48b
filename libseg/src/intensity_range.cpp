#include <seg/intensity_range.h>
#include <seg/report_text.h>
#include <seg/model_file.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <sstream>

namespace seg {

namespace {

// Every k-th pixel, k chosen so that at most `limit` remain, as float64.
at::Tensor strided_sample(const at::Tensor& pixels, int64_t limit) {
  const auto flat = pixels.reshape({-1});
  const int64_t stride = std::max<int64_t>(1, (flat.numel() + limit - 1) / limit);
  return flat.slice(0, 0, flat.numel(), stride).to(at::kDouble);
}

// The q-quantile (0..1) of `values` by nearest rank.
double nearest_rank_quantile(const at::Tensor& values, double q) {
  const int64_t n = values.numel();
  const int64_t k = std::clamp<int64_t>(static_cast<int64_t>(std::floor(q * static_cast<double>(n - 1))) + 1, 1, n);
  return std::get<0>(values.kthvalue(k)).item<double>();
}

}  // namespace

IntensityRange training_intensity_range(const at::Tensor& images) {
  const auto sample = strided_sample(images, int64_t{1} << 20);
  if (sample.numel() == 0) return {};
  return {nearest_rank_quantile(sample, 0.005), nearest_rank_quantile(sample, 0.995)};
}

std::string intensity_mismatch(const at::Tensor& film, const std::string& film_name, const IntensityRange& trained) {
  const double span = trained.high - trained.low;
  if (!(span > 0) || film.numel() == 0) return "";
  const double film_high = nearest_rank_quantile(strided_sample(film, 4096), 0.995);
  if (film_high >= trained.low + span / 4 && film_high <= trained.low + 4 * span) return "";
  return film_name + "'s intensities (" + number_text(film.min().item<double>()) + ".." +
         number_text(film.max().item<double>()) + ") lie far outside those the model was trained on (" +
         number_text(trained.low) + ".." + number_text(trained.high) +
         "); it normalises by its training set's statistics, so expect poor masks: convert the film to the training "
         "data's bit depth, or use a model trained with per-image normalisation";
}

TrainingIntensityCheck::TrainingIntensityCheck(const std::vector<Model>& models) {
  for (const auto& model : models)
    if (model.info.normalization.mode == "dataset" && model.info.training_intensity)
      ranges_.push_back(*model.info.training_intensity);
}

std::string TrainingIntensityCheck::film(const at::Tensor& pixels, const std::string& film_name) const {
  for (const auto& range : ranges_)
    if (auto warning = intensity_mismatch(pixels, film_name, range); !warning.empty()) return warning;
  return "";
}

}  // namespace seg
