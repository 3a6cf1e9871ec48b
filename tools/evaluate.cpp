// seg-evaluate: compares label maps with the truth. Dice and Jaccard (the notebook's
// smoothing), HD95 and ASSD per case and label; CSV, JSON and a summary table.
#include <seg/dataset.h>
#include <seg/error.h>
#include <seg/fs.h>
#include <seg/io/image_io.h>
#include <seg/metrics.h>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "common.h"
#include "support_data.h"
#include "tools.h"

namespace seg::tools {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

// One prediction with its truth, as read.
struct CasePair {
  std::string id;
  std::string pred_source, truth_source;
  at::Tensor pred, truth;  // H x W kByte
  Geometry truth_geometry;
};

// The scores of one case, one entry per reported label.
struct CaseScores {
  std::string id, pred_source, truth_source;
  std::vector<double> dice, jaccard, rvd, hd95, assd, hd95_mm, assd_mm;  // the labels, then the groups
  bool has_mm = false;
};

// Labels scored as one structure (--merge lungs=1,2): how published work scores "the lungs".
struct Group {
  std::string name;
  std::vector<int> values;
};

Group parse_group(const std::string& text) {
  const auto eq = text.find('=');
  const auto bad = [&] {
    return UsageError("--merge " + text + ": write NAME=V1,V2 (label values, e.g. lungs=1,2)");
  };
  if (eq == std::string::npos || eq == 0 || eq + 1 == text.size()) throw bad();
  Group g{text.substr(0, eq), {}};
  std::stringstream values(text.substr(eq + 1));
  for (std::string item; std::getline(values, item, ',');) {
    size_t used = 0;
    int v = -1;
    try {
      v = std::stoi(item, &used);
    } catch (const std::exception&) {
      throw bad();
    }
    if (used != item.size() || v < 1 || v > 255) throw bad();
    g.values.push_back(v);
  }
  if (g.values.size() < 2) throw bad();
  return g;
}

// The pixels whose label is one of `values`.
at::Tensor mask_of(const at::Tensor& labels, const std::vector<int>& values) {
  auto mask = torch::zeros_like(labels, torch::kBool);
  for (int v : values) mask.logical_or_(labels == v);
  return mask;
}

// Where the truth comes from: a file, a folder of label maps, or a data set.
struct TruthSource {
  enum Kind { file, folder, dataset } kind = file;
  fs::path path;
  std::map<std::string, fs::path> files_by_case;  // folder, or a data set folder
  std::optional<Dataset> pack;                    // a tensor pack data set
  std::set<std::string> selected;                 // the cases to evaluate (folder/data set)
  std::set<std::string> known;                    // every case the data set has
  std::optional<ClassTable> classes;
};

std::map<std::string, fs::path> label_files_in(const fs::path& dir) {
  std::map<std::string, fs::path> files;
  std::vector<fs::path> paths;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.is_regular_file() && io::is_image_path(entry.path())) paths.push_back(entry.path());
  std::sort(paths.begin(), paths.end());
  for (const auto& p : paths) {
    const std::string id = io::case_id_of(p);
    auto [it, fresh] = files.emplace(id, p);
    if (!fresh)
      throw Error(p.string(), "case " + id + " also has " + it->second.filename().string() +
                                  " in the same folder; keep one label map per case");
  }
  return files;
}

TruthSource truth_from_data(const std::string& data_path, const std::string& split) {
  TruthSource t;
  t.kind = TruthSource::dataset;
  t.path = data_path;
  std::vector<std::string> cases;
  std::map<std::string, std::vector<std::string>> splits;
  if (is_tensor_pack(data_path)) {
    t.pack = load_data(data_path);
    if (!t.pack->labels.defined())
      throw Error(data_path, "the data set has no label maps to evaluate against");
    cases = t.pack->cases;
    splits = t.pack->splits;
    t.classes = t.pack->classes;
  } else {
    // Read dataset.json and only the truth label maps that are needed (with their spacing).
    fs::path json_path = fs::is_directory(data_path) ? fs::path(data_path) / "dataset.json" : fs::path(data_path);
    auto spec = DatasetSpec::read(json_path);
    if (spec.labels_pattern.empty())
      throw Error(json_path.string(), "the data set names no label maps (\"labels\"); nothing to evaluate against");
    cases = spec.cases;
    splits = spec.splits;
    t.classes = spec.classes;
    for (const auto& c : cases) t.files_by_case[c] = spec.label_path(json_path.parent_path(), c);
  }
  t.known.insert(cases.begin(), cases.end());
  if (split.empty()) {
    t.selected = t.known;
  } else {
    auto it = splits.find(split);
    if (it == splits.end()) {
      std::string names;
      for (const auto& [n, cs] : splits) names += (names.empty() ? "" : ", ") + n;
      throw Error(data_path, "has no split \"" + split + "\" (it has: " + (names.empty() ? "none" : names) +
                                 "); choose one with --split");
    }
    t.selected.insert(it->second.begin(), it->second.end());
  }
  return t;
}

// Reads a label map as H x W kByte, with its geometry.
Image read_labels(const fs::path& path) { return io::read_label_map(path); }

std::string fmt(double v, int precision = 4) {
  if (std::isinf(v)) return "inf";
  std::ostringstream s;
  s << std::fixed << std::setprecision(precision) << v;
  return s.str();
}

json number_or_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

// Mean and sample standard deviation of the finite values, and how many were infinite.
struct Summary {
  double mean = 0, sd = 0;
  int64_t count = 0, infinite = 0;
};
Summary summarise(const std::vector<double>& values) {
  Summary s;
  double sum = 0;
  for (double v : values) {
    if (std::isfinite(v)) {
      sum += v;
      ++s.count;
    } else {
      ++s.infinite;
    }
  }
  if (s.count == 0) {
    s.mean = values.empty() ? 0.0 : std::numeric_limits<double>::infinity();
    return s;
  }
  s.mean = sum / static_cast<double>(s.count);
  double squares = 0;
  for (double v : values)
    if (std::isfinite(v)) squares += (v - s.mean) * (v - s.mean);
  s.sd = s.count > 1 ? std::sqrt(squares / static_cast<double>(s.count - 1)) : 0.0;
  return s;
}

// Left-aligned in `width` characters (UTF-8 aware: "±" is one character, two bytes).
std::string pad(const std::string& text, size_t width) {
  const auto chars = static_cast<size_t>(
      std::count_if(text.begin(), text.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
  return chars >= width ? text + " " : text + std::string(width - chars, ' ');
}

std::string mean_sd(const Summary& s) {
  std::string text = fmt(s.mean) + " ± " + fmt(s.sd);
  if (s.infinite > 0) text += " (" + std::to_string(s.infinite) + " inf)";
  return text;
}

}  // namespace

int evaluate(const Args& args, std::ostream& out, std::ostream& err) {
  return run_tool("evaluate", err, [&]() -> int {
    CLI::App app{
        "Compares predicted label maps with the truth: Dice and Jaccard (the course notebook's\n"
        "definition, (2|P&T| + 1e-8) / (|P| + |T| + 1e-8)), the relative volume difference\n"
        "rvd = (|P| - |T|) / |T| (> 0: too large, < 0: too small), and the surface distances\n"
        "HD95 and ASSD (pixels, and mm where the truth file carries a spacing), per case and label.\n"
        "PRED and TRUTH are two label-map files, or two folders matched by case ID (the file\n"
        "name without extension); or give the truth as a data set with --data [--split].\n"
        "A label missing from both sides scores Dice 1, rvd 0 and distance 0; missing from one\n"
        "side, distance inf, and rvd inf where the truth lacks it (null in JSON). Summary: mean\n"
        "± sample sd over cases (rvd and distances over the finite ones, with the number of inf).",
        "seg-evaluate"};
    add_max_pixels_option(app);
    std::string pred_arg, truth_arg, data_path, split, csv_path, classes_path, json_path;
    std::vector<std::string> merge_args;
    int threads = 0;
    app.add_option("PRED", pred_arg, "predicted label map, or a folder of them")->required();
    app.add_option("TRUTH", truth_arg, "true label map, or a folder of them (or use --data)");
    app.add_option("--data", data_path, "truth from a data set: folder with dataset.json, or a tensor pack");
    app.add_option("--split", split, "with --data: evaluate only this split's cases (e.g. test)");
    app.add_option("--classes", classes_path, "dataset.json whose class names label the output");
    app.add_option("--csv", csv_path, "write per case and label scores to this CSV file");
    app.add_option("--merge", merge_args,
                   "also score labels as one structure, NAME=V1,V2 (repeatable; e.g. --merge lungs=1,2 as "
                   "published work scores the lungs); not part of the mean over labels");
    auto* json_option =
        app.add_option("--json", json_path,
                       "JSON report: to stdout alone (bare --json, placed after PRED TRUTH), or to FILE")
            ->expected(0, 1);
    app.add_option("--threads", threads, "LibTorch threads (default: all cores)");
    if (!parse(app, args, out)) return kOk;
    set_threads(threads);
    std::vector<Group> groups;
    for (const auto& text : merge_args) groups.push_back(parse_group(text));

    const bool want_json = json_option->count() > 0;
    const bool json_to_stdout = want_json && (json_path.empty() || json_path == "-");
    if (want_json && !json_to_stdout) {
      const fs::path p = json_path;
      if (fs::is_directory(p) || io::is_image_path(p))
        throw UsageError("--json " + json_path +
                         ": looks like an input, not a report file; put a bare --json after PRED TRUTH, or name a .json file");
    }
    if (!data_path.empty() && !truth_arg.empty())
      throw UsageError("give the truth either as TRUTH or with --data, not both");
    if (data_path.empty() && truth_arg.empty())
      throw UsageError("no truth: give TRUTH (a file or folder) or --data DIR");
    if (data_path.empty() && !split.empty()) throw UsageError("--split needs --data");
    if (!fs::exists(pred_arg)) throw Error(pred_arg, "no such file or folder; give the predicted label maps");

    // The truth.
    TruthSource truth;
    if (!data_path.empty()) {
      truth = truth_from_data(data_path, split);
    } else if (fs::is_directory(truth_arg)) {
      truth.kind = TruthSource::folder;
      truth.path = truth_arg;
      truth.files_by_case = label_files_in(truth_arg);
      for (const auto& [id, p] : truth.files_by_case) truth.selected.insert(id), truth.known.insert(id);
      if (truth.files_by_case.empty()) throw Error(truth_arg, "holds no label maps (.png, .nii.gz, ...)");
    } else if (fs::exists(truth_arg)) {
      truth.kind = TruthSource::file;
      truth.path = truth_arg;
    } else {
      throw Error(truth_arg, "no such file or folder; give the true label maps");
    }
    if (!classes_path.empty()) {
      fs::path p = fs::is_directory(classes_path) ? fs::path(classes_path) / "dataset.json" : fs::path(classes_path);
      truth.classes = DatasetSpec::read(p).classes;
    }

    // The predictions, matched with their truths.
    std::vector<std::pair<std::string, fs::path>> predictions;  // case ID, file
    if (fs::is_directory(pred_arg)) {
      if (truth.kind == TruthSource::file)
        throw UsageError("PRED is a folder but TRUTH is one file; give a folder of truths or --data");
      for (const auto& [id, p] : label_files_in(pred_arg)) predictions.emplace_back(id, p);
      if (predictions.empty()) throw Error(pred_arg, "holds no label maps (.png, .nii.gz, ...)");
    } else {
      predictions.emplace_back(io::case_id_of(pred_arg), fs::path(pred_arg));
    }
    std::vector<CasePair> pairs;
    int64_t outside_split = 0;
    std::set<std::string> evaluated;
    for (const auto& [id, pred_path] : predictions) {
      CasePair pair;
      pair.id = id;
      pair.pred_source = pred_path.string();
      if (truth.kind != TruthSource::file) {
        if (!truth.known.count(id))
          throw Error(pred_path.string(), "case " + id + " has no truth in " + truth.path.string() +
                                              "; remove the prediction or add its truth");
        if (!truth.selected.count(id)) {
          ++outside_split;
          continue;
        }
      }
      Image pred = read_labels(pred_path);
      pair.pred = pred.pixels;
      if (truth.pack) {
        const auto& d = *truth.pack;
        const auto row = std::find(d.cases.begin(), d.cases.end(), id) - d.cases.begin();
        pair.truth = d.labels[row];
        pair.truth_source = truth.path.string() + "#" + id;
      } else {
        const fs::path truth_path = truth.kind == TruthSource::file ? truth.path : truth.files_by_case.at(id);
        Image t = read_labels(truth_path);
        pair.truth = t.pixels;
        pair.truth_geometry = t.geometry;
        pair.truth_source = truth_path.string();
      }
      if (pair.pred.sizes() != pair.truth.sizes())
        throw Error(pred_path.string(), "is " + std::to_string(pair.pred.size(0)) + "x" +
                                            std::to_string(pair.pred.size(1)) + " (HxW) but its truth " +
                                            pair.truth_source + " is " + std::to_string(pair.truth.size(0)) +
                                            "x" + std::to_string(pair.truth.size(1)) +
                                            "; resample the prediction to the truth's size");
      evaluated.insert(id);
      pairs.push_back(std::move(pair));
    }
    if (pairs.empty())
      throw Error(pred_arg, "no prediction belongs to the chosen cases (split \"" + split + "\"); check --split");
    int64_t truths_skipped = 0;
    if (truth.kind != TruthSource::file)
      for (const auto& id : truth.selected) truths_skipped += evaluated.count(id) ? 0 : 1;

    // The labels to score: the class table's non-zero values, or 1..the largest value seen.
    std::vector<std::pair<int, std::string>> labels;
    std::set<int> values_seen;
    for (const auto& p : pairs)
      for (const auto& t : {p.pred, p.truth}) {
        auto present = std::get<0>(at::_unique(t.flatten())).to(at::kInt).contiguous();
        values_seen.insert(present.data_ptr<int>(), present.data_ptr<int>() + present.numel());
      }
    const int max_seen = *values_seen.rbegin();
    if (truth.classes) {
      for (const auto& [name, value] : truth.classes->entries)
        if (value != 0) labels.emplace_back(value, name);
      for (int v : values_seen)
        if (!truth.classes->contains(v))
          err << "seg-evaluate: warning: label value " << v << " is not in the class table; it is not scored\n";
    } else {
      for (int v = 1; v <= max_seen; ++v) labels.emplace_back(v, "label_" + std::to_string(v));
    }
    if (labels.empty()) throw Error(pred_arg, "no foreground label to score (every map is all 0)");
    for (const auto& g : groups)
      for (int v : g.values)
        if (std::none_of(labels.begin(), labels.end(), [v](const auto& l) { return l.first == v; }))
          throw UsageError("--merge " + g.name + ": label " + std::to_string(v) +
                           " is not one of the scored labels; name values the label maps use");
    const int64_t max_label = labels.back().first + 1;

    std::vector<CaseScores> scores;
    bool any_mm = false;
    for (const auto& p : pairs) {
      CaseScores s;
      s.id = p.id;
      s.pred_source = p.pred_source;
      s.truth_source = p.truth_source;
      const auto dice = seg::dice_per_label(p.pred, p.truth, max_label);
      const auto jaccard = seg::jaccard_per_label(p.pred, p.truth, max_label);
      const auto rvd = seg::volume_difference_per_label(p.pred, p.truth, max_label);
      const auto px = seg::surface_distance_per_label(p.pred, p.truth, max_label);
      s.has_mm = p.truth_geometry.has_spacing;
      // Geometry spacing is (x, y) in ITK's order; the metrics take (row, col).
      const std::array<double, 2> spacing_yx{p.truth_geometry.spacing[1], p.truth_geometry.spacing[0]};
      std::vector<SurfaceDistance> mm;
      if (s.has_mm) mm = seg::surface_distance_per_label(p.pred, p.truth, max_label, spacing_yx);
      for (const auto& [value, name] : labels) {
        const auto i = static_cast<size_t>(value - 1);
        s.dice.push_back(dice[value - 1].item<double>());
        s.jaccard.push_back(jaccard[value - 1].item<double>());
        s.rvd.push_back(rvd[value - 1].item<double>());
        s.hd95.push_back(px[i].hd95);
        s.assd.push_back(px[i].assd);
        if (s.has_mm) {
          s.hd95_mm.push_back(mm[i].hd95);
          s.assd_mm.push_back(mm[i].assd);
        }
      }
      for (const auto& g : groups) {
        const auto pm = mask_of(p.pred, g.values).to(at::kByte), tm = mask_of(p.truth, g.values).to(at::kByte);
        s.dice.push_back(seg::dice_per_label(pm, tm, 2)[0].item<double>());
        s.jaccard.push_back(seg::jaccard_per_label(pm, tm, 2)[0].item<double>());
        s.rvd.push_back(seg::volume_difference_per_label(pm, tm, 2)[0].item<double>());
        const auto d = seg::surface_distance(pm, tm);
        s.hd95.push_back(d.hd95);
        s.assd.push_back(d.assd);
        if (s.has_mm) {
          const auto d_mm = seg::surface_distance(pm, tm, spacing_yx);
          s.hd95_mm.push_back(d_mm.hd95);
          s.assd_mm.push_back(d_mm.assd);
        }
      }
      any_mm = any_mm || s.has_mm;
      scores.push_back(std::move(s));
    }

    // What is scored: each label, then each group; "1" or "1+2" names their values.
    std::vector<std::pair<std::string, std::string>> scored;  // name, values
    for (const auto& [value, name] : labels) scored.emplace_back(name, std::to_string(value));
    for (const auto& g : groups) {
      std::string values;
      for (int v : g.values) values += (values.empty() ? "" : "+") + std::to_string(v);
      scored.emplace_back(g.name, values);
    }

    // Summaries per structure and over labels (the mean of the per-label means; groups apart).
    auto column = [&](size_t k, auto member) {
      std::vector<double> values;
      for (const auto& s : scores) values.push_back((s.*member)[k]);
      return values;
    };
    std::vector<Summary> dice_s, jaccard_s, rvd_s, hd95_s, assd_s;
    for (size_t k = 0; k < scored.size(); ++k) {
      dice_s.push_back(summarise(column(k, &CaseScores::dice)));
      jaccard_s.push_back(summarise(column(k, &CaseScores::jaccard)));
      rvd_s.push_back(summarise(column(k, &CaseScores::rvd)));
      hd95_s.push_back(summarise(column(k, &CaseScores::hd95)));
      assd_s.push_back(summarise(column(k, &CaseScores::assd)));
    }
    auto mean_of_means = [&](const std::vector<Summary>& s) {
      double sum = 0;
      for (size_t l = 0; l < labels.size(); ++l) sum += s[l].mean;
      return sum / static_cast<double>(labels.size());
    };
    const double mean_dice = mean_of_means(dice_s);

    if (!csv_path.empty()) {
      std::ostringstream csv;
      csv << "case,label,name,dice,jaccard,rvd,hd95_px,assd_px" << (any_mm ? ",hd95_mm,assd_mm" : "") << "\n";
      csv << std::setprecision(8);
      for (const auto& s : scores)
        for (size_t k = 0; k < scored.size(); ++k) {
          csv << s.id << "," << scored[k].second << "," << scored[k].first << "," << s.dice[k] << ","
              << s.jaccard[k] << "," << s.rvd[k] << "," << s.hd95[k] << "," << s.assd[k];
          if (any_mm) {
            if (s.has_mm) csv << "," << s.hd95_mm[k] << "," << s.assd_mm[k];
            else csv << ",,";
          }
          csv << "\n";
        }
      write_file_atomically(csv_path, csv.str());
    }

    if (want_json) {
      json report;
      report["truth"] = truth.path.string();
      if (!split.empty()) report["split"] = split;
      report["labels"] = json::array();
      for (const auto& [value, name] : labels) report["labels"].push_back({{"value", value}, {"name", name}});
      report["groups"] = json::array();
      for (const auto& g : groups) report["groups"].push_back({{"name", g.name}, {"values", g.values}});
      report["cases"] = json::array();  // per case: "labels" in order, then "groups"
      for (const auto& s : scores) {
        json c = {{"case", s.id}, {"prediction", s.pred_source}, {"truth", s.truth_source}};
        auto numbers = [](const std::vector<double>& v) {
          json a = json::array();
          for (double x : v) a.push_back(number_or_null(x));
          return a;
        };
        c["dice"] = numbers(s.dice);
        c["jaccard"] = numbers(s.jaccard);
        c["rvd"] = numbers(s.rvd);
        c["hd95_px"] = numbers(s.hd95);
        c["assd_px"] = numbers(s.assd);
        if (s.has_mm) {
          c["hd95_mm"] = numbers(s.hd95_mm);
          c["assd_mm"] = numbers(s.assd_mm);
        }
        report["cases"].push_back(c);
      }
      json per_label = json::array(), summary = json::array();
      auto stat = [](const Summary& s) {
        return json{{"mean", number_or_null(s.mean)}, {"sd", s.sd}, {"cases", s.count}, {"inf", s.infinite}};
      };
      for (size_t k = 0; k < scored.size(); ++k) {
        if (k < labels.size()) per_label.push_back(dice_s[k].mean);
        json entry = {{"name", scored[k].first}, {"dice", stat(dice_s[k])}, {"jaccard", stat(jaccard_s[k])},
                      {"rvd", stat(rvd_s[k])}, {"hd95_px", stat(hd95_s[k])}, {"assd_px", stat(assd_s[k])}};
        if (k < labels.size()) entry["value"] = labels[k].first;
        else entry["values"] = groups[k - labels.size()].values;
        summary.push_back(entry);
      }
      report["mean_dice_per_label"] = per_label;  // in the order of "labels"
      report["mean_dice"] = mean_dice;
      report["summary"] = summary;
      report["cases_evaluated"] = scores.size();
      report["truths_without_prediction"] = truths_skipped;
      report["predictions_outside_split"] = outside_split;
      const std::string text = report.dump(2) + "\n";
      if (json_to_stdout) out << text;
      else write_file_atomically(json_path, text);
    }

    // The summary table goes to stdout, or to stderr when stdout carries the JSON.
    std::ostream& table = json_to_stdout ? err : out;
    size_t name_width = std::string("mean over labels").size();
    for (const auto& [name, values] : scored) name_width = std::max(name_width, name.size() + values.size() + 3);
    table << scores.size() << " case(s) evaluated";
    if (truths_skipped > 0) table << "; " << truths_skipped << " truth(s) without a prediction skipped";
    if (outside_split > 0) table << "; " << outside_split << " prediction(s) outside split " << split << " ignored";
    table << "\n" << pad("label", name_width + 2) << pad("dice", 18) << pad("jaccard", 18) << pad("rvd", 19)
          << pad("hd95 (px)", 24) << "assd (px)\n";
    auto row = [&](size_t k) {
      table << pad(scored[k].first + " (" + scored[k].second + ")", name_width + 2) << pad(mean_sd(dice_s[k]), 18)
            << pad(mean_sd(jaccard_s[k]), 18) << pad(mean_sd(rvd_s[k]), 19) << pad(mean_sd(hd95_s[k]), 24) << mean_sd(assd_s[k]) << "\n";
    };
    for (size_t l = 0; l < labels.size(); ++l) row(l);
    table << pad("mean over labels", name_width + 2) << pad(fmt(mean_dice), 18)
          << pad(fmt(mean_of_means(jaccard_s)), 18) << pad(fmt(mean_of_means(rvd_s)), 19)
          << pad(fmt(mean_of_means(hd95_s)), 24)
          << fmt(mean_of_means(assd_s)) << "\n";
    for (size_t k = labels.size(); k < scored.size(); ++k) row(k);
    return kOk;
  });
}

}  // namespace seg::tools
