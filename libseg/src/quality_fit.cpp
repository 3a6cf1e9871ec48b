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
#include <array>
#include <cmath>
#include <iomanip>
#include <map>
#include <sstream>

namespace seg {
namespace {

constexpr int kFolds = 5;
constexpr double kRangeMargin = 0.10;  // the accepted range: the fitting range widened by this much of it each side

// A kind of variant of the fitting films: augmentation strengths at its strongest (every other
// augmentation off), made at each of kFittingLevels times them.
struct VariantKind {
  const char* name;
  std::map<std::string, double> strengths;
};
const std::vector<VariantKind>& variant_kinds() {
  static const std::vector<VariantKind> kinds{
      {"exposure", {{"intensity", 0.6}, {"processing", 2.0}, {"invert", 0.2}}},
      {"texture", {{"texture", 2.5}}},
      {"opacity", {{"opacity", 3.0}, {"devices", 1.0}}},
      {"framing", {{"scale", 0.08}, {"zoom", 1.5}, {"rotation", 25.0}}},
      {"everything",
       {{"scale", 0.05}, {"zoom", 1.0}, {"rotation", 15.0}, {"opacity", 2.0}, {"devices", 1.0}, {"intensity", 0.4},
        {"processing", 1.5}, {"texture", 1.5}}},
  };
  return kinds;
}

// The strongest level fails the model grossly; the milder ones fail it near the limit, as real
// shifts do, so that the regression and the threshold learn from failures like the real ones.
constexpr std::array<double, 3> kFittingLevels{0.4, 0.7, 1.0};

// Each variant draws from its own generator, seeded from the seed and its name, so that its
// films do not change when variants are added or removed.
uint64_t variant_seed(uint64_t seed, const std::string& name) {
  uint64_t hash = 14695981039346656037ull;  // FNV-1a
  for (const char c : name) hash = (hash ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  return seed ^ hash;
}

AugmentOptions options_of(const QualityVariant& variant) {
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

const std::vector<QualityVariant>& quality_fitting_variants() {
  static const std::vector<QualityVariant> variants = [] {
    std::vector<QualityVariant> list{{"as-is", {}}};
    for (const auto& kind : variant_kinds())
      for (const double level : kFittingLevels) {
        std::ostringstream name;
        name << kind.name;
        if (level != 1.0) name << "-" << level;
        QualityVariant variant{name.str(), {}};
        for (const auto& [augmentation, strength] : kind.strengths) variant.strengths[augmentation] = strength * level;
        list.push_back(std::move(variant));
      }
    return list;
  }();
  return variants;
}

std::string quality_samples_csv(const std::vector<QualitySample>& samples, const ClassTable& classes) {
  std::ostringstream csv;
  csv << std::setprecision(17) << "variant,film";
  for (const auto& [name, value] : classes.entries)
    if (value != 0) csv << ",dice_" << name;
  for (const auto& name : quality_feature_names(classes)) csv << "," << name;
  csv << "\n";
  for (const auto& sample : samples) {
    csv << sample.variant << "," << sample.group;
    for (double dice : sample.dice) csv << "," << dice;
    for (double feature : sample.features) csv << "," << feature;
    csv << "\n";
  }
  return csv.str();
}

std::vector<QualitySample> quality_samples(const Segmenter& segmenter, const at::Tensor& images, const at::Tensor& labels,
                                           const LabelStatistics& statistics,
                                           const std::optional<IntensityRange>& trained, uint64_t seed,
                                           const std::function<void(const std::string&)>& progress) {
  constexpr int64_t kBatch = 16;
  const ClassTable& classes = segmenter.classes();
  std::vector<QualitySample> samples;
  for (const auto& variant : quality_fitting_variants()) {
    if (progress) progress(variant.name);
    auto gen = make_seeded_generator(variant_seed(seed, variant.name));
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
        QualitySample sample{features[static_cast<size_t>(i)], {}, first + i, variant.name};
        for (const auto& [name, value] : classes.entries)
          if (value != 0) sample.dice.push_back(dice[value - 1].item<double>());
        samples.push_back(std::move(sample));
      }
    }
  }
  return samples;
}

ReviewThreshold review_threshold(const std::vector<double>& scores, const std::vector<double>& least_real,
                                 const QualityFitOptions& options) {
  if (scores.size() != least_real.size()) throw Error("review_threshold", "needs one real Dice per score");
  if (!(options.target_recall > 0 && options.target_recall <= 1) || !(options.near_band > 0) ||
      !(options.flag_budget >= 0 && options.flag_budget < 1))
    throw UsageError("the review threshold needs a recall in (0, 1], a near band above 0 and a flag budget in [0, 1)");
  std::vector<double> failures, near, passing;
  for (size_t i = 0; i < scores.size(); ++i) {
    if (least_real[i] >= options.dice_limit) {
      passing.push_back(scores[i]);
      continue;
    }
    failures.push_back(scores[i]);
    if (least_real[i] >= options.dice_limit - options.near_band) near.push_back(scores[i]);
  }
  if (failures.empty())
    throw Error("fit_quality", "no fitting film has a structure below " + std::to_string(options.dice_limit) +
                                   ": nothing to learn failures from");
  // The least threshold that flags (score strictly below) the target share of `group`.
  auto catching = [&](std::vector<double> group) {
    if (group.empty()) return 0.0;
    std::sort(group.begin(), group.end());
    const auto needed = static_cast<size_t>(std::ceil(options.target_recall * static_cast<double>(group.size())));
    return std::nextafter(group[std::clamp<size_t>(needed, 1, group.size()) - 1], 2.0);
  };
  ReviewThreshold chosen;
  chosen.recall = std::max(catching(failures), catching(near));
  if (!passing.empty()) {
    // The highest that flags at most the budget's count: the score of the first passing film it spares.
    std::sort(passing.begin(), passing.end());
    const auto allowed = static_cast<size_t>(std::floor(options.flag_budget * static_cast<double>(passing.size())));
    chosen.budget = allowed < passing.size() ? passing[allowed] : std::nextafter(passing.back(), 2.0);
  }
  chosen.threshold = std::max(chosen.recall, chosen.budget);
  return chosen;
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
  record.near_band = options.near_band;
  record.flag_budget = options.flag_budget;
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

  // The threshold, on the out-of-fold estimates.
  std::vector<double> least_real(n, 1.0);
  for (size_t i = 0; i < n; ++i)
    for (size_t s : review_index) least_real[i] = std::min(least_real[i], samples[i].dice[s]);
  const auto chosen = review_threshold(best_scores, least_real, options);
  record.threshold = chosen.threshold;
  record.recall_threshold = chosen.recall;
  record.budget_threshold = chosen.budget;
  size_t failures = 0, caught = 0, flagged = 0;
  for (size_t i = 0; i < n; ++i) {
    const bool flag = best_scores[i] < record.threshold;
    failures += least_real[i] < options.dice_limit;
    caught += flag && least_real[i] < options.dice_limit;
    flagged += flag;
  }
  record.recall = static_cast<double>(caught) / static_cast<double>(failures);
  record.flag_rate = static_cast<double>(flagged) / static_cast<double>(n);
  return record;
}

}  // namespace seg
