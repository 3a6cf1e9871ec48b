// seg-evaluate: compares label maps with the truth (seg::io's evaluation): Dice and Jaccard
// (the notebook's smoothing), rvd, HD95 and ASSD per case and label; CSV, JSON and a table.
#include <seg/dataset.h>
#include <seg/error.h>
#include <seg/fs.h>
#include <seg/io/evaluation.h>
#include <seg/io/image_io.h>
#include <seg/model_file.h>
#include <seg/model_search.h>
#include <seg/output.h>
#include <seg/io/quality_report.h>
#include <seg/quality.h>
#include <seg/segmenter.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <optional>
#include <sstream>
#include <system_error>

#include "common.h"
#include "support_data.h"
#include "tools.h"

namespace seg::tools {
namespace {
namespace fs = std::filesystem;

io::LabelGroup parse_group(const std::string& text) {
  const auto eq = text.find('=');
  const auto bad = [&] { return UsageError("--merge " + text + ": write NAME=V1,V2 (label values, e.g. lungs=1,2)"); };
  // getline drops an empty last item: "x=1,2," would pass for "x=1,2" while "x=1,,2" does not.
  if (eq == std::string::npos || eq == 0 || eq + 1 == text.size() || text.back() == ',') throw bad();
  io::LabelGroup group{text.substr(0, eq), {}};
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
    if (std::find(group.values.begin(), group.values.end(), v) != group.values.end())
      throw UsageError("--merge " + text + ": names label " + std::to_string(v) + " twice; list each label once");
    group.values.push_back(v);
  }
  if (group.values.size() < 2) throw bad();
  return group;
}

// Each --merge group is reported under its name, so two groups may not share one.
std::vector<io::LabelGroup> parse_groups(const std::vector<std::string>& texts) {
  std::vector<io::LabelGroup> groups;
  for (const auto& text : texts) {
    auto group = parse_group(text);
    for (const auto& earlier : groups)
      if (earlier.name == group.name)
        throw UsageError("--merge " + text + ": a group named " + group.name + " is given twice; give each group its own name");
    groups.push_back(std::move(group));
  }
  return groups;
}

// A report file may replace an existing file only with --overwrite, and never an input.
void check_report_path(const fs::path& path, const std::vector<fs::path>& read, bool overwrite) {
  const fs::path folder = path.parent_path().empty() ? fs::path(".") : path.parent_path();
  if (!fs::is_directory(folder))
    throw Error(path.string(), "its folder " + folder.string() + " does not exist; create it first");
  Inputs inputs;
  for (const auto& input : read) add_data_set_input(inputs, input.string());
  check_output_file(path, inputs, overwrite ? Existing::overwrite : Existing::refuse, "choose another name or pass --overwrite");
}

// --fit-qc: fits the model's quality estimator on a split of a data set and its variants made
// in memory, and writes the model with it to a new file.
struct FitRequest {
  std::string model, data, split, out, samples_csv;
  std::vector<std::string> review;
  uint64_t seed = 0;
  double flag_budget = QualityFitOptions{}.flag_budget;
  bool overwrite = false;
};

int fit_quality_estimator(const FitRequest& request, std::ostream& out, std::ostream& err) {
  if (request.out.empty()) throw UsageError("--fit-qc writes a new model file: give it with -o OUT.pth");
  if (request.data.empty()) throw UsageError("--fit-qc needs the films to fit on: give --data DIR (and --split, default train)");
  const fs::path model_file = find_model(request.model);
  const fs::path model_path = fs::is_directory(model_file) ? model_file / "model.pth" : model_file;
  check_report_path(request.out, {model_path, request.data}, request.overwrite);
  if (!request.samples_csv.empty()) {
    if (fs::path(request.samples_csv) == fs::path(request.out)) throw UsageError("--qc-samples and -o name the same file");
    check_report_path(request.samples_csv, {model_path, request.data}, request.overwrite);
  }
  Model model = load_model(model_file);
  const Dataset data = load_data(request.data);
  if (data.classes.entries != model.info.classes.entries)
    throw Error(request.data, "has another class table than " + model_path.string() + "; fit on data labelled as the model was trained");
  const Dataset films = data.subset(request.split);
  const bool has_train = data.splits.count("train") > 0;
  const LabelStatistics statistics = label_statistics((has_train ? data.subset("train") : films).labels, data.classes);
  SegmenterOptions options;  // as seg-segment segments by default
  options.predict.reframe = true;
  options.postprocessing = clean_up_steps({model}, true, {});
  const Segmenter segmenter({model}, options, at::Device(at::kCPU), model_path.string());
  const auto samples = quality_samples(segmenter, films.images, films.labels, statistics, model.info.training_intensity,
                                       request.seed, [&](const std::string& variant) {
                                         err << "seg-evaluate: fitting: " << films.size() << " films " << variant << "\n";
                                       });
  nlohmann::json variants = nlohmann::json::object();
  for (const auto& variant : quality_fitting_variants()) variants[variant.name] = variant.strengths;
  const nlohmann::json fitted_on = {{"dataset", data.name},
                                    {"source", request.data},
                                    {"split", request.split},
                                    {"label_statistics_split", has_train ? "train" : request.split},
                                    {"source_films", films.size()},
                                    {"films", samples.size()},
                                    {"variants", variants},
                                    {"seed", request.seed}};
  QualityFitOptions fit_options;
  fit_options.review = request.review;
  fit_options.flag_budget = request.flag_budget;
  fit_options.fitted_on_json = fitted_on.dump();
  model.info.quality = std::make_shared<const QualityRecord>(fit_quality(samples, data.classes, statistics, fit_options));
  if (!request.samples_csv.empty()) write_file_atomically(request.samples_csv, quality_samples_csv(samples, data.classes));
  save_model(model, request.out);
  out << "quality estimator " << quality_record_summary(*model.info.quality) << "\nwritten with the model to "
      << request.out << "\n";
  return kOk;
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
        "Labels: the class table of --classes, --model or --data, else the values present. A label\n"
        "absent from both sides of a case is not applicable there (empty in CSV, null in JSON);\n"
        "missing from one side: Dice 0, distance inf. A label in no truth is left out of the mean.\n"
        "A case without a prediction or a truth stops the run unless --skip-missing.",
        "seg-evaluate"};
    add_max_pixels_option(app);
    std::string pred_arg, truth_arg, data_path, split, csv_path, classes_path, model_path, json_path;
    std::vector<std::string> merge_args;
    bool skip_missing = false, overwrite = false;
    int threads = 0;
    app.add_option("PRED", pred_arg,
                   "predicted label map, or a folder of them (a folder with the qc.csv of seg-segment --qc: the "
                   "estimate is checked too)");
    app.add_option("TRUTH", truth_arg, "true label map, or a folder of them (or use --data)");
    app.add_option("--data", data_path, "truth from a data set: folder with dataset.json, or a tensor pack");
    app.add_option("--split", split, "with --data: evaluate only this split's cases (e.g. test)");
    app.add_option("--classes", classes_path, "dataset.json whose class table gives the labels to score");
    app.add_option("--model", model_path, "model file, run folder or model name whose class table gives the labels to score");
    app.add_option("--csv", csv_path, "write per case and label scores to this CSV file (- for stdout)");
    app.add_option("--merge", merge_args,
                   "also score labels as one structure, NAME=V1,V2 (repeatable; e.g. --merge lungs=1,2 as "
                   "published work scores the lungs); not part of the mean over labels");
    auto* json_option =
        app.add_option("--json", json_path,
                       "JSON report: to stdout alone (bare --json, placed after PRED TRUTH), or to FILE")
            ->expected(0, 1);
    app.add_flag("--skip-missing", skip_missing, "score the cases that have both files; count the others");
    app.add_flag("--overwrite", overwrite, "replace existing report files");
    app.add_option("--threads", threads, "LibTorch threads (default: all cores)");
    FitRequest fit;
    app.add_option("--fit-qc", fit.model,
                   "instead of scoring: fit MODEL's quality estimator (seg-segment --qc) on --data's --split (default "
                   "train) and variants of its films made to fail, and write the model with it to -o OUT.pth");
    app.add_option("-o,--out", fit.out, "with --fit-qc: the new model file");
    app.add_option("--review", fit.review,
                   "with --fit-qc: the structures whose Dice below 0.90 asks for review (default: all)")
        ->delimiter(',');
    app.add_option("--seed", fit.seed, "with --fit-qc: seed of the variants")->capture_default_str();
    app.add_option("--qc-budget", fit.flag_budget,
                   "with --fit-qc: the share of the fitting films that pass which the review threshold may flag (it "
                   "flags more where 70 % of the failures need it)")
        ->check(CLI::Range(0.0, 0.99))
        ->capture_default_str();
    app.add_option("--qc-samples", fit.samples_csv,
                   "with --fit-qc: also write the fitting films' real Dice and features to this CSV file");
    if (!parse(app, args, out)) return kOk;
    set_threads(threads);
    if (!fit.model.empty()) {
      if (!pred_arg.empty() || !truth_arg.empty())
        throw UsageError("--fit-qc segments the films of --data itself; give no PRED or TRUTH");
      fit.data = data_path;
      fit.split = split.empty() ? "train" : split;
      fit.overwrite = overwrite;
      return fit_quality_estimator(fit, out, err);
    }
    if (!fit.out.empty() || !fit.review.empty() || !fit.samples_csv.empty() || app.count("--qc-budget") > 0)
      throw UsageError("-o, --review, --qc-budget and --qc-samples go with --fit-qc");
    if (pred_arg.empty()) throw UsageError("PRED is required: the predicted label map or folder (run with --help for more information)");
    io::EvaluationOptions options;
    options.groups = parse_groups(merge_args);

    const bool want_json = json_option->count() > 0;
    const bool json_to_stdout = want_json && (json_path.empty() || json_path == "-");
    const bool csv_to_stdout = csv_path == "-";
    const bool csv_to_file = !csv_path.empty() && !csv_to_stdout;
    if (csv_to_stdout && json_to_stdout)
      throw UsageError("--csv - and --json both write to stdout; send one of them to a file");
    // A bare --json before PRED takes PRED for its file name.
    if (want_json && !json_to_stdout && (fs::is_directory(json_path) || io::is_image_path(json_path)))
      throw UsageError(
          "--json " + json_path +
          ": looks like an input, not a report file; put a bare --json after PRED TRUTH, or name a .json file");
    if (!data_path.empty() && !truth_arg.empty())
      throw UsageError("give the truth either as TRUTH or with --data, not both");
    if (data_path.empty() && truth_arg.empty())
      throw UsageError("no truth: give TRUTH (a file or folder) or --data DIR");
    if (data_path.empty() && !split.empty()) throw UsageError("--split needs --data");
    if (!classes_path.empty() && !model_path.empty())
      throw UsageError("give the class table either with --classes or with --model, not both");
    const auto resolved = [](const std::string& path) { return fs::weakly_canonical(fs::absolute(path)); };
    if (csv_to_file && want_json && !json_to_stdout && resolved(csv_path) == resolved(json_path))
      throw UsageError("--csv and --json name the same file; give each its own");

    if (!truth_arg.empty() && fs::exists(pred_arg) && fs::exists(truth_arg) && fs::equivalent(pred_arg, truth_arg))
      throw UsageError("PRED and TRUTH are the same " + std::string(fs::is_directory(pred_arg) ? "folder" : "file") + " (" +
                       pred_arg + "); give the predictions and the true label maps");
    auto pairing = io::pair_cases({pred_arg, truth_arg, data_path, split});
    options.classes = pairing.classes;
    options.classes_source = data_path;
    if (!classes_path.empty()) {
      const fs::path p =
          fs::is_directory(classes_path) ? fs::path(classes_path) / "dataset.json" : fs::path(classes_path);
      options.classes = DatasetSpec::read(p).classes;
      options.classes_source = p.string();
      pairing.inputs.push_back(p);
    } else if (!model_path.empty()) {
      const fs::path model = find_model(model_path);
      options.classes = load_model(model).info.classes;
      options.classes_source = model.string();
      pairing.inputs.push_back(fs::is_directory(model) ? model / "model.pth" : model);
    }
    // seg-segment --qc's files beside the predictions are read below.
    for (const char* name : {"qc.csv", "qc.json"})
      if (fs::is_directory(pred_arg) && fs::exists(fs::path(pred_arg) / name)) pairing.inputs.push_back(fs::path(pred_arg) / name);
    if (csv_to_file) check_report_path(csv_path, pairing.inputs, overwrite);
    if (want_json && !json_to_stdout) check_report_path(json_path, pairing.inputs, overwrite);
    if (pairing.missing() > 0 && !skip_missing)
      throw Error(pred_arg, io::describe_missing(pairing) + "; add them, or pass --skip-missing to score the rest");

    const auto evaluation = io::evaluate_cases(pairing, options);
    // seg-segment --qc's estimate, when the predictions' folder holds one.
    const fs::path qc_csv = fs::path(pred_arg) / "qc.csv";
    std::optional<io::QualityCheck> quality;
    if (fs::is_directory(pred_arg) && fs::exists(qc_csv))
      quality = io::check_quality(io::read_quality_report(qc_csv), evaluation, qc_csv.string());
    for (const auto& label : evaluation.labels_not_in_truth())
      err << "seg-evaluate: warning: class " << label.name << " (" << label.values_text()
          << ") has no pixels in any truth; left out of the mean\n";
    if (csv_to_stdout)
      out << io::evaluation_csv(evaluation);
    else if (csv_to_file)
      write_file_atomically(csv_path, io::evaluation_csv(evaluation));
    if (want_json) {
      const std::string report =
          quality ? io::with_quality_check(io::evaluation_json(evaluation), *quality) : io::evaluation_json(evaluation);
      if (json_to_stdout)
        out << report;
      else
        write_file_atomically(json_path, report);
    }
    // The table goes to stdout, or to stderr when stdout carries the JSON or the CSV.
    (json_to_stdout || csv_to_stdout ? err : out) << io::evaluation_table(evaluation) << (quality ? io::quality_check_text(*quality) : "");
    return kOk;
  });
}

}  // namespace seg::tools
