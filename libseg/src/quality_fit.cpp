// Fitting the quality estimator: films made to fail in memory, scored, and ridge regressions
// from their features to their Dice.
#include <seg/augment.h>
#include <seg/augment_pipeline.h>
#include <seg/error.h>
#include <seg/film_prediction.h>
#include <seg/metrics.h>
#include <seg/quality.h>
#include <seg/segmenter.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <map>

namespace seg {
namespace {

constexpr int kFolds = 5;
constexpr double kRangeMargin = 0.10;  // the accepted range: the fitting range widened by this much of it each side

// A variant of the fitting films: augmentation strengths (every other augmentation off).
struct FittingVariant {
  const char* name;
  std::map<std::string, double> strengths;
};
const std::vector<FittingVariant>& fitting_variants() {
  static const std::vector<FittingVariant> variants{
      {"as-is", {}},
      {"exposure", {{"intensity", 0.6}, {"processing", 2.0}, {"invert", 0.2}}},
      {"texture", {{"texture", 2.5}}},
      {"opacity", {{"opacity", 3.0}, {"devices", 1.0}}},
      {"framing", {{"scale", 0.08}, {"zoom", 1.5}, {"rotation", 25.0}}},
      {"everything",
       {{"scale", 0.05}, {"zoom", 1.0}, {"rotation", 15.0}, {"opacity", 2.0}, {"devices", 1.0}, {"intensity", 0.4},
        {"processing", 1.5}, {"texture", 1.5}}},
  };
  return variants;
}

AugmentOptions options_of(const FittingVariant& variant) {
  AugmentOptions options;
  for (const auto& a : augmentations()) options.strengths[a.name] = 0.0;
  for (const auto& [name, strength] : variant.strengths) options.strengths[name] = strength;
  return options;
}

// Raw films (B x H x W) as the pipeline sees them in training (each film standardised), augmented,
// and brought back to the films' own scale and range.
std::pair<at::Tensor, at::Tensor> augmented(const AugmentPipeline& pipeline, const at::Tensor& images,
                                            const at::Tensor& labels, at::Generator& gen) {
  const auto raw = images.to(at::kFloat).unsqueeze(1);
  if (pipeline.empty()) return {raw.squeeze(1), labels};
  const auto mean = raw.mean({1, 2, 3}, true), sd = raw.std({1, 2, 3}, true, true).clamp_min(1e-6);
  const auto draws = pipeline.draw({raw.size(0), raw.size(2), raw.size(3)}, gen);
  auto [z, warped] = pipeline.apply((raw - mean) / sd, labels.to(at::kLong), draws);
  auto back = z * sd + mean;
  const double low = images.scalar_type() == at::kByte ? 0.0 : images.min().item<double>();
  const double high = images.scalar_type() == at::kByte ? 255.0 : images.max().item<double>();
  return {back.clamp(low, high).squeeze(1), warped.to(at::kByte)};
}

// Solves the symmetric positive definite system a x = b (n x n, row-major) by Cholesky.
std::vector<double> solve_spd(std::vector<double> a, std::vector<double> b, size_t n) {
  for (size_t j = 0; j < n; ++j) {
    double d = a[j * n + j];
    for (size_t k = 0; k < j; ++k) d -= a[j * n + k] * a[j * n + k];
    if (!(d > 0)) throw Error("fit_quality", "the regression's system is singular");
    a[j * n + j] = std::sqrt(d);
    for (size_t i = j + 1; i < n; ++i) {
      double s = a[i * n + j];
      for (size_t k = 0; k < j; ++k) s -= a[i * n + k] * a[j * n + k];
      a[i * n + j] = s / a[j * n + j];
    }
  }
  for (size_t i = 0; i < n; ++i) {
    for (size_t k = 0; k < i; ++k) b[i] -= a[i * n + k] * b[k];
    b[i] /= a[i * n + i];
  }
  for (size_t i = n; i-- > 0;) {
    for (size_t k = i + 1; k < n; ++k) b[i] -= a[k * n + i] * b[k];
    b[i] /= a[i * n + i];
  }
  return b;
}

// Ridge regression of column `target` of y on the standardised rows `rows` of z: intercept
// (unpenalised: the mean), then the weights.
std::vector<double> ridge(const std::vector<std::vector<double>>& z, const std::vector<std::vector<double>>& y,
                          size_t target, const std::vector<size_t>& rows, double penalty) {
  const size_t p = z.front().size();
  std::vector<double> mean_z(p, 0.0);
  double mean_y = 0.0;
  for (size_t r : rows) {
    for (size_t k = 0; k < p; ++k) mean_z[k] += z[r][k];
    mean_y += y[r][target];
  }
  for (auto& m : mean_z) m /= static_cast<double>(rows.size());
  mean_y /= static_cast<double>(rows.size());
  std::vector<double> a(p * p, 0.0), b(p, 0.0);
  for (size_t r : rows)
    for (size_t i = 0; i < p; ++i) {
      const double zi = z[r][i] - mean_z[i];
      b[i] += zi * (y[r][target] - mean_y);
      for (size_t k = 0; k < p; ++k) a[i * p + k] += zi * (z[r][k] - mean_z[k]);
    }
  for (size_t i = 0; i < p; ++i) a[i * p + i] += penalty;
  const auto w = solve_spd(a, b, p);
  std::vector<double> coefficients{mean_y};
  for (size_t k = 0; k < p; ++k) coefficients[0] -= w[k] * mean_z[k];
  coefficients.insert(coefficients.end(), w.begin(), w.end());
  return coefficients;
}

double predicted(const std::vector<double>& w, const std::vector<double>& z) {
  double y = w[0];
  for (size_t k = 0; k < z.size(); ++k) y += w[k + 1] * z[k];
  return log_error_to_dice(y);
}

}  // namespace

std::vector<std::string> quality_fitting_variants() {
  std::vector<std::string> names;
  for (const auto& v : fitting_variants()) names.emplace_back(v.name);
  return names;
}

std::vector<QualitySample> quality_samples(const Segmenter& segmenter, const at::Tensor& images, const at::Tensor& labels,
                                           const LabelStatistics& statistics,
                                           const std::optional<IntensityRange>& trained, uint64_t seed,
                                           const std::function<void(const std::string&)>& progress) {
  constexpr int64_t kBatch = 16;
  const ClassTable& classes = segmenter.classes();
  std::vector<QualitySample> samples;
  auto gen = make_seeded_generator(seed);
  for (const auto& variant : fitting_variants()) {
    if (progress) progress(variant.name);
    const AugmentPipeline pipeline(options_of(variant));
    for (int64_t first = 0; first < images.size(0); first += kBatch) {
      const int64_t count = std::min(kBatch, images.size(0) - first);
      const auto [films, truth] = augmented(pipeline, images.narrow(0, first, count), labels.narrow(0, first, count), gen);
      const auto film_list = films.unbind(0);
      const std::vector<at::Tensor> film_vector(film_list.begin(), film_list.end());
      const auto predictions = segmenter.predict(film_vector);
      const auto features = film_quality_features(segmenter, film_vector, predictions, statistics, trained);
      for (int64_t i = 0; i < count; ++i) {
        const auto result = segmenter.finish(predictions[static_cast<size_t>(i)]).labels[0];
        const auto dice = dice_per_label(result, truth[i], classes.max_value() + 1);
        QualitySample sample{features[static_cast<size_t>(i)], {}, first + i};
        for (const auto& [name, value] : classes.entries)
          if (value != 0) sample.dice.push_back(dice[value - 1].item<double>());
        samples.push_back(std::move(sample));
      }
    }
  }
  return samples;
}

QualityRecord fit_quality(const std::vector<QualitySample>& samples, const ClassTable& classes,
                          const LabelStatistics& statistics, const QualityFitOptions& options) {
  QualityRecord record;
  record.features = quality_feature_names(classes);
  for (const auto& [name, value] : classes.entries)
    if (value != 0) record.structures.push_back(name);
  record.review = options.review.empty() ? record.structures : options.review;
  for (const auto& name : record.review)
    if (std::find(record.structures.begin(), record.structures.end(), name) == record.structures.end())
      throw UsageError("no structure \"" + name + "\" in the model's class table to review");
  record.label_statistics = statistics;
  record.dice_limit = options.dice_limit;
  record.target_recall = options.target_recall;
  record.fitted_on_json = options.fitted_on_json;
  const size_t n = samples.size(), p = record.features.size(), structures = record.structures.size();
  if (n < 2 * kFolds) throw Error("fit_quality", "needs at least " + std::to_string(2 * kFolds) + " films to fit on");
  for (const auto& s : samples)
    if (s.features.size() != p || s.dice.size() != structures)
      throw Error("fit_quality", "a sample has the wrong number of features or Dice values");

  // Standardisation and the accepted ranges.
  record.centre.assign(p, 0.0);
  record.scale.assign(p, 0.0);
  record.low.assign(p, INFINITY);
  record.high.assign(p, -INFINITY);
  for (const auto& s : samples)
    for (size_t k = 0; k < p; ++k) {
      record.centre[k] += s.features[k] / static_cast<double>(n);
      record.low[k] = std::min(record.low[k], s.features[k]);
      record.high[k] = std::max(record.high[k], s.features[k]);
    }
  for (const auto& s : samples)
    for (size_t k = 0; k < p; ++k) record.scale[k] += std::pow(s.features[k] - record.centre[k], 2) / static_cast<double>(n - 1);
  for (size_t k = 0; k < p; ++k) {
    record.scale[k] = record.scale[k] > 1e-12 ? std::sqrt(record.scale[k]) : 1.0;
    const double margin = kRangeMargin * (record.high[k] - record.low[k]);
    record.low[k] -= margin;
    record.high[k] += margin;
  }
  std::vector<std::vector<double>> z(n, std::vector<double>(p)), y(n);
  for (size_t i = 0; i < n; ++i) {
    for (size_t k = 0; k < p; ++k) z[i][k] = (samples[i].features[k] - record.centre[k]) / record.scale[k];
    for (double dice : samples[i].dice) y[i].push_back(dice_to_log_error(dice));
  }

  // The penalty with the least out-of-fold squared error, and the out-of-fold estimates it gives.
  std::vector<size_t> review_index;
  for (size_t s = 0; s < structures; ++s)
    if (std::find(record.review.begin(), record.review.end(), record.structures[s]) != record.review.end())
      review_index.push_back(s);
  double best_error = INFINITY;
  std::vector<double> best_scores;
  for (const double penalty : {0.1, 1.0, 10.0, 100.0, 1000.0}) {
    std::vector<double> scores(n, 1.0);
    double error = 0.0;
    for (int fold = 0; fold < kFolds; ++fold) {
      std::vector<size_t> train, held;
      for (size_t i = 0; i < n; ++i) (samples[i].group % kFolds == fold ? held : train).push_back(i);
      if (held.empty() || train.size() <= 1) continue;
      for (size_t s = 0; s < structures; ++s) {
        const auto w = ridge(z, y, s, train, penalty);
        const bool reviewed = std::find(review_index.begin(), review_index.end(), s) != review_index.end();
        for (size_t i : held) {
          const double estimate = predicted(w, z[i]);
          error += std::pow(estimate - samples[i].dice[s], 2);
          if (reviewed) scores[i] = std::min(scores[i], estimate);
        }
      }
    }
    if (error < best_error) {
      best_error = error;
      best_scores = scores;
      record.ridge = penalty;
    }
  }
  std::vector<size_t> all(n);
  for (size_t i = 0; i < n; ++i) all[i] = i;
  for (size_t s = 0; s < structures; ++s) record.coefficients.push_back(ridge(z, y, s, all, record.ridge));

  // The threshold: the least that flags target_recall of the failures (score strictly below it),
  // and of the hard ones just below the limit, which the gross failures of the variants outnumber.
  std::vector<double> failure_scores, near_scores;
  for (size_t i = 0; i < n; ++i) {
    double least = 1.0;
    for (size_t s : review_index) least = std::min(least, samples[i].dice[s]);
    if (least < options.dice_limit) failure_scores.push_back(best_scores[i]);
    if (least < options.dice_limit && least >= options.dice_limit - 0.1) near_scores.push_back(best_scores[i]);
  }
  if (failure_scores.empty())
    throw Error("fit_quality", "no fitting film has a structure below " + std::to_string(options.dice_limit) +
                                   ": nothing to learn failures from");
  auto catching = [&](std::vector<double> scores) {
    if (scores.empty()) return 0.0;
    std::sort(scores.begin(), scores.end());
    const auto needed = static_cast<size_t>(std::ceil(options.target_recall * static_cast<double>(scores.size())));
    return std::nextafter(scores[std::clamp<size_t>(needed, 1, scores.size()) - 1], 2.0);
  };
  record.threshold = std::max(catching(failure_scores), catching(near_scores));
  size_t caught = 0, flagged = 0;
  for (double score : failure_scores) caught += score < record.threshold;
  for (double score : best_scores) flagged += score < record.threshold;
  record.recall = static_cast<double>(caught) / static_cast<double>(failure_scores.size());
  record.flag_rate = static_cast<double>(flagged) / static_cast<double>(n);
  return record;
}

}  // namespace seg
