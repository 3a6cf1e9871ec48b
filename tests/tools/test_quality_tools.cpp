// Quality control through the tools: seg-segment --qc (its error without an estimator, its
// qc.csv) and seg-evaluate's check of the estimate against the truth.
#include <seg/io/image_io.h>
#include <seg/model_file.h>
#include <seg/models.h>
#include <seg/quality.h>
#include <torch/torch.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "fixtures.h"
#include "shapes_dataset.h"
#include "test_support.h"
#include "tool_run.h"

namespace {
namespace fs = std::filesystem;
using seg::testing::run_tool_in_process;

auto segment(const seg::tools::Args& args) { return run_tool_in_process(seg::tools::segment, args); }
auto evaluate(const seg::tools::Args& args) { return run_tool_in_process(seg::tools::evaluate, args); }

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::stringstream s(text);
  for (std::string line; std::getline(s, line);) lines.push_back(line);
  return lines;
}

void write_map(const fs::path& path, const at::Tensor& pixels) {
  fs::create_directories(path.parent_path());
  seg::io::write_label_map(path, seg::testing::image_of(pixels.to(torch::kByte), "uint8"));
}

// An untrained fcn of three classes at 32 x 32, saved, and three films to segment.
class QualityTools : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::manual_seed(5);
    model_.info.network = {"fcn", 1, 3};
    model_.info.classes = seg::ClassTable::numbered(3);
    model_.info.input_size = {32, 32};
    model_.net = seg::make_network(model_.info.network);
    seg::save_model(model_, dir_ / "plain.pth");
    fs::create_directories(dir_ / "films");
    for (const char* name : {"a", "b", "c"})
      seg::io::write_image(dir_ / "films" / (std::string(name) + ".png"),
                           seg::testing::image_of(torch::randint(0, 255, {32, 32}).to(torch::kByte), "uint8"));
  }

  // The model with an estimator fitted on made-up samples.
  fs::path model_with_record() {
    std::vector<seg::QualitySample> samples;
    const auto n = seg::quality_feature_names(model_.info.classes).size();
    for (int64_t i = 0; i < 30; ++i) {
      const auto x = torch::rand({static_cast<int64_t>(n)}, torch::kDouble);
      std::vector<double> features(x.data_ptr<double>(), x.data_ptr<double>() + n);
      samples.push_back({features, {0.8 + 0.2 * features[0], 0.95}, i, "made-up"});
    }
    const auto stats = seg::label_statistics(torch::zeros({1, 32, 32}, torch::kByte), model_.info.classes);
    seg::Model with = model_;
    with.info.quality = std::make_shared<const seg::QualityRecord>(seg::fit_quality(samples, model_.info.classes, stats, {}));
    seg::save_model(with, dir_ / "qc.pth");
    return dir_ / "qc.pth";
  }

  seg::testing::ScratchDir dir_{"quality-tools"};
  seg::Model model_;
};

TEST_F(QualityTools, QcWithoutARecordIsOneErrorLineAndWritesNothing) {
  const auto r = segment({(dir_ / "films").string(), "--model", (dir_ / "plain.pth").string(), "-o",
                          (dir_ / "out").string(), "--qc", "--threads", "1"});
  EXPECT_EQ(r.code, 1);
  ASSERT_EQ(lines_of(r.err).size(), 1u) << r.err;
  EXPECT_EQ(r.err.rfind("seg-segment: error: " + (dir_ / "plain.pth").string() + ": has no quality record", 0), 0u) << r.err;
  EXPECT_NE(r.err.find("seg-evaluate --fit-qc"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "out") && !fs::is_empty(dir_ / "out"));
}

TEST_F(QualityTools, QcWritesOneRowPerFilmWithEstimatesScoreFlagAndFeatures) {
  const auto model = model_with_record();
  const auto r = segment({(dir_ / "films").string(), "--model", model.string(), "-o", (dir_ / "out").string(), "--qc",
                          "--threads", "1"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find(" of 3 films flagged for review"), std::string::npos) << r.out;
  const auto csv = lines_of(read_text(dir_ / "out" / "qc.csv"));
  ASSERT_EQ(csv.size(), 4u);
  std::string header = "case,estimated_dice_label_1,estimated_dice_label_2,qc_score,flag";
  for (const auto& name : seg::quality_feature_names(model_.info.classes)) header += "," + name;
  EXPECT_EQ(csv[0], header);
  EXPECT_EQ(csv[1].substr(0, 2), "a,");
  const size_t columns = static_cast<size_t>(std::count(header.begin(), header.end(), ','));
  for (size_t i = 1; i < csv.size(); ++i) EXPECT_EQ(static_cast<size_t>(std::count(csv[i].begin(), csv[i].end(), ',')), columns);
  const auto report = nlohmann::json::parse(read_text(dir_ / "out" / "qc.json"));
  EXPECT_EQ(report["estimates"].size(), 3u);
  EXPECT_EQ(report["review"], nlohmann::json({"label_1", "label_2"}));
}

TEST_F(QualityTools, EvaluateReportsTheEstimatesErrorCorrelationAndRecall) {
  // Truth: a 4 x 4 square; predictions: the same (a, c; Dice 1), half of it (b; 0.5), nothing (d; 0).
  auto truth = torch::zeros({10, 10}, torch::kByte);
  truth.narrow(0, 2, 4).narrow(1, 2, 4).fill_(1);
  auto half = torch::zeros({10, 10}, torch::kByte);
  half.narrow(0, 2, 4).narrow(1, 4, 4).fill_(1);
  for (const char* c : {"a", "b", "c", "d"}) write_map(dir_ / "truth" / (std::string(c) + ".png"), truth);
  write_map(dir_ / "pred" / "a.png", truth);
  write_map(dir_ / "pred" / "b.png", half);
  write_map(dir_ / "pred" / "c.png", truth);
  write_map(dir_ / "pred" / "d.png", torch::zeros({10, 10}, torch::kByte));
  std::ofstream(dir_ / "pred" / "qc.csv") << "case,estimated_dice_label_1,qc_score,flag,agreement_label_1\n"
                                             "a,0.9,0.9,0,1\nb,0.6,0.6,1,1\nc,0.95,0.95,1,1\nd,0.2,0.2,0,1\n";
  const auto r = evaluate({(dir_ / "pred").string(), (dir_ / "truth").string(), "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto q = nlohmann::json::parse(r.out)["quality_estimate"];
  EXPECT_EQ(q["films"], 4);
  EXPECT_NEAR(q["structures"]["label_1"]["mean_absolute_error"].get<double>(), (0.1 + 0.1 + 0.05 + 0.2) / 4, 1e-9);
  EXPECT_NEAR(q["structures"]["label_1"]["spearman"].get<double>(), 4.5 / std::sqrt(22.5), 1e-9);
  EXPECT_EQ(q["failures"], 2);          // b and d below 0.90
  EXPECT_EQ(q["failures_flagged"], 1);  // b
  EXPECT_NEAR(q["recall"].get<double>(), 0.5, 1e-12);
  EXPECT_NEAR(q["flag_rate"].get<double>(), 0.5, 1e-12);
  EXPECT_NE(r.err.find("recall 0.500"), std::string::npos) << r.err;  // the table, on stderr beside --json
}

// --fit-qc on a small data set: an untrained network fails every film, so the threshold comes
// from the recall alone; the record keeps the rule's parameters, the CSV one row per fitting film.
TEST(QualityFit, FitQcWritesTheRuleIntoTheRecordAndTheFittingFilmsToCsv) {
  seg::testing::ScratchDir dir("quality-fit");
  torch::manual_seed(2);
  seg::Model model;
  model.info.network = {"fcn", 1, 4};
  const auto data = seg::testing::shapes_dataset(8, 32, 32, 6);
  model.info.classes = data.classes;
  model.info.input_size = {32, 32};
  model.net = seg::make_network(model.info.network);
  seg::save_model(model, dir / "plain.pth");
  seg::save_tensor_pack(data, dir / "shapes.pth");
  const auto r = evaluate({"--fit-qc", (dir / "plain.pth").string(), "--data", (dir / "shapes.pth").string(), "-o",
                           (dir / "qc.pth").string(), "--qc-budget", "0.05", "--qc-samples", (dir / "fit.csv").string(),
                           "--threads", "1"});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto record = seg::load_model(dir / "qc.pth").info.quality;
  ASSERT_TRUE(record);
  EXPECT_DOUBLE_EQ(record->flag_budget, 0.05);
  EXPECT_DOUBLE_EQ(record->threshold, std::max(record->recall_threshold, record->budget_threshold));
  EXPECT_NE(r.out.find("at most 5 % of those that pass"), std::string::npos) << r.out;
  const auto fitted_on = nlohmann::json::parse(record->fitted_on_json);
  EXPECT_EQ(fitted_on["variants"].size(), seg::quality_fitting_variants().size());
  EXPECT_DOUBLE_EQ(fitted_on["variants"]["texture-0.4"]["texture"].get<double>(), 1.0);
  const auto csv = lines_of(read_text(dir / "fit.csv"));
  ASSERT_EQ(csv.size(), 1 + 6 * seg::quality_fitting_variants().size());
  EXPECT_EQ(csv[0].rfind("variant,film,dice_disc,dice_rectangle,dice_ring,agreement_disc", 0), 0u) << csv[0];
  EXPECT_EQ(csv[1].rfind("as-is,0,", 0), 0u) << csv[1];
  EXPECT_EQ(csv.back().rfind("everything,5,", 0), 0u) << csv.back();
}

// Command lines that misuse the fitting options: one line on stderr, exit 2, nothing written.
struct BadFitOptions {
  const char* name;
  std::vector<std::string> args;  // after the model; {dir} stands for the scratch folder
};
void PrintTo(const BadFitOptions& c, std::ostream* os) { *os << c.name; }
class QualityFitUsage : public ::testing::TestWithParam<BadFitOptions> {};

TEST_P(QualityFitUsage, IsOneUsageLineAndWritesNothing) {
  seg::testing::ScratchDir dir("quality-fit-usage");
  seg::Model model;
  model.info.network = {"fcn", 1, 4};
  const auto data = seg::testing::shapes_dataset(4, 16, 16, 4);
  model.info.classes = data.classes;
  model.info.input_size = {16, 16};
  model.net = seg::make_network(model.info.network);
  seg::save_model(model, dir / "plain.pth");
  seg::save_tensor_pack(data, dir / "shapes.pth");
  seg::tools::Args args;
  for (auto arg : GetParam().args) {
    for (size_t at; (at = arg.find("{dir}")) != std::string::npos;) arg.replace(at, 5, dir.path().string());
    args.push_back(arg);
  }
  const auto r = evaluate(args);
  EXPECT_EQ(r.code, 2) << r.err;
  ASSERT_EQ(lines_of(r.err).size(), 1u) << r.err;
  EXPECT_EQ(r.err.rfind("seg-evaluate: error: ", 0), 0u) << r.err;
  EXPECT_FALSE(fs::exists(dir / "qc.pth"));
  EXPECT_FALSE(fs::exists(dir / "fit.csv"));
}

INSTANTIATE_TEST_SUITE_P(
    Cases, QualityFitUsage,
    ::testing::Values(
        BadFitOptions{"BudgetWithoutFitQc", {"{dir}/pred", "{dir}/truth", "--qc-budget", "0.1"}},
        BadFitOptions{"SamplesWithoutFitQc", {"{dir}/pred", "{dir}/truth", "--qc-samples", "{dir}/fit.csv"}},
        BadFitOptions{"BudgetOfAllFilms",
                      {"--fit-qc", "{dir}/plain.pth", "--data", "{dir}/shapes.pth", "-o", "{dir}/qc.pth", "--qc-budget", "1"}},
        BadFitOptions{"NegativeBudget",
                      {"--fit-qc", "{dir}/plain.pth", "--data", "{dir}/shapes.pth", "-o", "{dir}/qc.pth", "--qc-budget", "-0.1"}},
        BadFitOptions{"SamplesOverTheModel",
                      {"--fit-qc", "{dir}/plain.pth", "--data", "{dir}/shapes.pth", "-o", "{dir}/qc.pth", "--qc-samples",
                       "{dir}/qc.pth"}}),
    [](const ::testing::TestParamInfo<BadFitOptions>& info) { return std::string(info.param.name); });

}  // namespace
