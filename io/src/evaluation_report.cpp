// The reports of an evaluation: CSV, JSON and the summary table.
#include <seg/io/evaluation.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <sstream>

#include "json_text.h"

namespace seg::io {
namespace {
using nlohmann::json;

// Scores in text: empty when not applicable, "inf" when infinite.
std::string number_text(double v) {
  if (std::isnan(v)) return "";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  std::ostringstream s;
  s << std::setprecision(8) << v;
  return s.str();
}

// RFC 4180: a field with a comma, quote, CR or LF goes in quotes, its quotes doubled.
std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

json number_or_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

std::string fixed(double v) {
  if (std::isnan(v)) return "n/a";
  if (std::isinf(v)) return "inf";
  std::ostringstream s;
  s << std::fixed << std::setprecision(4) << v;
  return s.str();
}

// Left-aligned in `width` characters (UTF-8 aware: "±" is one character, two bytes).
std::string pad(const std::string& text, size_t width) {
  const auto chars = static_cast<size_t>(
      std::count_if(text.begin(), text.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
  return chars >= width ? text + " " : text + std::string(width - chars, ' ');
}

std::string mean_sd(const Statistic& s) {
  if (s.cases == 0) return fixed(s.mean) + (s.infinite > 0 ? " (" + std::to_string(s.infinite) + " inf)" : "");
  std::string text = fixed(s.mean) + " ± " + fixed(s.sd);
  if (s.infinite > 0) text += " (" + std::to_string(s.infinite) + " inf)";
  return text;
}

}  // namespace

std::string evaluation_csv(const Evaluation& e) {
  std::string csv =
      std::string("case,label,name,dice,jaccard,rvd,hd95_px,assd_px") + (e.any_mm ? ",hd95_mm,assd_mm" : "") + "\n";
  for (const auto& c : e.cases)
    for (size_t k = 0; k < e.structures.size(); ++k) {
      const auto& s = c.scores[k];
      csv += csv_field(c.id) + "," + csv_field(e.structures[k].values_text()) + "," + csv_field(e.structures[k].name);
      for (double v : {s.dice, s.jaccard, s.rvd, s.hd95_px, s.assd_px}) csv += "," + number_text(v);
      if (e.any_mm) csv += "," + number_text(s.hd95_mm) + "," + number_text(s.assd_mm);
      csv += "\n";
    }
  return csv;
}

std::string evaluation_json(const Evaluation& e) {
  json report;
  report["truth"] = e.truth;
  if (!e.split.empty()) report["split"] = e.split;
  report["labels"] = json::array();
  report["groups"] = json::array();
  for (size_t k = 0; k < e.structures.size(); ++k) {
    const auto& s = e.structures[k];
    if (k < e.label_count)
      report["labels"].push_back({{"value", s.values[0]}, {"name", s.name}, {"in_truth", e.summary[k].in_truth}});
    else
      report["groups"].push_back({{"name", s.name}, {"values", s.values}});
  }
  report["cases"] = json::array();  // per case: arrays over "labels" in order, then "groups"
  for (const auto& c : e.cases) {
    json entry = {{"case", c.id}, {"prediction", c.prediction}, {"truth", c.truth}};
    auto numbers = [&](double StructureScore::*member) {
      json a = json::array();
      for (const auto& s : c.scores) a.push_back(number_or_null(s.*member));
      return a;
    };
    entry["applicable"] = json::array();
    for (const auto& s : c.scores) entry["applicable"].push_back(s.applicable());
    entry["dice"] = numbers(&StructureScore::dice);
    entry["jaccard"] = numbers(&StructureScore::jaccard);
    entry["rvd"] = numbers(&StructureScore::rvd);
    entry["hd95_px"] = numbers(&StructureScore::hd95_px);
    entry["assd_px"] = numbers(&StructureScore::assd_px);
    if (c.has_mm) {
      entry["hd95_mm"] = numbers(&StructureScore::hd95_mm);
      entry["assd_mm"] = numbers(&StructureScore::assd_mm);
    }
    report["cases"].push_back(entry);
  }
  auto stat = [](const Statistic& s) {
    return json{{"mean", number_or_null(s.mean)},
                {"sd", s.sd},
                {"cases", s.cases},
                {"inf", s.infinite},
                {"not_applicable", s.not_applicable}};
  };
  json per_label = json::array(), summary = json::array(), left_out = json::array();
  for (size_t k = 0; k < e.structures.size(); ++k) {
    const auto& s = e.summary[k];
    json entry = {{"name", e.structures[k].name}, {"dice", stat(s.dice)},       {"jaccard", stat(s.jaccard)},
                  {"rvd", stat(s.rvd)},           {"hd95_px", stat(s.hd95_px)}, {"assd_px", stat(s.assd_px)}};
    if (k < e.label_count) {
      entry["value"] = e.structures[k].values[0];
      entry["in_truth"] = s.in_truth;
      per_label.push_back(number_or_null(s.dice.mean));
      if (!s.in_truth) left_out.push_back(e.structures[k].name);
    } else {
      entry["values"] = e.structures[k].values;
    }
    summary.push_back(entry);
  }
  report["mean_dice_per_label"] = per_label;  // in the order of "labels"
  report["mean_dice"] = number_or_null(e.mean_over_labels.dice);
  report["labels_left_out_of_mean"] = left_out;
  report["summary"] = summary;
  report["cases_evaluated"] = e.cases.size();
  report["truths_without_prediction"] = e.skipped_without_prediction;
  report["predictions_without_truth"] = e.skipped_without_truth;
  report["predictions_outside_split"] = e.outside_split;
  return detail::json_text(report, 2) + "\n";
}

std::string evaluation_table(const Evaluation& e) {
  std::ostringstream table;
  table << e.cases.size() << " case(s) evaluated";
  if (e.skipped_without_prediction > 0)
    table << "; " << e.skipped_without_prediction << " truth(s) without a prediction skipped";
  if (e.skipped_without_truth > 0) table << "; " << e.skipped_without_truth << " prediction(s) without a truth skipped";
  if (e.outside_split > 0) table << "; " << e.outside_split << " prediction(s) outside split " << e.split << " ignored";
  table << "\n";

  std::vector<std::string> names;
  for (size_t k = 0; k < e.structures.size(); ++k)
    names.push_back(e.structures[k].name + " (" + e.structures[k].values_text() + ")" +
                    (k < e.label_count && !e.summary[k].in_truth ? " no truth" : ""));
  size_t width = std::string("mean over labels").size();
  for (const auto& n : names) width = std::max(width, n.size());
  table << pad("label", width + 2) << pad("dice", 18) << pad("jaccard", 18) << pad("rvd", 19) << pad("hd95 (px)", 24)
        << pad("assd (px)", 24) << "cases\n";
  auto row = [&](size_t k) {
    const auto& s = e.summary[k];
    table << pad(names[k], width + 2) << pad(mean_sd(s.dice), 18) << pad(mean_sd(s.jaccard), 18)
          << pad(mean_sd(s.rvd), 19) << pad(mean_sd(s.hd95_px), 24) << pad(mean_sd(s.assd_px), 24) << s.dice.cases
          << (s.dice.not_applicable > 0 ? " (" + std::to_string(s.dice.not_applicable) + " n/a)" : "") << "\n";
  };
  for (size_t k = 0; k < e.label_count; ++k) row(k);
  const auto& m = e.mean_over_labels;
  table << pad("mean over labels", width + 2) << pad(fixed(m.dice), 18) << pad(fixed(m.jaccard), 18)
        << pad(fixed(m.rvd), 19) << pad(fixed(m.hd95_px), 24) << pad(fixed(m.assd_px), 24) << m.labels << " label(s)\n";
  for (size_t k = e.label_count; k < e.structures.size(); ++k) row(k);
  return table.str();
}

}  // namespace seg::io
