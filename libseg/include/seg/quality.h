#pragma once
// Quality control of a segmentation: features of one film's prediction that tell a good mask
// from a bad one, and the estimator a model file records (ridge regressions from the features
// to each structure's Dice, a review threshold, the feature ranges seen when it was fitted).
// docs/quality.md says how it is fitted and how well it does.
#include <seg/dataset.h>
#include <seg/intensity_range.h>

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace seg {

class FilmPrediction;
class Segmenter;

// Mean and standard deviation of one shape measure of one structure over training label maps.
struct ShapeStatistic {
  double mean = 0.0, sd = 0.0;
};

// The shape measures, per structure: area (fraction of the image), centroid row and column
// (fractions of the height and width) and the number of 8-connected pieces.
constexpr std::array<const char*, 4> kShapeMeasures{"area", "centroid_y", "centroid_x", "components"};
struct LabelStatistics {
  std::vector<std::string> structures;                      // the class table's, background left out
  std::vector<std::array<ShapeStatistic, 4>> measures;      // per structure, in kShapeMeasures order
};

// The statistics of label maps (B x H x W integer, values of `classes`): a structure absent
// from a label map counts as area 0, centroid 0.5, 0 pieces.
LabelStatistics label_statistics(const at::Tensor& labels, const ClassTable& classes);

// What the features of one film are computed from, at the film's own size.
struct QualityInputs {
  at::Tensor probabilities;  // C x H x W float: the prediction's class probabilities
  at::Tensor labels;         // H x W kByte: its label map before the clean-up
  at::Tensor second_labels;  // H x W kByte: the label map of the film warped, warped back
  bool reframed = false;           // the reframing pass replaced part of the prediction
  bool intensity_outside = false;  // seg::intensity_mismatch warned about the film
};

// The feature names, in the order quality_features returns them: the per-structure features
// (name_<structure>) feature by feature, then those of the film. Per structure:
//   agreement    Dice between the label map and the second (warped) pass's
//   entropy      mean softmax entropy over the structure's pixels (log(C) when it is absent)
//   boundary     mean max-probability along its outline (0 when absent)
//   area_z, centroid_y_z, centroid_x_z, components_z
//                |z| of each shape measure against the training labels' statistics
// Per film: reframed (0/1), intensity_outside (0/1).
std::vector<std::string> quality_feature_names(const ClassTable& classes);
std::vector<double> quality_features(const QualityInputs& inputs, const ClassTable& classes,
                                     const LabelStatistics& statistics);

// The features of films as a Segmenter predicted them (films: H x W raw pixels, predictions:
// Segmenter::predict of them): one more prediction of each film shown 0.9 times smaller and
// moved by 1 % of its size (one more pass of the networks, reframing included), for the
// agreement; `trained`: the model's training intensity range, when it records one.
std::vector<std::vector<double>> film_quality_features(const Segmenter& segmenter, const std::vector<at::Tensor>& films,
                                                       const std::vector<FilmPrediction>& predictions,
                                                       const LabelStatistics& statistics,
                                                       const std::optional<IntensityRange>& trained);

// The regressions predict the log of a structure's error, log(1 - Dice) (held to at least
// log 0.005), where good and failed films lie on one scale; their prediction as a Dice.
double dice_to_log_error(double dice);
double log_error_to_dice(double log_error);

// The estimator, as a model file records it ("quality", docs/formats.md).
struct QualityRecord {
  std::vector<std::string> features;    // quality_feature_names of the model's class table
  std::vector<std::string> structures;  // whose Dice is estimated: the table's, background left out
  std::vector<std::string> review;      // the structures whose Dice below dice_limit asks for review
  std::vector<double> centre, scale;    // per feature: standardisation before the regression
  std::vector<double> low, high;        // per feature: the range accepted (seen in fitting, widened)
  std::vector<std::vector<double>> coefficients;  // per structure, of log(1 - Dice): intercept, then one per feature
  LabelStatistics label_statistics;
  double dice_limit = 0.90;      // a structure below it is a failure
  double threshold = 0.0;        // qc_score below it: flag
  // How the threshold was chosen (review_threshold): the recall it must reach on the failures,
  // and on those within near_band below dice_limit; the share of passing films it may flag.
  double target_recall = 0.70, near_band = 0.05, flag_budget = 0.10;
  double recall_threshold = 0.0, budget_threshold = 0.0;  // the two thresholds the rule weighed
  double recall = 0.0, flag_rate = 0.0;  // what it gave on the fitting films (out-of-fold)
  double ridge = 1.0;            // the penalty chosen by cross-validation
  std::string fitted_on_json = "{}";  // data set, split, films, variants, failures
};

// One film's estimate: Dice per structure (record.structures order, clipped to 0..1), qc_score
// (the least estimated Dice of the review structures), the features outside the accepted
// range, and flag: qc_score below the threshold or any feature outside.
struct QualityEstimate {
  std::vector<double> dice;
  double score = 0.0;
  std::vector<std::string> outside;
  bool flag = false;
};
QualityEstimate estimate_quality(const QualityRecord& record, const std::vector<double>& features);

// One fitting film: its features, the real Dice of each structure, which source film it was
// made from (variants of one film share a fold in cross-validation) and the variant's name.
struct QualitySample {
  std::vector<double> features;
  std::vector<double> dice;
  int64_t group = 0;
  std::string variant;
};

struct QualityFitOptions {
  std::vector<std::string> review;  // empty: every structure
  double dice_limit = 0.90;
  double target_recall = 0.70;
  double near_band = 0.05;
  double flag_budget = 0.10;
  std::string fitted_on_json = "{}";
};

// The review threshold from the fitting films' out-of-fold qc_scores and the real Dice of their
// least review structure. A film is flagged when its score lies strictly below the threshold.
//   recall: the least threshold that flags target_recall of the failures (real below
//           dice_limit) and target_recall of those within near_band below it, the failures like
//           real shifts' (the gross failures of the variants outnumber them and are easy to flag);
//   budget: the highest threshold that flags at most flag_budget of the films that pass;
//   threshold: the higher of the two. The budget is spent, as real failures look more like
//           passing films than the variants' do; the recall is reached even where the budget
//           does not allow it.
struct ReviewThreshold {
  double threshold = 0.0, recall = 0.0, budget = 0.0;
};
ReviewThreshold review_threshold(const std::vector<double>& scores, const std::vector<double>& least_real,
                                 const QualityFitOptions& options);

// Fits the record: ridge regressions (penalty chosen by 5-fold cross-validation over the
// groups), the threshold of review_threshold on the out-of-fold estimates, and the feature
// ranges. Throws seg::Error when there are too few samples or no failure among them.
QualityRecord fit_quality(const std::vector<QualitySample>& samples, const ClassTable& classes,
                          const LabelStatistics& statistics, const QualityFitOptions& options);

// Films made in memory from a data set's films to fit on: each film as it is and as each of the
// variants shows it (the augmentation pipeline at strengths up to beyond training's: exposure and
// processing, noise and texture, opacities and devices, zoom out and rotation, each kind at
// several levels), segmented and scored against its (warped) labels. `progress` is told each
// variant's name as it starts.
struct QualityVariant {
  std::string name;                          // "as-is", "texture", "texture-0.4"
  std::map<std::string, double> strengths;   // augmentation name: strength (the others off)
};
const std::vector<QualityVariant>& quality_fitting_variants();
std::vector<QualitySample> quality_samples(const Segmenter& segmenter, const at::Tensor& images, const at::Tensor& labels,
                                           const LabelStatistics& statistics,
                                           const std::optional<IntensityRange>& trained, uint64_t seed,
                                           const std::function<void(const std::string&)>& progress = {});

// The fitting films as CSV (variant, film, dice_<structure>..., the features), to study a fit.
std::string quality_samples_csv(const std::vector<QualitySample>& samples, const ClassTable& classes);

// The record as JSON and back; from_json checks it against the model's class table and the
// feature names of this build (seg::Error naming `source`).
std::string quality_record_to_json(const QualityRecord& record);
QualityRecord quality_record_from_json(const std::string& json_text, const ClassTable& classes, const std::string& source);

// "estimates Dice of 5 structures from 37 features; flags below 0.912 (recall 0.70, 12 % of ...)"
std::string quality_record_summary(const QualityRecord& record);

}  // namespace seg
