// Quality control: the features tell a good prediction from a broken one, the estimator fitted
// on films made to fail ranks and flags a corrupted film, and its record round-trips through
// the model file.
#include <seg/augment_pipeline.h>
#include <seg/error.h>
#include <seg/model_file.h>
#include <seg/models.h>
#include <seg/quality.h>
#include <seg/segmenter.h>
#include <torch/torch.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>

#include "shapes_dataset.h"
#include "test_support.h"

namespace {
namespace fs = std::filesystem;

const seg::ClassTable kShapes{{{"background", 0}, {"disc", 1}, {"rectangle", 2}, {"ring", 3}}};

double feature(const std::vector<double>& features, const std::string& name) {
  const auto names = seg::quality_feature_names(kShapes);
  const auto it = std::find(names.begin(), names.end(), name);
  EXPECT_NE(it, names.end()) << name;
  return features.at(static_cast<size_t>(it - names.begin()));
}

// One-hot probabilities of a label map (values = channels here), softened by `certainty`.
at::Tensor probabilities_of(const at::Tensor& labels, double certainty) {
  const auto one_hot = torch::one_hot(labels.to(torch::kLong), 4).permute({2, 0, 1}).to(torch::kFloat);
  return one_hot * certainty + (1.0 - certainty) / 4.0;
}

TEST(QualityFeatures, BrokenPredictionAgreesLessAndIsLessSure) {
  const auto data = seg::testing::shapes_dataset(6, 48, 48, 6);
  const auto stats = seg::label_statistics(data.labels, kShapes);
  const auto truth = data.labels[0];
  seg::QualityInputs good{probabilities_of(truth, 0.95), truth, truth};
  // Broken: the disc cut in half and scattered in pieces, the second pass seeing something else.
  auto broken_labels = truth.clone();
  broken_labels.narrow(0, 0, 14).masked_fill_(broken_labels.narrow(0, 0, 14) == 1, 0);
  broken_labels.index_put_({torch::indexing::Slice(40, 48, 3), torch::indexing::Slice(0, 48, 5)}, 1);
  auto second = truth.clone();
  second.masked_fill_(second == 1, 0);
  seg::QualityInputs broken{probabilities_of(broken_labels, 0.4), broken_labels, second};
  const auto g = seg::quality_features(good, kShapes, stats), b = seg::quality_features(broken, kShapes, stats);
  ASSERT_EQ(g.size(), seg::quality_feature_names(kShapes).size());
  EXPECT_DOUBLE_EQ(feature(g, "agreement_disc"), 1.0);
  EXPECT_LT(feature(b, "agreement_disc"), 0.5);
  EXPECT_GT(feature(b, "entropy_disc"), feature(g, "entropy_disc") + 0.5);
  EXPECT_LT(feature(b, "boundary_disc"), feature(g, "boundary_disc") - 0.3);
  EXPECT_GT(feature(b, "components_z_disc"), feature(g, "components_z_disc") + 5);
  EXPECT_GT(feature(b, "centroid_y_z_disc"), feature(g, "centroid_y_z_disc"));
  EXPECT_LT(feature(g, "area_z_disc"), 3.0);
  // The structures left alone look alike in both.
  EXPECT_DOUBLE_EQ(feature(b, "agreement_rectangle"), 1.0);
}

TEST(QualityFeatures, LabelStatisticsMeasureTheTrainingLabels) {
  auto labels = torch::zeros({2, 10, 10}, torch::kByte);
  labels[0].narrow(0, 0, 2).fill_(1);                 // rows 0-1: area 0.2, centroid y 0.1
  labels[1].narrow(0, 6, 4).narrow(1, 0, 2).fill_(1);  // one piece of 8 pixels
  labels[1].narrow(0, 0, 1).narrow(1, 8, 2).fill_(1);  // and one of 2: area 0.1, two pieces
  const auto stats = seg::label_statistics(labels, seg::ClassTable::numbered(2));
  ASSERT_EQ(stats.structures.size(), 1u);
  EXPECT_NEAR(stats.measures[0][0].mean, 0.15, 1e-12);
  EXPECT_NEAR(stats.measures[0][0].sd, std::sqrt(0.005), 1e-12);
  EXPECT_NEAR(stats.measures[0][3].mean, 1.5, 1e-12);
  EXPECT_NEAR(stats.measures[0][1].mean, (0.1 + (8 * 0.8 + 2 * 0.05) / 10) / 2, 1e-12);
}

// A network that segments the shapes films by grey level: each class's logit falls with the
// distance of the normalised pixel from the class's level; noise and washed-out films break it.
struct LevelNetImpl : seg::SegNetImpl {
  at::Tensor forward(const at::Tensor& x) override {
    const auto levels = torch::tensor({0.2f, 0.8f, 0.5f, 0.95f}).view({1, 4, 1, 1});
    return -(x - levels).pow(2) * 400.0;
  }
};

seg::Model level_model() {
  seg::Model m;
  m.info.network = {"level", 1, 4};
  m.info.classes = kShapes;
  m.info.input_size = {48, 48};
  m.info.normalization = {"dataset", 0.0, 4095.0};
  m.net = std::make_shared<LevelNetImpl>();
  return m;
}

TEST(QualityEstimator, FittedOnFilmsMadeToFailRanksAndFlagsACorruptedFilm) {
  torch::manual_seed(3);
  const auto data = seg::testing::shapes_dataset(30, 48, 48, 30);
  const auto stats = seg::label_statistics(data.labels, kShapes);
  const seg::Segmenter segmenter({level_model()}, {}, at::kCPU, "level");
  const auto samples = seg::quality_samples(segmenter, data.images, data.labels, stats, std::nullopt, 7);
  ASSERT_EQ(samples.size(), 30u * seg::quality_fitting_variants().size());
  const auto record = seg::fit_quality(samples, kShapes, stats, {});
  EXPECT_GE(record.recall, 0.7);
  EXPECT_LT(record.flag_rate, 1.0);

  auto estimate = [&](const at::Tensor& film) {
    const std::vector<at::Tensor> films{film.to(torch::kFloat)};
    const auto predictions = segmenter.predict(films);
    return seg::estimate_quality(record, seg::film_quality_features(segmenter, films, predictions, stats, std::nullopt)[0]);
  };
  const auto clean = estimate(data.images[1]);
  const auto corrupted = estimate(data.images[1].to(torch::kFloat) + torch::randn({48, 48}) * 600.0);
  EXPECT_FALSE(clean.flag);
  EXPECT_GT(clean.score, 0.9);
  EXPECT_TRUE(corrupted.flag);
  EXPECT_LT(corrupted.score, clean.score - 0.1);
}

// Scores of passing films and of failures, each with its real Dice, for the threshold rule.
struct ScoredFilms {
  std::vector<double> scores, real;
  void add(double score, double real_dice) {
    scores.push_back(score);
    real.push_back(real_dice);
  }
  size_t flagged_below(double threshold, double low, double high) const {
    size_t count = 0;
    for (size_t i = 0; i < scores.size(); ++i) count += real[i] >= low && real[i] < high && scores[i] < threshold;
    return count;
  }
};

TEST(ReviewThreshold, SpendsTheFlagBudgetOnThePassingFilms) {
  ScoredFilms films;
  for (int i = 0; i < 40; ++i) films.add(0.90 + 0.002 * i, 0.97);  // passing, scores 0.900 .. 0.978
  for (int i = 0; i < 10; ++i) films.add(0.60 + 0.01 * i, 0.70);   // gross failures, easy to flag
  seg::QualityFitOptions options;
  options.flag_budget = 0.10;
  const auto chosen = seg::review_threshold(films.scores, films.real, options);
  EXPECT_EQ(chosen.threshold, chosen.budget);
  EXPECT_GT(chosen.budget, chosen.recall);
  // 10 % of 40 passing films: four flagged, the fifth (score 0.908) spared.
  EXPECT_EQ(films.flagged_below(chosen.threshold, 0.9, 1.1), 4u);
  EXPECT_DOUBLE_EQ(chosen.threshold, 0.90 + 0.002 * 4);
  options.flag_budget = 0.0;
  EXPECT_EQ(films.flagged_below(seg::review_threshold(films.scores, films.real, options).threshold, 0.9, 1.1), 0u);
}

TEST(ReviewThreshold, ReachesTheRecallOnNearLimitFailuresBeyondTheBudget) {
  ScoredFilms films;
  for (int i = 0; i < 40; ++i) films.add(0.90 + 0.002 * i, 0.97);  // passing
  for (int i = 0; i < 20; ++i) films.add(0.50 + 0.01 * i, 0.60);   // gross failures, many and low
  for (int i = 0; i < 10; ++i) films.add(0.93 + 0.003 * i, 0.88);  // near the limit: scored like passing films
  films.add(0.60, 0.84);                                            // below the near band: not one of them
  seg::QualityFitOptions options;
  options.flag_budget = 0.05;
  options.near_band = 0.05;
  const auto chosen = seg::review_threshold(films.scores, films.real, options);
  EXPECT_EQ(chosen.threshold, chosen.recall);
  EXPECT_GT(chosen.recall, chosen.budget);
  // 70 % of the ten near the limit (0.85 .. 0.90) flagged, not more; of all failures 70 % alone
  // would have stopped among the gross ones.
  EXPECT_EQ(films.flagged_below(chosen.threshold, 0.85, 0.90), 7u);
  EXPECT_DOUBLE_EQ(chosen.threshold, 0.93 + 0.003 * 6);
  EXPECT_THROW(seg::review_threshold(films.scores, std::vector<double>(films.scores.size(), 0.95), options), seg::Error);
  options.target_recall = 0;
  EXPECT_THROW(seg::review_threshold(films.scores, films.real, options), seg::UsageError);
}

TEST(QualityVariants, EachKindAtMildAndStrongLevels) {
  const auto& variants = seg::quality_fitting_variants();
  ASSERT_FALSE(variants.empty());
  EXPECT_EQ(variants.front().name, "as-is");
  EXPECT_TRUE(variants.front().strengths.empty());
  auto find = [&](const std::string& name) {
    const auto it = std::find_if(variants.begin(), variants.end(), [&](const auto& v) { return v.name == name; });
    EXPECT_NE(it, variants.end()) << name;
    return it == variants.end() ? seg::QualityVariant{} : *it;
  };
  for (const char* kind : {"exposure", "texture", "opacity", "framing", "everything"}) {
    const auto strong = find(kind), mild = find(std::string(kind) + "-0.4"), middle = find(std::string(kind) + "-0.7");
    ASSERT_FALSE(strong.strengths.empty()) << kind;
    for (const auto& [augmentation, strength] : strong.strengths) {
      EXPECT_NE(seg::find_augmentation(augmentation), nullptr) << augmentation;
      EXPECT_NEAR(mild.strengths.at(augmentation), 0.4 * strength, 1e-12) << kind << " " << augmentation;
      EXPECT_NEAR(middle.strengths.at(augmentation), 0.7 * strength, 1e-12) << kind << " " << augmentation;
    }
  }
  EXPECT_EQ(variants.size(), 16u);
}

seg::QualityRecord small_record() {
  const auto data = seg::testing::shapes_dataset(4, 16, 16, 4);
  const auto stats = seg::label_statistics(data.labels, kShapes);
  std::vector<seg::QualitySample> samples;
  const auto n = seg::quality_feature_names(kShapes).size();
  torch::manual_seed(1);
  for (int64_t i = 0; i < 40; ++i) {
    const auto x = torch::rand({static_cast<int64_t>(n)}, torch::kDouble);
    std::vector<double> features(x.data_ptr<double>(), x.data_ptr<double>() + n);
    const double d = 0.7 + 0.3 * features[0];
    samples.push_back({features, {d, 0.95, d * 0.9}, i, "made-up"});
  }
  seg::QualityFitOptions options;
  options.review = {"disc", "ring"};
  options.fitted_on_json = R"({"films": 40})";
  return seg::fit_quality(samples, kShapes, stats, options);
}

TEST(QualityRecord, RoundTripsThroughTheModelFileAndOlderFilesLoadWithout) {
  seg::testing::ScratchDir dir("quality");
  seg::Model model;
  model.info.network = {"fcn", 1, 4};
  model.info.classes = kShapes;
  model.info.input_size = {16, 16};
  model.net = seg::make_network(model.info.network);
  seg::save_model(model, dir / "old.pth");
  EXPECT_FALSE(seg::load_model(dir / "old.pth").info.quality);

  model.info.quality = std::make_shared<const seg::QualityRecord>(small_record());
  seg::save_model(model, dir / "qc.pth");
  const auto loaded = seg::load_model(dir / "qc.pth").info.quality;
  ASSERT_TRUE(loaded);
  const auto& r = *model.info.quality;
  EXPECT_EQ(loaded->features, r.features);
  EXPECT_EQ(loaded->review, (std::vector<std::string>{"disc", "ring"}));
  EXPECT_EQ(loaded->coefficients, r.coefficients);
  EXPECT_EQ(loaded->low, r.low);
  EXPECT_DOUBLE_EQ(loaded->threshold, r.threshold);
  EXPECT_DOUBLE_EQ(loaded->flag_budget, r.flag_budget);
  EXPECT_DOUBLE_EQ(loaded->near_band, r.near_band);
  EXPECT_DOUBLE_EQ(loaded->budget_threshold, r.budget_threshold);
  EXPECT_DOUBLE_EQ(loaded->recall_threshold, r.recall_threshold);
  EXPECT_DOUBLE_EQ(loaded->label_statistics.measures[2][0].sd, r.label_statistics.measures[2][0].sd);
  std::vector<double> x(r.features.size(), 0.5);
  EXPECT_EQ(seg::estimate_quality(*loaded, x).dice, seg::estimate_quality(r, x).dice);
}

TEST(QualityRecord, ARecordFromBeforeTheBudgetLoadsAsRecallOnly) {
  const auto record = small_record();
  EXPECT_NE(seg::quality_record_summary(record).find("at most 10 % of those that pass"), std::string::npos);
  auto j = nlohmann::json::parse(seg::quality_record_to_json(record));
  for (const char* key : {"near_band", "flag_budget", "recall_threshold", "budget_threshold"}) j.erase(key);
  const auto old = seg::quality_record_from_json(j.dump(), kShapes, "old.pth");
  EXPECT_DOUBLE_EQ(old.flag_budget, 0.0);
  EXPECT_DOUBLE_EQ(old.near_band, 0.1);
  EXPECT_DOUBLE_EQ(old.recall_threshold, record.threshold);
  const auto summary = seg::quality_record_summary(old);
  EXPECT_EQ(summary.find("of those that pass"), std::string::npos) << summary;
  EXPECT_NE(summary.find("within 0.10 below"), std::string::npos) << summary;
}

TEST(QualityRecord, ARecordOfOtherFeaturesIsRefusedWithHowToRefit) {
  auto record = small_record();
  record.features.back() = "something_else";
  try {
    seg::quality_record_from_json(seg::quality_record_to_json(record), kShapes, "m.pth");
    FAIL() << "accepted a record of other features";
  } catch (const seg::Error& e) {
    EXPECT_NE(std::string(e.what()).find("m.pth"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("--fit-qc"), std::string::npos);
  }
}

TEST(QualityEstimate, AFeatureOutsideTheFittedRangeFlags) {
  auto record = small_record();
  record.threshold = 0.0;  // no score is below it: only the range flags
  std::vector<double> x(record.features.size(), 0.5);
  const auto inside = seg::estimate_quality(record, x);
  EXPECT_FALSE(inside.flag);
  x[3] = 5.0;  // far beyond the 0..1 seen in fitting
  const auto outside = seg::estimate_quality(record, x);
  EXPECT_TRUE(outside.flag);
  EXPECT_EQ(outside.outside, std::vector<std::string>{record.features[3]});
}

}  // namespace
