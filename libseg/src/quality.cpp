#include <seg/augment.h>
#include <seg/error.h>
#include <seg/film_prediction.h>
#include <seg/quality.h>
#include <seg/segmenter.h>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <sstream>

namespace seg {
using nlohmann::json;

namespace {

// The least standard deviation a z-score divides by, per shape measure: training labels often
// agree exactly (one piece each), and a difference of one piece should count as one.
constexpr std::array<double, 4> kShapeSdFloor{0.01, 0.01, 0.01, 1.0};

// The shape measures of one structure in one label map (kShapeMeasures order).
using ShapeMeasures = std::array<double, 4>;

// Per value 0..255 of an H x W label map: shape measures (connected pieces: 8-connectivity).
std::vector<ShapeMeasures> shape_measures(const uint8_t* labels, int64_t height, int64_t width) {
  std::vector<double> pixels(256, 0.0), sum_y(256, 0.0), sum_x(256, 0.0), pieces(256, 0.0);
  std::vector<uint8_t> seen(static_cast<size_t>(height * width), 0);
  std::vector<int64_t> stack;
  for (int64_t p = 0; p < height * width; ++p) {
    const uint8_t v = labels[p];
    pixels[v] += 1.0;
    sum_y[v] += static_cast<double>(p / width);
    sum_x[v] += static_cast<double>(p % width);
    if (seen[static_cast<size_t>(p)]) continue;
    pieces[v] += 1.0;
    seen[static_cast<size_t>(p)] = 1;
    stack.assign(1, p);
    while (!stack.empty()) {
      const int64_t q = stack.back();
      stack.pop_back();
      const int64_t y = q / width, x = q % width;
      for (int64_t dy = -1; dy <= 1; ++dy)
        for (int64_t dx = -1; dx <= 1; ++dx) {
          const int64_t ny = y + dy, nx = x + dx;
          if (ny < 0 || ny >= height || nx < 0 || nx >= width) continue;
          const int64_t n = ny * width + nx;
          if (seen[static_cast<size_t>(n)] || labels[n] != v) continue;
          seen[static_cast<size_t>(n)] = 1;
          stack.push_back(n);
        }
    }
  }
  std::vector<ShapeMeasures> result(256);
  const double area = static_cast<double>(height * width);
  for (size_t v = 0; v < 256; ++v) {
    const bool present = pixels[v] > 0;
    result[v] = {pixels[v] / area, present ? (sum_y[v] / pixels[v] + 0.5) / static_cast<double>(height) : 0.5,
                 present ? (sum_x[v] / pixels[v] + 0.5) / static_cast<double>(width) : 0.5, pieces[v]};
  }
  return result;
}

// What one structure shows in one film, from which its features are read.
struct StructureMeasures {
  double agreement = 1.0, entropy = 0.0, boundary = 0.0;
  ShapeMeasures shape_z{};
};

// The features: one entry each, a name and how it is read from the measures.
struct StructureFeature {
  const char* name;
  double (*value)(const StructureMeasures&);
};
const std::vector<StructureFeature>& structure_features() {
  static const std::vector<StructureFeature> features{
      {"agreement", [](const StructureMeasures& m) { return m.agreement; }},
      {"entropy", [](const StructureMeasures& m) { return m.entropy; }},
      {"boundary", [](const StructureMeasures& m) { return m.boundary; }},
      {"area_z", [](const StructureMeasures& m) { return m.shape_z[0]; }},
      {"centroid_y_z", [](const StructureMeasures& m) { return m.shape_z[1]; }},
      {"centroid_x_z", [](const StructureMeasures& m) { return m.shape_z[2]; }},
      {"components_z", [](const StructureMeasures& m) { return m.shape_z[3]; }},
  };
  return features;
}
struct FilmFeature {
  const char* name;
  double (*value)(const QualityInputs&);
};
const std::vector<FilmFeature>& film_features() {
  static const std::vector<FilmFeature> features{
      {"reframed", [](const QualityInputs& in) { return in.reframed ? 1.0 : 0.0; }},
      {"intensity_outside", [](const QualityInputs& in) { return in.intensity_outside ? 1.0 : 0.0; }},
  };
  return features;
}

std::vector<std::pair<std::string, int>> structures_of(const ClassTable& classes) {
  std::vector<std::pair<std::string, int>> structures;
  for (const auto& entry : classes.entries)
    if (entry.second != 0) structures.push_back(entry);
  return structures;
}

at::Tensor byte_map(const at::Tensor& labels) { return labels.to(at::kCPU, at::kByte).contiguous(); }

// The raw film (H x W) warped as the second pass sees it, and that pass's labels brought back.
constexpr double kSecondScale = 0.9, kSecondShift = 0.02;  // shift in normalised units (2 = the side)
at::Tensor warped_film(const at::Tensor& film) {
  const auto theta = at::tensor({1.0 / kSecondScale, 0.0, -kSecondShift / kSecondScale, 0.0, 1.0 / kSecondScale,
                                 -kSecondShift / kSecondScale},
                                at::kDouble)
                         .view({1, 2, 3});
  const auto image = film.to(at::kCPU, at::kFloat).unsqueeze(0).unsqueeze(0);
  return apply_affine(image, {}, theta, {}, Padding::border).first[0][0];
}
at::Tensor labels_warped_back(const at::Tensor& labels) {
  const auto theta =
      at::tensor({kSecondScale, 0.0, kSecondShift, 0.0, kSecondScale, kSecondShift}, at::kDouble).view({1, 2, 3});
  const auto blank = at::zeros({1, 1, labels.size(0), labels.size(1)}, at::kFloat);
  return apply_affine(blank, byte_map(labels).unsqueeze(0), theta, {}, Padding::zeros).second[0];
}

}  // namespace

LabelStatistics label_statistics(const at::Tensor& labels, const ClassTable& classes) {
  if (labels.dim() != 3 || labels.size(0) < 1) throw Error("label_statistics", "needs B x H x W label maps");
  const auto maps = byte_map(labels);
  const auto structures = structures_of(classes);
  std::vector<std::array<std::vector<double>, 4>> values(structures.size());
  for (int64_t b = 0; b < maps.size(0); ++b) {
    const auto measures = shape_measures(maps[b].data_ptr<uint8_t>(), maps.size(1), maps.size(2));
    for (size_t s = 0; s < structures.size(); ++s) {
      auto shape = measures[static_cast<size_t>(structures[s].second)];
      if (shape[0] == 0) shape[3] = 0;  // an absent structure has no pieces (its pixels belong to others)
      for (size_t k = 0; k < 4; ++k) values[s][k].push_back(shape[k]);
    }
  }
  LabelStatistics stats;
  for (size_t s = 0; s < structures.size(); ++s) {
    stats.structures.push_back(structures[s].first);
    std::array<ShapeStatistic, 4> measures{};
    for (size_t k = 0; k < 4; ++k) {
      const auto& v = values[s][k];
      double mean = 0, square = 0;
      for (double x : v) mean += x;
      mean /= static_cast<double>(v.size());
      for (double x : v) square += (x - mean) * (x - mean);
      measures[k] = {mean, v.size() > 1 ? std::sqrt(square / static_cast<double>(v.size() - 1)) : 0.0};
    }
    stats.measures.push_back(measures);
  }
  return stats;
}

std::vector<std::string> quality_feature_names(const ClassTable& classes) {
  std::vector<std::string> names;
  const auto structures = structures_of(classes);
  for (const auto& feature : structure_features())
    for (const auto& [name, value] : structures) names.push_back(std::string(feature.name) + "_" + name);
  for (const auto& feature : film_features()) names.emplace_back(feature.name);
  return names;
}

std::vector<double> quality_features(const QualityInputs& in, const ClassTable& classes, const LabelStatistics& stats) {
  const auto structures = structures_of(classes);
  if (stats.structures.size() != structures.size())
    throw Error("quality_features", "the label statistics are of another class table");
  const auto labels = byte_map(in.labels), second = byte_map(in.second_labels);
  const auto probabilities = in.probabilities.to(at::kCPU, at::kFloat).contiguous();
  const int64_t height = labels.size(0), width = labels.size(1), plane = height * width;
  const int64_t channels = probabilities.size(0);
  if (probabilities.dim() != 3 || probabilities.size(1) != height || probabilities.size(2) != width ||
      second.sizes() != labels.sizes() || channels != classes.size())
    throw Error("quality_features", "probabilities and label maps of different sizes");
  const uint8_t* l = labels.data_ptr<uint8_t>();
  const uint8_t* l2 = second.data_ptr<uint8_t>();
  const float* p = probabilities.data_ptr<float>();
  // Per value: pixels, entropy sum, outline pixels and their confidence, overlap with the second pass.
  std::vector<double> pixels(256, 0), entropy(256, 0), outline(256, 0), confidence(256, 0), both(256, 0), second_pixels(256, 0);
  for (int64_t y = 0; y < height; ++y)
    for (int64_t x = 0; x < width; ++x) {
      const int64_t i = y * width + x;
      const uint8_t v = l[i];
      second_pixels[l2[i]] += 1;
      pixels[v] += 1;
      if (l2[i] == v) both[v] += 1;
      double h = 0, top = 0;
      for (int64_t c = 0; c < channels; ++c) {
        const double q = p[c * plane + i];
        if (q > 0) h -= q * std::log(q);
        top = std::max(top, q);
      }
      entropy[v] += h;
      const bool edge = y == 0 || x == 0 || y == height - 1 || x == width - 1 || l[i - 1] != v || l[i + 1] != v ||
                        l[i - width] != v || l[i + width] != v;
      if (edge) {
        outline[v] += 1;
        confidence[v] += top;
      }
    }
  const auto shapes = shape_measures(l, height, width);
  std::vector<StructureMeasures> measures;
  for (size_t s = 0; s < structures.size(); ++s) {
    const auto v = static_cast<size_t>(structures[s].second);
    StructureMeasures m;
    m.agreement = pixels[v] + second_pixels[v] > 0 ? 2 * both[v] / (pixels[v] + second_pixels[v]) : 1.0;
    m.entropy = pixels[v] > 0 ? entropy[v] / pixels[v] : std::log(static_cast<double>(channels));
    m.boundary = outline[v] > 0 ? confidence[v] / outline[v] : 0.0;
    auto shape = shapes[v];
    if (shape[0] == 0) shape[3] = 0;
    for (size_t k = 0; k < 4; ++k)
      m.shape_z[k] = std::abs(shape[k] - stats.measures[s][k].mean) / std::max(stats.measures[s][k].sd, kShapeSdFloor[k]);
    measures.push_back(m);
  }
  std::vector<double> features;
  for (const auto& feature : structure_features())
    for (const auto& m : measures) features.push_back(feature.value(m));
  for (const auto& feature : film_features()) features.push_back(feature.value(in));
  return features;
}

std::vector<std::vector<double>> film_quality_features(const Segmenter& segmenter, const std::vector<at::Tensor>& films,
                                                       const std::vector<FilmPrediction>& predictions,
                                                       const LabelStatistics& statistics,
                                                       const std::optional<IntensityRange>& trained) {
  std::vector<at::Tensor> warped;
  for (const auto& film : films) warped.push_back(warped_film(film));
  const auto second = segmenter.predict(warped);
  std::vector<std::vector<double>> features;
  for (size_t i = 0; i < films.size(); ++i) {
    QualityInputs in;
    in.probabilities = predictions[i].probabilities();
    in.labels = predictions[i].labels();
    in.second_labels = labels_warped_back(second[i].labels());
    in.reframed = predictions[i].reframed();
    in.intensity_outside = trained && !intensity_mismatch(films[i], "film", *trained).empty();
    features.push_back(quality_features(in, segmenter.classes(), statistics));
  }
  return features;
}

double dice_to_log_error(double dice) { return std::log(std::max(1.0 - dice, 0.005)); }
double log_error_to_dice(double log_error) { return std::clamp(1.0 - std::exp(log_error), 0.0, 1.0); }

QualityEstimate estimate_quality(const QualityRecord& record, const std::vector<double>& features) {
  if (features.size() != record.features.size())
    throw Error("estimate_quality", "got " + std::to_string(features.size()) + " features for a record of " +
                                        std::to_string(record.features.size()));
  QualityEstimate estimate;
  std::vector<double> standard(features.size());
  for (size_t k = 0; k < features.size(); ++k) {
    standard[k] = (features[k] - record.centre[k]) / record.scale[k];
    if (!(features[k] >= record.low[k] && features[k] <= record.high[k])) estimate.outside.push_back(record.features[k]);
  }
  estimate.score = 1.0;
  for (size_t s = 0; s < record.structures.size(); ++s) {
    const auto& w = record.coefficients[s];
    double log_error = w[0];
    for (size_t k = 0; k < standard.size(); ++k) log_error += w[k + 1] * standard[k];
    const double dice = log_error_to_dice(log_error);
    estimate.dice.push_back(dice);
    if (std::find(record.review.begin(), record.review.end(), record.structures[s]) != record.review.end())
      estimate.score = std::min(estimate.score, dice);
  }
  estimate.flag = estimate.score < record.threshold || !estimate.outside.empty();
  return estimate;
}

std::string quality_record_to_json(const QualityRecord& r) {
  json coefficients = json::object(), statistics = json::object();
  for (size_t s = 0; s < r.structures.size(); ++s) coefficients[r.structures[s]] = r.coefficients[s];
  for (size_t s = 0; s < r.label_statistics.structures.size(); ++s) {
    json measures = json::object();
    for (size_t k = 0; k < kShapeMeasures.size(); ++k)
      measures[kShapeMeasures[k]] = {r.label_statistics.measures[s][k].mean, r.label_statistics.measures[s][k].sd};
    statistics[r.label_statistics.structures[s]] = measures;
  }
  const json j = {{"features", r.features},       {"structures", r.structures},   {"review", r.review},
                  {"centre", r.centre},           {"scale", r.scale},             {"low", r.low},
                  {"high", r.high},               {"coefficients", coefficients}, {"label_statistics", statistics},
                  {"dice_limit", r.dice_limit},   {"threshold", r.threshold},     {"target_recall", r.target_recall},
                  {"near_band", r.near_band},     {"flag_budget", r.flag_budget}, {"recall_threshold", r.recall_threshold},
                  {"budget_threshold", r.budget_threshold},                       {"recall", r.recall},
                  {"flag_rate", r.flag_rate},     {"ridge", r.ridge},             {"fitted_on", json::parse(r.fitted_on_json)}};
  return j.dump();
}

QualityRecord quality_record_from_json(const std::string& text, const ClassTable& classes, const std::string& source) {
  QualityRecord r;
  const std::string refit = "; fit it again with seg-evaluate --fit-qc";
  try {
    const json j = json::parse(text);
    r.features = j.at("features").get<std::vector<std::string>>();
    r.structures = j.at("structures").get<std::vector<std::string>>();
    r.review = j.at("review").get<std::vector<std::string>>();
    r.centre = j.at("centre").get<std::vector<double>>();
    r.scale = j.at("scale").get<std::vector<double>>();
    r.low = j.at("low").get<std::vector<double>>();
    r.high = j.at("high").get<std::vector<double>>();
    for (const auto& name : r.structures) r.coefficients.push_back(j.at("coefficients").at(name).get<std::vector<double>>());
    for (const auto& name : r.structures) {
      const auto& m = j.at("label_statistics").at(name);
      std::array<ShapeStatistic, 4> measures{};
      for (size_t k = 0; k < kShapeMeasures.size(); ++k) {
        const auto pair = m.at(kShapeMeasures[k]).get<std::vector<double>>();
        if (pair.size() != 2) throw Error(source, std::string("quality record: ") + kShapeMeasures[k] + " is not [mean, sd]");
        measures[k] = {pair[0], pair[1]};
      }
      r.label_statistics.structures.push_back(name);
      r.label_statistics.measures.push_back(measures);
    }
    r.dice_limit = j.at("dice_limit").get<double>();
    r.threshold = j.at("threshold").get<double>();
    r.target_recall = j.at("target_recall").get<double>();
    // Records fitted before the flag budget chose the threshold by the recall alone, on failures
    // within 0.1 below the limit.
    r.near_band = j.value("near_band", 0.1);
    r.flag_budget = j.value("flag_budget", 0.0);
    r.recall_threshold = j.value("recall_threshold", r.threshold);
    r.budget_threshold = j.value("budget_threshold", 0.0);
    r.recall = j.at("recall").get<double>();
    r.flag_rate = j.at("flag_rate").get<double>();
    r.ridge = j.at("ridge").get<double>();
    r.fitted_on_json = j.value("fitted_on", json::object()).dump();
  } catch (const json::exception& e) {
    throw Error(source, "model metadata is malformed: quality record: " + json_reason(e));
  }
  std::vector<std::string> structures;
  for (const auto& [name, value] : structures_of(classes)) structures.push_back(name);
  if (r.structures != structures)
    throw Error(source, "quality record estimates other structures than the model's class table" + refit);
  if (r.features != quality_feature_names(classes))
    throw Error(source, "quality record was fitted on other features than this version computes" + refit);
  const size_t n = r.features.size();
  bool finite = r.centre.size() == n && r.scale.size() == n && r.low.size() == n && r.high.size() == n;
  for (size_t k = 0; finite && k < n; ++k)
    finite = std::isfinite(r.centre[k]) && std::isfinite(r.scale[k]) && r.scale[k] > 0 && std::isfinite(r.low[k]) &&
             std::isfinite(r.high[k]) && r.low[k] <= r.high[k];
  for (const auto& w : r.coefficients) {
    finite = finite && w.size() == n + 1;
    for (double x : w) finite = finite && std::isfinite(x);
  }
  for (const auto& name : r.review)
    finite = finite && std::find(structures.begin(), structures.end(), name) != structures.end();
  finite = finite && !r.review.empty() && std::isfinite(r.threshold) && r.dice_limit > 0 && r.dice_limit <= 1;
  if (!finite)
    throw Error(source, "quality record is inconsistent (sizes, non-finite numbers or unknown structures)" + refit);
  return r;
}

std::string quality_record_summary(const QualityRecord& r) {
  std::ostringstream text;
  const json fitted = json::parse(r.fitted_on_json);
  std::string review = "them";
  if (r.review.size() != r.structures.size()) {
    review.clear();
    for (const auto& name : r.review) review += (review.empty() ? "" : ", ") + name;
  }
  text << "estimates the Dice of " << r.structures.size() << " structures from " << r.features.size()
       << " features; flags a film when the least of " << review << " is below " << std::fixed << std::setprecision(3)
       << r.threshold << " or a feature is out of range; the threshold is ";
  if (r.flag_budget > 0) text << "the higher of " << r.recall_threshold << ", ";
  text << "the least that flags " << std::setprecision(0) << 100 * r.target_recall
       << " % of the fitting films with one below " << std::setprecision(2) << r.dice_limit << " and of those within "
       << r.near_band << " below";
  if (r.flag_budget > 0)
    text << ", and " << std::setprecision(3) << r.budget_threshold << ", the highest that flags at most "
         << std::setprecision(0) << 100 * r.flag_budget << " % of those that pass";
  text << " (recall " << std::setprecision(2) << r.recall << ", " << std::setprecision(0) << 100 * r.flag_rate
       << " % flagged, out-of-fold";
  if (fitted.contains("films")) text << " on " << fitted["films"].get<int64_t>() << " films";
  if (fitted.contains("dataset")) text << " of " << fitted["dataset"].get<std::string>();
  if (fitted.contains("split")) text << " " << fitted["split"].get<std::string>();
  text << ")";
  return text.str();
}

}  // namespace seg
