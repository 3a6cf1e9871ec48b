#pragma once
// Scoring predicted label maps against the truth (seg-evaluate): pairing files by case,
// overlap and surface-distance scores per case and label, summaries, and the CSV, JSON and
// table reports. docs/formats.md describes the reports and the label rules.
#include <seg/dataset.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace seg::io {

// Without a class table, a file with more distinct values than this is taken for an image,
// not a label map.
constexpr int64_t kMaxDistinctLabels = 64;

// Where the predictions and their truth are.
struct EvaluationSources {
  std::filesystem::path predictions;  // a label map, or a folder of them (case ID: the file name)
  std::filesystem::path truth;        // a label map or a folder of them; empty when `data` is given
  std::filesystem::path data;         // a data set: folder, its dataset.json, or a tensor pack
  std::string split;                  // with `data`: only this split's cases
};

// One prediction and its truth: a file, or a row of a tensor pack.
struct CasePair {
  std::string id;
  std::filesystem::path prediction;
  std::filesystem::path truth_file;  // empty when the truth is `truth_labels`
  at::Tensor truth_labels;           // H x W kByte, from a tensor pack
  std::string truth_source;          // the truth file, or "<pack>#<case>"
};

struct Pairing {
  std::vector<CasePair> pairs;                  // in case ID order
  std::vector<std::string> without_truth;       // predictions whose case has no truth
  std::vector<std::string> without_prediction;  // truths (of the chosen split) without a prediction
  int64_t outside_split = 0;                    // predictions of the data set's other splits: ignored
  std::optional<ClassTable> classes;            // the data set's class table
  std::string predictions, truth;               // the arguments as given (truth: or the data set)
  std::string split;
  std::vector<std::filesystem::path> inputs;  // every file the evaluation reads, and the label maps beside them it leaves out

  int64_t missing() const { return static_cast<int64_t>(without_truth.size() + without_prediction.size()); }
};

// Matches predictions with truths by case ID. Throws seg::Error for a path that does not
// exist, a folder without label maps, two files of one case in a folder, a data set without
// label maps or without the split (naming the splits it has); seg::UsageError for a folder of
// predictions against one truth file. Missing counterparts are listed, not thrown.
Pairing pair_cases(const EvaluationSources& sources);

// "2 prediction(s) without a truth in T (x, y); 1 truth(s) without a prediction (c)": the
// first few case IDs of each kind and their count. Empty when nothing is missing.
std::string describe_missing(const Pairing& pairing);

// Labels scored as one structure (--merge lungs=1,2), as published work scores "the lungs".
struct LabelGroup {
  std::string name;
  std::vector<int> values;
};

struct EvaluationOptions {
  // The labels to score: the table's non-zero values (a value outside it is an error); without
  // a table, the non-zero values present in any truth or prediction.
  std::optional<ClassTable> classes;
  std::string classes_source;  // where the table came from, for messages
  std::vector<LabelGroup> groups;
};

// A label of the table or a merged group; `values` holds one value for a label.
struct Structure {
  std::string name;
  std::vector<int> values;
  std::string values_text() const;  // "3", or "1+2" for a group
};

// One structure in one case. Every field is NaN where neither side has the structure (not
// applicable) and the mm fields also where the truth carries no spacing; distances are
// +infinity, and rvd too, where only one side has it.
struct StructureScore {
  double dice, jaccard, rvd, hd95_px, assd_px, hd95_mm, assd_mm;
  StructureScore();
  bool applicable() const;
};

struct CaseScores {
  std::string id, prediction, truth;
  bool has_mm = false;
  std::vector<StructureScore> scores;  // in the order of Evaluation::structures
};

// Mean and sample standard deviation of the finite values; NaN values are not applicable.
// mean: NaN when every value is not applicable, +infinity when no finite value is left.
struct Statistic {
  double mean = 0, sd = 0;
  int64_t cases = 0, infinite = 0, not_applicable = 0;
};
Statistic summarise(const std::vector<double>& values);

struct StructureSummary {
  Statistic dice, jaccard, rvd, hd95_px, assd_px;
  bool in_truth = false;  // some truth has it; otherwise it is left out of the mean over labels
};

// The mean of the per-label means over the labels some truth has (NaN when there are none).
struct MeanOverLabels {
  double dice, jaccard, rvd, hd95_px, assd_px;
  int64_t labels = 0;
};

struct Evaluation {
  std::vector<Structure> structures;  // the labels in ascending value, then the groups
  size_t label_count = 0;
  std::vector<CaseScores> cases;
  std::vector<StructureSummary> summary;  // per structure
  MeanOverLabels mean_over_labels;
  bool any_mm = false;
  // From the pairing, for the reports.
  std::string truth, split;
  int64_t skipped_without_truth = 0, skipped_without_prediction = 0, outside_split = 0;

  // The labels no truth has (left out of the mean over labels).
  std::vector<Structure> labels_not_in_truth() const;
};

// Reads every pair and scores it. Throws seg::Error naming the file for a prediction whose size
// differs from its truth's, a value outside the class table, a file with more than
// kMaxDistinctLabels values without a table, or nothing to score; seg::UsageError for a group
// naming a value that is not scored. The pairing's missing cases are counted as skipped.
Evaluation evaluate_cases(const Pairing& pairing, const EvaluationOptions& options);

// Reports: one CSV row per case and structure (RFC 4180 quoting; not applicable: empty fields),
// the JSON report (not applicable and infinite: null), and the summary table.
std::string evaluation_csv(const Evaluation& evaluation);
std::string evaluation_json(const Evaluation& evaluation);
std::string evaluation_table(const Evaluation& evaluation);

}  // namespace seg::io
