#pragma once
// seg-segment --qc's report (qc.csv, qc.json) and seg-evaluate's check of it against the truth:
// how far the estimated Dice lay from the real one, and how many failures the flag caught.
#include <seg/io/evaluation.h>
#include <seg/quality.h>

#include <filesystem>
#include <string>
#include <vector>

namespace seg::io {

// One film's estimate.
struct QualityRow {
  std::string case_id;
  std::vector<double> estimated;  // per structure
  double score = 0.0;
  bool flag = false;
  std::vector<std::string> outside;  // features outside the record's range
  std::vector<double> features;
};

struct QualityTable {
  std::vector<std::string> structures, features;
  std::vector<int> values;          // the structures' label values (empty when not known)
  std::vector<std::string> review;  // the structures qc_score and the flag look at
  double dice_limit = 0.90;
  std::vector<QualityRow> rows;
  int64_t flagged() const;
};

// The table of films' estimates under `record`, for a model of class table `classes`.
QualityTable quality_table(const QualityRecord& record, const ClassTable& classes);
void add_estimate(QualityTable& table, const std::string& case_id, const QualityEstimate& estimate,
                  const std::vector<double>& features);

// qc.csv: case, estimated_dice_<structure>..., qc_score, flag, then the features; qc.json: the
// same with the review structures, the limit and which features lay outside their range.
std::string quality_csv(const QualityTable& table);
std::string quality_json(const QualityTable& table);
// "3 of 87 films flagged for review"
std::string quality_summary(const QualityTable& table);

// Reads OUT/qc.csv (and the review structures, limit and label values from qc.json beside it,
// when there);
// seg::Error naming the file when it is not such a table.
QualityTable read_quality_report(const std::filesystem::path& csv);

// The estimate against the real Dice of the same films.
struct QualityCheck {
  struct PerStructure {
    std::string name;
    double mean_absolute_error = 0.0, spearman = 0.0;
    int64_t films = 0;
  };
  std::vector<PerStructure> structures;
  std::vector<std::string> review;
  double dice_limit = 0.90;
  int64_t films = 0, failures = 0, flagged = 0, failures_flagged = 0;
  double recall() const;     // of the films with a review structure below dice_limit (NaN when none)
  double flag_rate() const;  // of all films
};
// Films are matched by case ID, structures by name or else by label value (an evaluation without
// a class table names its labels label_<v>); films without an estimate are left out. seg::Error
// when no film or no structure matches.
QualityCheck check_quality(const QualityTable& table, const Evaluation& evaluation, const std::string& source);

std::string quality_check_text(const QualityCheck& check);
// The evaluation's JSON report with "quality_estimate" added.
std::string with_quality_check(const std::string& evaluation_json, const QualityCheck& check);

}  // namespace seg::io
