// seg::io's evaluation without a process: pairing, the label rules (not applicable, labels in
// no truth, values outside the table, images refused), summaries and the reports.
#include <seg/error.h>
#include <seg/fs.h>
#include <seg/io/evaluation.h>
#include <seg/io/image_io.h>
#include <torch/torch.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <limits>

#include "fixtures.h"
#include "test_support.h"

namespace fs = std::filesystem;
namespace io = seg::io;
using nlohmann::json;
using seg::testing::contains;
using seg::testing::error_of;
using seg::testing::image_of;
using seg::testing::ScratchDir;

namespace {

const std::vector<double> kNotebookDice{0.7778, 0.6857, 0.8266, 0.6770, 0.2093};

void write_labels(const fs::path& path, const at::Tensor& pixels) {
  fs::create_directories(path.parent_path());
  io::write_label_map(path, image_of(pixels.to(torch::kByte), "uint8"));
}

// 10 x 16 maps: label 1 a 4x4 square at columns col..col+3.
at::Tensor square_at(int64_t col) {
  auto m = torch::zeros({10, 16}, torch::kByte);
  m.slice(0, 3, 7).slice(1, col, col + 4).fill_(1);
  return m;
}

// Label 1 a 4x6 block on the left, label 2 a 4x6 block on the right.
at::Tensor two_blocks() {
  auto m = torch::zeros({10, 16}, torch::kByte);
  m.slice(0, 3, 7).slice(1, 1, 7).fill_(1);
  m.slice(0, 3, 7).slice(1, 9, 15).fill_(2);
  return m;
}

io::Evaluation evaluate_files(const fs::path& pred, const fs::path& truth, const io::EvaluationOptions& options = {}) {
  return io::evaluate_cases(io::pair_cases({pred, truth, {}, {}}), options);
}

// A small RFC 4180 reader: quoted fields may hold commas, quotes (doubled) and line breaks.
std::vector<std::vector<std::string>> parse_csv(const std::string& text) {
  std::vector<std::vector<std::string>> rows(1, std::vector<std::string>(1));
  bool quoted = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    auto& field = rows.back().back();
    if (quoted) {
      if (c != '"') {
        field += c;
      } else if (i + 1 < text.size() && text[i + 1] == '"') {
        field += '"';
        ++i;
      } else {
        quoted = false;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      rows.back().emplace_back();
    } else if (c == '\n') {
      rows.emplace_back(1);
    } else {
      field += c;
    }
  }
  if (rows.back() == std::vector<std::string>(1)) rows.pop_back();  // after the last line break
  return rows;
}

}  // namespace

class Evaluation : public ::testing::Test {
 protected:
  void SetUp() override { torch::set_num_threads(1); }
  ScratchDir tmp{"seg-evaluation"};
};

TEST_F(Evaluation, ReproducesTheNotebookDiceOnRealCases) {
  SEG_REQUIRE_JSRT(dir);
  const auto pairing = io::pair_cases({dir / "labels/JPCNN009.png", dir / "labels/JPCNN007.png", {}, {}});
  // Values present: labels 1..5, as many as the JSRT class table names.
  for (const bool with_table : {false, true}) {
    io::EvaluationOptions options;
    if (with_table) options.classes = seg::DatasetSpec::read(dir / "dataset.json").classes;
    const auto e = io::evaluate_cases(pairing, options);
    ASSERT_EQ(e.label_count, 5u);
    EXPECT_EQ(e.structures[0].name, with_table ? "right_lung" : "label_1");
    for (size_t l = 0; l < 5; ++l) EXPECT_NEAR(e.cases[0].scores[l].dice, kNotebookDice[l], 1e-4) << "label " << l + 1;
    double mean = 0;
    for (double d : kNotebookDice) mean += d / 5;
    EXPECT_NEAR(e.mean_over_labels.dice, mean, 1e-4);
  }
}

// One stray pixel of 255 in a prediction made a label of its own that every other case scored
// as Dice 1; it is in no truth now, so it stays out of the mean, which can only fall.
TEST_F(Evaluation, OneStrayPixelOf255DoesNotRaiseTheMean) {
  auto truth = two_blocks(), pred = two_blocks();
  pred.slice(0, 3, 7).slice(1, 1, 3).fill_(0);  // label 1 too small: Dice below 1
  write_labels(tmp / "truth.png", truth);
  write_labels(tmp / "clean.png", pred);
  pred[4][10] = 255;  // on a pixel of label 2 that was right
  write_labels(tmp / "stray.png", pred);
  const auto clean = evaluate_files(tmp / "clean.png", tmp / "truth.png");
  const auto stray = evaluate_files(tmp / "stray.png", tmp / "truth.png");
  EXPECT_LT(clean.mean_over_labels.dice, 1.0);
  EXPECT_LT(stray.mean_over_labels.dice, clean.mean_over_labels.dice);
  EXPECT_EQ(stray.mean_over_labels.labels, 2);
  ASSERT_EQ(stray.label_count, 3u);
  ASSERT_EQ(stray.labels_not_in_truth().size(), 1u);
  EXPECT_EQ(stray.labels_not_in_truth()[0].values_text(), "255");
  EXPECT_NEAR(stray.cases[0].scores[2].dice, 0.0, 1e-6);  // scored where the prediction has it
  EXPECT_EQ(json::parse(io::evaluation_json(stray))["labels_left_out_of_mean"], json::array({"label_255"}));
}

// A label neither side of a case has is not applicable there: no score, not in its mean.
TEST_F(Evaluation, NotApplicableLabelsStayOutOfMeansAndReports) {
  auto with_both = two_blocks(), pred_a = two_blocks();
  pred_a.slice(0, 3, 5).slice(1, 9, 15).fill_(0);  // label 2 half found: Dice 2/3
  write_labels(tmp / "pred/a.png", pred_a);
  write_labels(tmp / "truth/a.png", with_both);
  write_labels(tmp / "pred/b.png", square_at(2));  // label 2 on neither side
  write_labels(tmp / "truth/b.png", square_at(2));
  const auto e = evaluate_files(tmp / "pred", tmp / "truth");
  ASSERT_EQ(e.cases.size(), 2u);
  EXPECT_TRUE(e.cases[1].scores[0].applicable());
  EXPECT_FALSE(e.cases[1].scores[1].applicable());
  const auto& label2 = e.summary[1];
  EXPECT_EQ(label2.dice.cases, 1);
  EXPECT_EQ(label2.dice.not_applicable, 1);
  EXPECT_NEAR(label2.dice.mean, 2.0 / 3.0, 1e-6);  // not (2/3 + 1) / 2
  EXPECT_NEAR(e.mean_over_labels.dice, (1.0 + 2.0 / 3.0) / 2, 1e-6);

  const auto rows = parse_csv(io::evaluation_csv(e));
  ASSERT_EQ(rows.size(), 5u);
  EXPECT_EQ(rows[4], (std::vector<std::string>{"b", "2", "label_2", "", "", "", "", ""}));
  EXPECT_EQ(rows[3][3], "1");

  const auto report = json::parse(io::evaluation_json(e));
  EXPECT_TRUE(report["cases"][1]["dice"][1].is_null());
  EXPECT_TRUE(report["cases"][1]["hd95_px"][1].is_null());
  EXPECT_EQ(report["cases"][1]["applicable"], json({true, false}));
  EXPECT_EQ(report["summary"][1]["dice"]["not_applicable"].get<int>(), 1);
  EXPECT_NEAR(report["mean_dice_per_label"][1].get<double>(), 2.0 / 3.0, 1e-6);
  EXPECT_TRUE(contains(io::evaluation_table(e), "(1 n/a)"));
}

TEST_F(Evaluation, AClassInNoTruthIsLeftOutOfTheMeanOverLabels) {
  write_labels(tmp / "pred.png", square_at(2));
  write_labels(tmp / "truth.png", square_at(2));
  io::EvaluationOptions options;
  options.classes = seg::ClassTable{{{"background", 0}, {"square", 1}, {"clavicle", 5}}};
  const auto e = evaluate_files(tmp / "pred.png", tmp / "truth.png", options);
  ASSERT_EQ(e.label_count, 2u);
  EXPECT_FALSE(e.summary[1].in_truth);
  EXPECT_EQ(e.labels_not_in_truth()[0].name, "clavicle");
  EXPECT_TRUE(std::isnan(e.summary[1].dice.mean));  // not applicable in the one case
  EXPECT_NEAR(e.mean_over_labels.dice, 1.0, 1e-9);
  EXPECT_EQ(e.mean_over_labels.labels, 1);
  EXPECT_TRUE(json::parse(io::evaluation_json(e))["mean_dice_per_label"][1].is_null());
}

TEST_F(Evaluation, AGreyScaleImageIsNotALabelMap) {
  const auto grey = torch::arange(0, 160, torch::kInt).reshape({10, 16}).to(torch::kByte);
  write_labels(tmp / "grey.png", grey);
  write_labels(tmp / "truth.png", square_at(2));
  const auto message = error_of([&] { evaluate_files(tmp / "grey.png", tmp / "truth.png"); });
  EXPECT_TRUE(contains(message, "grey.png: holds 160 distinct values")) << message;
  EXPECT_TRUE(contains(message, "--classes")) << message;
  // At the bound it is still a label map.
  const auto many = (torch::arange(0, 160, torch::kInt) % io::kMaxDistinctLabels).reshape({10, 16});
  write_labels(tmp / "many.png", many);
  EXPECT_EQ(evaluate_files(tmp / "many.png", tmp / "truth.png").label_count,
            static_cast<size_t>(io::kMaxDistinctLabels - 1));
}

TEST_F(Evaluation, AValueOutsideTheClassTableIsAnError) {
  auto pred = square_at(2);
  pred[0][0] = 3;
  write_labels(tmp / "pred.png", pred);
  write_labels(tmp / "truth.png", square_at(2));
  io::EvaluationOptions options;
  options.classes = seg::ClassTable{{{"background", 0}, {"square", 1}, {"circle", 2}}};
  options.classes_source = "classes.json";
  const auto message = error_of([&] { evaluate_files(tmp / "pred.png", tmp / "truth.png", options); });
  EXPECT_TRUE(
      contains(message, "pred.png: holds label value 3, which the class table of classes.json lacks (it has 0, 1, 2)"))
      << message;
}

TEST_F(Evaluation, CsvQuotesFieldsAsRfc4180) {
  const std::string odd_case = "a,\"b\"", odd_name = "upper, \"left\"\nlobe";
  write_labels(tmp / "pred" / (odd_case + ".png"), square_at(2));
  write_labels(tmp / "truth" / (odd_case + ".png"), square_at(3));
  io::EvaluationOptions options;
  options.classes = seg::ClassTable{{{"background", 0}, {odd_name, 1}}};
  const auto text = io::evaluation_csv(evaluate_files(tmp / "pred", tmp / "truth", options));
  EXPECT_TRUE(contains(text, "\"a,\"\"b\"\"\",1,\"upper, \"\"left\"\"\nlobe\",")) << text;
  const auto rows = parse_csv(text);
  ASSERT_EQ(rows.size(), 2u) << text;
  ASSERT_EQ(rows[1].size(), 8u) << text;
  EXPECT_EQ(rows[1][0], odd_case);
  EXPECT_EQ(rows[1][2], odd_name);
  EXPECT_NEAR(std::stod(rows[1][3]), 0.75, 1e-6);  // 12 of 16 pixels in common
}

TEST_F(Evaluation, MissingCounterpartsAreListedTogether) {
  for (const char* c : {"a", "b", "x", "y"}) write_labels(tmp / "pred" / (std::string(c) + ".png"), square_at(2));
  for (const char* c : {"a", "b", "c", "d", "e", "f", "g", "h", "i"})
    write_labels(tmp / "truth" / (std::string(c) + ".png"), square_at(2));
  const auto pairing = io::pair_cases({tmp / "pred", tmp / "truth", {}, {}});
  EXPECT_EQ(pairing.pairs.size(), 2u);
  EXPECT_EQ(pairing.without_truth, (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(pairing.missing(), 9);
  const auto text = io::describe_missing(pairing);
  EXPECT_TRUE(contains(text, "2 prediction(s) without a truth in " + (tmp / "truth").string() + " (x, y)")) << text;
  EXPECT_TRUE(contains(text, "7 truth(s) without a prediction (c, d, e, f, g and 2 more)")) << text;

  // Scoring the rest counts what was skipped.
  const auto e = io::evaluate_cases(pairing, {});
  EXPECT_EQ(e.cases.size(), 2u);
  EXPECT_EQ(e.skipped_without_truth, 2);
  EXPECT_EQ(e.skipped_without_prediction, 7);
  const auto report = json::parse(io::evaluation_json(e));
  EXPECT_EQ(report["predictions_without_truth"].get<int>(), 2);
  EXPECT_EQ(report["truths_without_prediction"].get<int>(), 7);
  EXPECT_TRUE(contains(
      io::evaluation_table(e),
      "2 case(s) evaluated; 7 truth(s) without a prediction skipped; 2 prediction(s) without a truth skipped"));
  EXPECT_TRUE(io::describe_missing(io::pair_cases({tmp / "pred/a.png", tmp / "truth/a.png", {}, {}})).empty());
}

TEST_F(Evaluation, DataSetSplitsChooseTheCases) {
  seg::Dataset d;
  d.name = "squares";
  d.images = torch::zeros({3, 10, 16}, torch::kByte);
  d.labels = torch::stack({square_at(2), square_at(3), square_at(4)});
  d.cases = {"x", "y", "z"};
  d.classes = seg::ClassTable{{{"background", 0}, {"square", 1}}};
  d.splits = {{"train", {"x"}}, {"test", {"y", "z"}}};
  seg::save_tensor_pack(d, tmp / "pack.pth");
  write_labels(tmp / "pred/x.png", square_at(2));  // a train case: outside the split
  write_labels(tmp / "pred/y.png", square_at(3));
  write_labels(tmp / "pred/w.png", square_at(3));  // in no split of the data set
  const auto pairing = io::pair_cases({tmp / "pred", {}, tmp / "pack.pth", "test"});
  EXPECT_EQ(pairing.outside_split, 1);
  EXPECT_EQ(pairing.without_truth, std::vector<std::string>{"w"});
  EXPECT_EQ(pairing.without_prediction, std::vector<std::string>{"z"});
  ASSERT_EQ(pairing.pairs.size(), 1u);
  EXPECT_EQ(pairing.pairs[0].truth_source, (tmp / "pack.pth").string() + "#y");
  ASSERT_TRUE(pairing.classes.has_value());
  const auto e = io::evaluate_cases(pairing, {pairing.classes, "pack", {}});
  EXPECT_EQ(e.structures[0].name, "square");
  EXPECT_NEAR(e.cases[0].scores[0].dice, 1.0, 1e-9);

  const auto message = error_of([&] { io::pair_cases({tmp / "pred", {}, tmp / "pack.pth", "val"}); });
  EXPECT_TRUE(contains(message, "pack.pth: has no split \"val\" (it has: test, train)")) << message;
}

TEST(EvaluationSummary, MeanAndSampleSdOverFiniteValuesCountingTheRest) {
  const double inf = std::numeric_limits<double>::infinity(), na = std::nan("");
  const auto s = io::summarise({1.0, 3.0, inf, na, na});
  EXPECT_DOUBLE_EQ(s.mean, 2.0);
  EXPECT_DOUBLE_EQ(s.sd, std::sqrt(2.0));
  EXPECT_EQ(s.cases, 2);
  EXPECT_EQ(s.infinite, 1);
  EXPECT_EQ(s.not_applicable, 2);
  EXPECT_TRUE(std::isinf(io::summarise({inf, na}).mean));
  EXPECT_TRUE(std::isnan(io::summarise({na}).mean));
  EXPECT_EQ(io::summarise({0.5}).sd, 0.0);
}
