// Pairing and scoring for seg-evaluate (the reports: evaluation_report.cpp).
#include <seg/error.h>
#include <seg/report_text.h>
#include <seg/io/evaluation.h>
#include <seg/io/image_io.h>
#include <seg/metrics.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>

namespace seg::io {
namespace {
namespace fs = std::filesystem;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr size_t kCasesNamed = 5;  // a message about missing files names this many of each kind

// The label maps in a folder by case ID; two files of one case are an error.
std::map<std::string, fs::path> label_files_in(const fs::path& dir) {
  std::map<std::string, fs::path> files;
  for (const auto& p : image_files_in(dir)) {
    const std::string id = case_id_of(p);
    auto [it, fresh] = files.emplace(id, p);
    if (!fresh)
      throw Error(p.string(), "case " + id + " also has " + it->second.filename().string() +
                                  " in the same folder; keep one label map per case");
  }
  if (files.empty()) throw Error(dir.string(), "holds no label maps (.png, .nii.gz, ...)");
  return files;
}

// Where the truth of each case is, and which cases are chosen.
struct TruthCases {
  std::map<std::string, fs::path> files;  // case -> label file (none for a tensor pack)
  std::optional<Dataset> pack;
  std::set<std::string> known, selected;
};

TruthCases truth_from_data(const fs::path& data, const std::string& split, Pairing& pairing) {
  TruthCases t;
  std::vector<std::string> cases;
  std::map<std::string, std::vector<std::string>> splits;
  if (is_tensor_pack(data)) {
    t.pack = load_tensor_pack(data);
    if (!t.pack->labels.defined()) throw Error(data.string(), "the data set has no label maps to evaluate against");
    cases = t.pack->cases;
    splits = t.pack->splits;
    pairing.classes = t.pack->classes;
    pairing.inputs.push_back(data);
  } else {
    const fs::path json_path = fs::is_directory(data) ? data / "dataset.json" : data;
    const auto spec = DatasetSpec::read(json_path);
    if (spec.labels_pattern.empty())
      throw Error(json_path.string(), "the data set names no label maps (\"labels\"); nothing to evaluate against");
    cases = spec.cases;
    splits = spec.splits;
    pairing.classes = spec.classes;
    pairing.inputs.push_back(json_path);
    for (const auto& c : cases) t.files[c] = spec.label_path(json_path.parent_path(), c);
  }
  t.known.insert(cases.begin(), cases.end());
  if (split.empty()) {
    t.selected = t.known;
    return t;
  }
  const auto& members = split_cases(splits, split, data.string());
  t.selected.insert(members.begin(), members.end());
  return t;
}

// "a, b, c" for up to kCasesNamed IDs, then "and N more".
std::string some_of(const std::vector<std::string>& ids) {
  std::vector<std::string> named(ids.begin(),
                                 ids.begin() + static_cast<std::ptrdiff_t>(std::min(ids.size(), kCasesNamed)));
  std::string text = join(named, ", ");
  if (ids.size() > kCasesNamed) text += " and " + std::to_string(ids.size() - kCasesNamed) + " more";
  return text;
}

// The pixels whose label is one of `values`.
at::Tensor mask_of(const at::Tensor& labels, const std::vector<int>& values) {
  auto mask = at::zeros_like(labels, at::kBool);
  for (int v : values) mask.logical_or_(labels == v);
  return mask;
}

// The distinct values of a label map, checked against the class table (or, without one,
// against the number of labels a label map plausibly has).
std::vector<int> label_values(const at::Tensor& labels, const std::string& source, const EvaluationOptions& options) {
  const auto present = std::get<0>(at::_unique(labels.flatten())).to(at::kInt).contiguous();
  std::vector<int> values(present.data_ptr<int>(), present.data_ptr<int>() + present.numel());
  if (options.classes) {
    for (int v : values)
      if (!options.classes->contains(v)) {
        std::vector<std::string> known;
        for (const auto& [name, value] : options.classes->entries) known.push_back(std::to_string(value));
        throw Error(source, "holds label value " + std::to_string(v) + ", which the class table" +
                                (options.classes_source.empty() ? "" : " of " + options.classes_source) +
                                " lacks (it has " + join(known, ", ") +
                                "); give a label map made with this class table, or the table it was made with");
      }
  } else if (static_cast<int64_t>(values.size()) > kMaxDistinctLabels) {
    throw Error(source, "holds " + std::to_string(values.size()) +
                            " distinct values, more than a label map plausibly has (at most " +
                            std::to_string(kMaxDistinctLabels) +
                            " without a class table), so it looks like an image; give a label map, or pass "
                            "--classes if it really holds that many labels");
  }
  return values;
}

// One prediction with its truth, as read.
struct LabelMaps {
  at::Tensor pred, truth;
  Geometry truth_geometry;
};

LabelMaps read_pair(const CasePair& pair) {
  LabelMaps maps;
  maps.pred = read_label_map(pair.prediction).pixels;
  if (pair.truth_labels.defined()) {
    maps.truth = pair.truth_labels;
  } else {
    Image truth = read_label_map(pair.truth_file);
    maps.truth = truth.pixels;
    maps.truth_geometry = truth.geometry;
  }
  if (maps.pred.sizes() != maps.truth.sizes())
    throw Error(pair.prediction.string(),
                "is " + std::to_string(maps.pred.size(0)) + "x" + std::to_string(maps.pred.size(1)) +
                    " (HxW) but its truth " + pair.truth_source + " is " + std::to_string(maps.truth.size(0)) + "x" +
                    std::to_string(maps.truth.size(1)) + "; resample the prediction to the truth's size");
  return maps;
}

// The scores of one structure given as two masks; NaN where neither has it.
StructureScore score_masks(const at::Tensor& pred_mask, const at::Tensor& truth_mask, bool has_mm,
                           const std::array<double, 2>& spacing_yx) {
  StructureScore s;
  if (!pred_mask.any().item<bool>() && !truth_mask.any().item<bool>()) return s;
  const auto p = pred_mask.to(at::kByte), t = truth_mask.to(at::kByte);
  s.dice = dice_per_label(p, t, 2)[0].item<double>();
  s.jaccard = jaccard_per_label(p, t, 2)[0].item<double>();
  s.rvd = volume_difference_per_label(p, t, 2)[0].item<double>();
  const auto px = surface_distance(pred_mask, truth_mask);
  s.hd95_px = px.hd95;
  s.assd_px = px.assd;
  if (has_mm) {
    const auto mm = surface_distance(pred_mask, truth_mask, spacing_yx);
    s.hd95_mm = mm.hd95;
    s.assd_mm = mm.assd;
  }
  return s;
}

}  // namespace

Pairing pair_cases(const EvaluationSources& sources) {
  Pairing pairing;
  pairing.predictions = sources.predictions.string();
  pairing.split = sources.split;
  if (!fs::exists(sources.predictions))
    throw Error(sources.predictions.string(), "no such file or folder; give the predicted label maps");
  const bool folder_of_predictions = fs::is_directory(sources.predictions);
  const auto predictions =
      folder_of_predictions ? label_files_in(sources.predictions)
                            : std::map<std::string, fs::path>{{case_id_of(sources.predictions), sources.predictions}};

  TruthCases truth;
  if (!sources.data.empty()) {
    pairing.truth = sources.data.string();
    truth = truth_from_data(sources.data, sources.split, pairing);
  } else {
    pairing.truth = sources.truth.string();
    if (!fs::exists(sources.truth))
      throw Error(sources.truth.string(), "no such file or folder; give the true label maps");
    if (!fs::is_directory(sources.truth)) {
      if (folder_of_predictions)
        throw UsageError("PRED is a folder but TRUTH is one file; give a folder of truths or --data");
      const auto& [id, file] = *predictions.begin();
      pairing.pairs.push_back({id, file, sources.truth, {}, sources.truth.string()});
      pairing.inputs = {file, sources.truth};
      return pairing;
    }
    truth.files = label_files_in(sources.truth);
    for (const auto& [id, file] : truth.files) {
      truth.known.insert(id);
      pairing.inputs.push_back(file);  // scored or not, a report never replaces one
    }
    truth.selected = truth.known;
  }

  for (const auto& [id, file] : predictions) {
    pairing.inputs.push_back(file);  // scored or not, a report never replaces one
    if (!truth.known.count(id)) {
      pairing.without_truth.push_back(id);
      continue;
    }
    if (!truth.selected.count(id)) {
      ++pairing.outside_split;
      continue;
    }
    CasePair pair{id, file, {}, {}, {}};
    if (truth.pack) {
      const auto& cases = truth.pack->cases;
      pair.truth_labels = truth.pack->labels[std::find(cases.begin(), cases.end(), id) - cases.begin()];
      pair.truth_source = pairing.truth + "#" + id;
    } else {
      pair.truth_file = truth.files.at(id);
      pair.truth_source = pair.truth_file.string();
      if (!fs::exists(pair.truth_file)) {
        pairing.without_truth.push_back(id);
        continue;
      }
      pairing.inputs.push_back(pair.truth_file);
    }
    pairing.pairs.push_back(std::move(pair));
  }
  for (const auto& id : truth.selected)
    if (!predictions.count(id)) pairing.without_prediction.push_back(id);
  return pairing;
}

std::string describe_missing(const Pairing& pairing) {
  std::vector<std::string> parts;
  if (!pairing.without_truth.empty())
    parts.push_back(std::to_string(pairing.without_truth.size()) + " prediction(s) without a truth in " +
                    pairing.truth + " (" + some_of(pairing.without_truth) + ")");
  if (!pairing.without_prediction.empty())
    parts.push_back(std::to_string(pairing.without_prediction.size()) + " truth(s)" +
                    (pairing.split.empty() ? "" : " of split " + pairing.split) + " without a prediction (" +
                    some_of(pairing.without_prediction) + ")");
  return join(parts, "; ");
}

std::string Structure::values_text() const {
  std::vector<std::string> parts;
  for (int v : values) parts.push_back(std::to_string(v));
  return join(parts, "+");
}

StructureScore::StructureScore()
    : dice(kNaN), jaccard(kNaN), rvd(kNaN), hd95_px(kNaN), assd_px(kNaN), hd95_mm(kNaN), assd_mm(kNaN) {}

bool StructureScore::applicable() const { return !std::isnan(dice); }

Statistic summarise(const std::vector<double>& values) {
  Statistic s;
  double sum = 0;
  for (double v : values) {
    if (std::isnan(v)) {
      ++s.not_applicable;
    } else if (std::isinf(v)) {
      ++s.infinite;
    } else {
      sum += v;
      ++s.cases;
    }
  }
  if (s.cases == 0) {
    s.mean = s.infinite > 0 ? std::numeric_limits<double>::infinity() : kNaN;
    return s;
  }
  s.mean = sum / static_cast<double>(s.cases);
  double squares = 0;
  for (double v : values)
    if (std::isfinite(v)) squares += (v - s.mean) * (v - s.mean);
  s.sd = s.cases > 1 ? std::sqrt(squares / static_cast<double>(s.cases - 1)) : 0.0;
  return s;
}

std::vector<Structure> Evaluation::labels_not_in_truth() const {
  std::vector<Structure> labels;
  for (size_t k = 0; k < label_count; ++k)
    if (!summary[k].in_truth) labels.push_back(structures[k]);
  return labels;
}

Evaluation evaluate_cases(const Pairing& pairing, const EvaluationOptions& options) {
  if (pairing.pairs.empty())
    throw Error(pairing.predictions, std::string("no prediction has a truth among the chosen cases") +
                                         (pairing.split.empty() ? "" : " (split \"" + pairing.split + "\")") +
                                         "; check the case IDs and the split");
  std::vector<LabelMaps> maps;
  std::set<int> present;
  for (const auto& pair : pairing.pairs) {
    maps.push_back(read_pair(pair));
    for (int v : label_values(maps.back().pred, pair.prediction.string(), options)) present.insert(v);
    for (int v : label_values(maps.back().truth, pair.truth_source, options)) present.insert(v);
  }

  Evaluation e;
  if (options.classes) {
    for (const auto& [name, value] : options.classes->entries)
      if (value != 0) e.structures.push_back({name, {value}});
  } else {
    for (int v : present)
      if (v != 0) e.structures.push_back({"label_" + std::to_string(v), {v}});
  }
  if (e.structures.empty())
    throw Error(pairing.predictions, "no foreground label to score (every label map is all 0); check the files");
  e.label_count = e.structures.size();
  for (const auto& group : options.groups) {
    for (int v : group.values)
      if (std::none_of(e.structures.begin(), e.structures.begin() + static_cast<std::ptrdiff_t>(e.label_count),
                       [v](const Structure& s) { return s.values[0] == v; }))
        throw UsageError("--merge " + group.name + ": label " + std::to_string(v) +
                         " is not one of the scored labels; name values the label maps use");
    // Reports name each row once: a group may not take a scored label's name.
    if (std::any_of(e.structures.begin(), e.structures.begin() + static_cast<std::ptrdiff_t>(e.label_count),
                    [&group](const Structure& s) { return s.name == group.name; }))
      throw UsageError("--merge " + group.name + "=...: a scored label is named " + group.name + "; give the group another name");
    e.structures.push_back({group.name, group.values});
  }

  std::vector<bool> in_truth(e.structures.size(), false);
  for (size_t i = 0; i < maps.size(); ++i) {
    const auto& pair = pairing.pairs[i];
    CaseScores c{pair.id, pair.prediction.string(), pair.truth_source, maps[i].truth_geometry.has_spacing, {}};
    // Geometry spacing is (x, y) in ITK's order; the metrics take (row, col).
    const std::array<double, 2> spacing_yx{maps[i].truth_geometry.spacing[1], maps[i].truth_geometry.spacing[0]};
    for (size_t k = 0; k < e.structures.size(); ++k) {
      const auto truth_mask = mask_of(maps[i].truth, e.structures[k].values);
      if (truth_mask.any().item<bool>()) in_truth[k] = true;
      c.scores.push_back(score_masks(mask_of(maps[i].pred, e.structures[k].values), truth_mask, c.has_mm, spacing_yx));
    }
    e.any_mm = e.any_mm || c.has_mm;
    e.cases.push_back(std::move(c));
  }

  for (size_t k = 0; k < e.structures.size(); ++k) {
    auto column = [&](double StructureScore::*member) {
      std::vector<double> values;
      for (const auto& c : e.cases) values.push_back(c.scores[k].*member);
      return summarise(values);
    };
    e.summary.push_back({column(&StructureScore::dice), column(&StructureScore::jaccard), column(&StructureScore::rvd),
                         column(&StructureScore::hd95_px), column(&StructureScore::assd_px), in_truth[k]});
  }
  auto& mean = e.mean_over_labels;
  mean = {0, 0, 0, 0, 0, 0};
  for (size_t k = 0; k < e.label_count; ++k) {
    if (!e.summary[k].in_truth) continue;
    const auto& s = e.summary[k];
    mean.dice += s.dice.mean, mean.jaccard += s.jaccard.mean, mean.rvd += s.rvd.mean;
    mean.hd95_px += s.hd95_px.mean, mean.assd_px += s.assd_px.mean, ++mean.labels;
  }
  for (double* v : {&mean.dice, &mean.jaccard, &mean.rvd, &mean.hd95_px, &mean.assd_px})
    *v = mean.labels > 0 ? *v / static_cast<double>(mean.labels) : kNaN;

  e.truth = pairing.truth;
  e.split = pairing.split;
  e.skipped_without_truth = static_cast<int64_t>(pairing.without_truth.size());
  e.skipped_without_prediction = static_cast<int64_t>(pairing.without_prediction.size());
  e.outside_split = pairing.outside_split;
  return e;
}

}  // namespace seg::io
