// The quality report of seg-segment --qc, and seg-evaluate's check of it against the truth.
#include <seg/error.h>
#include <seg/report_text.h>
#include <seg/fs.h>
#include <seg/io/quality_report.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <map>
#include <numeric>
#include <sstream>

#include "json_text.h"

namespace seg::io {
namespace {
using nlohmann::json;
namespace fs = std::filesystem;

std::vector<std::string> split_line(const std::string& line) {
  std::vector<std::string> fields;
  std::stringstream s(line);
  for (std::string field; std::getline(s, field, ',');) fields.push_back(field);
  if (!line.empty() && line.back() == ',') fields.emplace_back();
  return fields;
}

// Ranks, ties sharing their mean rank.
std::vector<double> ranks(const std::vector<double>& v) {
  std::vector<size_t> order(v.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> r(v.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
    for (size_t k = i; k <= j; ++k) r[order[k]] = 0.5 * static_cast<double>(i + j) + 1.0;
    i = j + 1;
  }
  return r;
}

// Spearman's rank correlation; NaN when either side is constant.
double spearman(const std::vector<double>& a, const std::vector<double>& b) {
  const auto ra = ranks(a), rb = ranks(b);
  const double n = static_cast<double>(a.size());
  const double ma = std::accumulate(ra.begin(), ra.end(), 0.0) / n, mb = std::accumulate(rb.begin(), rb.end(), 0.0) / n;
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < ra.size(); ++i) {
    sab += (ra[i] - ma) * (rb[i] - mb);
    saa += (ra[i] - ma) * (ra[i] - ma);
    sbb += (rb[i] - mb) * (rb[i] - mb);
  }
  return saa > 0 && sbb > 0 ? sab / std::sqrt(saa * sbb) : std::nan("");
}

json number_or_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

}  // namespace

int64_t QualityTable::flagged() const {
  return std::count_if(rows.begin(), rows.end(), [](const QualityRow& r) { return r.flag; });
}

QualityTable quality_table(const QualityRecord& record, const ClassTable& classes) {
  QualityTable table;
  table.structures = record.structures;
  for (const auto& name : record.structures)
    for (const auto& [class_name, value] : classes.entries)
      if (class_name == name) table.values.push_back(value);
  table.features = record.features;
  table.review = record.review;
  table.dice_limit = record.dice_limit;
  return table;
}

void add_estimate(QualityTable& table, const std::string& case_id, const QualityEstimate& estimate,
                  const std::vector<double>& features) {
  table.rows.push_back({case_id, estimate.dice, estimate.score, estimate.flag, estimate.outside, features});
}

std::string quality_csv(const QualityTable& table) {
  std::string csv = "case";
  for (const auto& s : table.structures) csv += ",estimated_dice_" + s;
  csv += ",qc_score,flag";
  for (const auto& f : table.features) csv += "," + f;
  csv += "\n";
  for (const auto& row : table.rows) {
    csv += row.case_id;
    for (double d : row.estimated) csv += "," + number_text(d);
    csv += "," + number_text(row.score) + "," + (row.flag ? "1" : "0");
    for (double f : row.features) csv += "," + number_text(f);
    csv += "\n";
  }
  return csv;
}

std::string quality_json(const QualityTable& table) {
  json films = json::array();
  for (const auto& row : table.rows) {
    json estimated = json::object(), features = json::object();
    for (size_t s = 0; s < table.structures.size(); ++s) estimated[table.structures[s]] = row.estimated[s];
    for (size_t k = 0; k < table.features.size(); ++k) features[table.features[k]] = number_or_null(row.features[k]);
    films.push_back({{"case", row.case_id},
                     {"estimated_dice", estimated},
                     {"qc_score", row.score},
                     {"flag", row.flag},
                     {"outside_range", row.outside},
                     {"features", features}});
  }
  json values = json::object();
  for (size_t s = 0; s < table.values.size() && s < table.structures.size(); ++s) values[table.structures[s]] = table.values[s];
  return detail::json_text(json{{"review", table.review},
                               {"values", values},
                               {"dice_limit", table.dice_limit},
                               {"films", table.rows.size()},
                               {"flagged", table.flagged()},
                               {"estimates", films}},
                          1);
}

std::string quality_summary(const QualityTable& table) {
  return std::to_string(table.flagged()) + " of " + std::to_string(table.rows.size()) + " films flagged for review";
}

QualityTable read_quality_report(const fs::path& csv) {
  const std::string bad = "is not a qc.csv of seg-segment --qc";
  std::istringstream lines(read_file(csv));
  std::string line;
  if (!std::getline(lines, line)) throw Error(csv.string(), "is empty; " + bad);
  const auto header = split_line(line);
  QualityTable table;
  size_t k = 1;
  while (k < header.size() && header[k].rfind("estimated_dice_", 0) == 0) table.structures.push_back(header[k++].substr(15));
  if (header.empty() || header[0] != "case" || table.structures.empty() || k + 1 >= header.size() ||
      header[k] != "qc_score" || header[k + 1] != "flag")
    throw Error(csv.string(), bad + " (its header lacks case, estimated_dice_*, qc_score, flag)");
  table.features.assign(header.begin() + static_cast<std::ptrdiff_t>(k + 2), header.end());
  for (int64_t number_of_line = 2; std::getline(lines, line); ++number_of_line) {
    if (line.empty()) continue;
    const auto fields = split_line(line);
    if (fields.size() != header.size())
      throw Error(csv.string(), "line " + std::to_string(number_of_line) + " has " + std::to_string(fields.size()) +
                                    " fields for " + std::to_string(header.size()) + " columns; " + bad);
    QualityRow row;
    row.case_id = fields[0];
    try {
      for (size_t s = 0; s < table.structures.size(); ++s) row.estimated.push_back(std::stod(fields[1 + s]));
      row.score = std::stod(fields[k]);
      row.flag = fields[k + 1] == "1";
    } catch (const std::exception&) {
      throw Error(csv.string(), "line " + std::to_string(number_of_line) + " holds a value that is not a number; " + bad);
    }
    table.rows.push_back(std::move(row));
  }
  table.review = table.structures;
  const fs::path json_path = csv.parent_path() / "qc.json";
  if (fs::exists(json_path)) {
    try {
      const json j = json::parse(read_file(json_path));
      table.review = j.at("review").get<std::vector<std::string>>();
      table.dice_limit = j.at("dice_limit").get<double>();
      if (j.contains("values"))
        for (const auto& name : table.structures)
          if (j.at("values").contains(name)) table.values.push_back(j.at("values").at(name).get<int>());
      if (table.values.size() != table.structures.size()) table.values.clear();
    } catch (const json::exception& e) {
      throw Error(json_path.string(), "is not a qc.json of seg-segment --qc (" + json_reason(e) + ")");
    }
  }
  return table;
}

double QualityCheck::recall() const {
  return failures > 0 ? static_cast<double>(failures_flagged) / static_cast<double>(failures) : std::nan("");
}
double QualityCheck::flag_rate() const {
  return films > 0 ? static_cast<double>(flagged) / static_cast<double>(films) : std::nan("");
}

QualityCheck check_quality(const QualityTable& table, const Evaluation& evaluation, const std::string& source) {
  std::map<std::string, const QualityRow*> by_case;
  for (const auto& row : table.rows) by_case[row.case_id] = &row;
  // Where each estimated structure is in the evaluation.
  std::vector<int> column(table.structures.size(), -1);
  for (size_t s = 0; s < table.structures.size(); ++s)
    for (size_t k = 0; k < evaluation.label_count; ++k)
      if (evaluation.structures[k].name == table.structures[s]) column[s] = static_cast<int>(k);
  for (size_t s = 0; s < table.values.size(); ++s)
    for (size_t k = 0; k < evaluation.label_count && column[s] < 0; ++k)
      if (evaluation.structures[k].values == std::vector<int>{table.values[s]}) column[s] = static_cast<int>(k);
  if (std::all_of(column.begin(), column.end(), [](int c) { return c < 0; }))
    throw Error(source, "names no structure that the evaluation scores; give the model's class table with --model");
  QualityCheck check;
  check.review = table.review;
  check.dice_limit = table.dice_limit;
  std::vector<std::vector<double>> estimated(table.structures.size()), real(table.structures.size());
  for (const auto& c : evaluation.cases) {
    const auto it = by_case.find(c.id);
    if (it == by_case.end()) continue;
    ++check.films;
    bool failure = false;
    for (size_t s = 0; s < table.structures.size(); ++s) {
      if (column[s] < 0) continue;
      const double dice = c.scores[static_cast<size_t>(column[s])].dice;
      const double real_dice = std::isnan(dice) ? 1.0 : dice;  // absent from both: nothing missed
      estimated[s].push_back(it->second->estimated[s]);
      real[s].push_back(real_dice);
      if (std::find(table.review.begin(), table.review.end(), table.structures[s]) != table.review.end())
        failure = failure || real_dice < table.dice_limit;
    }
    check.failures += failure;
    check.flagged += it->second->flag;
    check.failures_flagged += failure && it->second->flag;
  }
  if (check.films == 0)
    throw Error(source, "no film of qc.csv is among the evaluated cases; give the folder seg-segment --qc wrote");
  for (size_t s = 0; s < table.structures.size(); ++s) {
    if (column[s] < 0) continue;
    QualityCheck::PerStructure p{table.structures[s], 0.0, spearman(estimated[s], real[s]),
                                 static_cast<int64_t>(estimated[s].size())};
    for (size_t i = 0; i < estimated[s].size(); ++i) p.mean_absolute_error += std::abs(estimated[s][i] - real[s][i]);
    p.mean_absolute_error /= static_cast<double>(estimated[s].size());
    check.structures.push_back(p);
  }
  return check;
}

std::string quality_check_text(const QualityCheck& check) {
  std::ostringstream text;
  text << "\nQuality estimate (qc.csv) against the real Dice, " << check.films << " films:\n";
  for (const auto& s : check.structures)
    text << "  " << std::left << std::setw(16) << s.name << " mean absolute error " << std::fixed << std::setprecision(4)
         << s.mean_absolute_error << ", Spearman " << std::setprecision(3) << s.spearman << "\n";
  std::string review;
  for (const auto& name : check.review) review += (review.empty() ? "" : ", ") + name;
  text << "  films with " << review << " below " << std::setprecision(2) << check.dice_limit << ": " << check.failures
       << ", flagged " << check.failures_flagged << " (recall " << std::setprecision(3) << check.recall() << "); "
       << check.flagged << " of " << check.films << " films flagged (" << std::setprecision(1) << 100 * check.flag_rate()
       << " %)\n";
  return text.str();
}

std::string with_quality_check(const std::string& evaluation_json, const QualityCheck& check) {
  json report = json::parse(evaluation_json);
  json structures = json::object();
  for (const auto& s : check.structures)
    structures[s.name] = {{"mean_absolute_error", number_or_null(s.mean_absolute_error)},
                          {"spearman", number_or_null(s.spearman)},
                          {"films", s.films}};
  report["quality_estimate"] = {{"films", check.films},
                                {"structures", structures},
                                {"review", check.review},
                                {"dice_limit", check.dice_limit},
                                {"failures", check.failures},
                                {"failures_flagged", check.failures_flagged},
                                {"recall", number_or_null(check.recall())},
                                {"flagged", check.flagged},
                                {"flag_rate", number_or_null(check.flag_rate())}};
  return report.dump(1);
}

}  // namespace seg::io
