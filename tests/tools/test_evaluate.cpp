// seg-evaluate in-process: the notebook's Dice on real cases, hand-checked distances,
// folder matching, data sets, reports and errors.
#include <seg/dataset.h>
#include <seg/fs.h>
#include <seg/io/image_io.h>
#include <seg/metrics.h>
#include <torch/torch.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "test_support.h"
#include "tool_run.h"

namespace fs = std::filesystem;
using nlohmann::json;
using seg::testing::run_tool_in_process;
using seg::testing::ScratchDir;

namespace {

const std::vector<double> kNotebookDice{0.7778, 0.6857, 0.8266, 0.6770, 0.2093};

auto evaluate(const seg::tools::Args& args) { return run_tool_in_process(seg::tools::evaluate, args); }

void write_labels(const fs::path& path, const at::Tensor& pixels, std::array<double, 2> spacing_xy = {1, 1},
                  bool has_spacing = false) {
  fs::create_directories(path.parent_path());
  seg::Image image;
  image.pixels = pixels.to(torch::kByte).contiguous();
  image.pixel_type = "uint8";
  image.geometry.spacing = spacing_xy;
  image.geometry.has_spacing = has_spacing;
  seg::io::write_label_map(path, image);
}

// 10 x 16 maps: label 1 a 4x4 square at columns 2..5 (pred) or 8..11 (truth), whose
// distances are worked out in tests/libseg/test_metrics.cpp (HD95 6, ASSD 4.5 pixels).
at::Tensor square_at(int64_t col) {
  auto m = torch::zeros({10, 16}, torch::kByte);
  m.slice(0, 3, 7).slice(1, col, col + 4).fill_(1);
  return m;
}

}  // namespace

class EvaluateTool : public ::testing::Test {
 protected:
  void SetUp() override { torch::set_num_threads(1); }
};

TEST_F(EvaluateTool, ReproducesTheNotebookDiceOnRealCases) {
  SEG_REQUIRE_JSRT(dir);
  const auto pred = dir / "labels/JPCNN009.png", truth = dir / "labels/JPCNN007.png";
  auto r = evaluate({pred.string(), truth.string(), "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto report = json::parse(r.out);  // stdout holds only the JSON
  ASSERT_EQ(report["labels"].size(), 5u);
  ASSERT_EQ(report["cases"].size(), 1u);
  const auto dice = report["cases"][0]["dice"];
  for (size_t l = 0; l < 5; ++l) EXPECT_NEAR(dice[l].get<double>(), kNotebookDice[l], 1e-4) << "label " << l + 1;
  EXPECT_EQ(report["mean_dice_per_label"], dice);
  double mean = 0;
  for (double d : kNotebookDice) mean += d / 5;
  EXPECT_NEAR(report["mean_dice"].get<double>(), mean, 1e-4);
  EXPECT_NE(r.err.find("mean over labels"), std::string::npos);  // the table went to stderr

  // The library call behind it, with the notebook's max_label = 7 (label 6 absent: 1).
  auto p = seg::io::read_label_map(pred).pixels, t = seg::io::read_label_map(truth).pixels;
  auto d = seg::dice_per_label(p, t, 7);
  for (int64_t l = 0; l < 5; ++l) EXPECT_NEAR(d[l].item<double>(), kNotebookDice[l], 1e-4);
  EXPECT_NEAR(d[5].item<double>(), 1.0, 1e-7);
  // rvd: each structure's area in the one case against the other's.
  for (int64_t l = 1; l <= 5; ++l) {
    const double area_p = p.eq(l).sum().item<double>(), area_t = t.eq(l).sum().item<double>();
    EXPECT_NEAR(report["cases"][0]["rvd"][l - 1].get<double>(), area_p / area_t - 1, 1e-6) << "label " << l;
  }
}

TEST_F(EvaluateTool, FoldersMatchByCaseIdAndSkipTruthsWithoutPrediction) {
  ScratchDir tmp;
  write_labels(tmp / "pred/a.png", square_at(2));
  write_labels(tmp / "truth/a.png", square_at(8));
  write_labels(tmp / "pred/b.png", square_at(2));
  write_labels(tmp / "truth/b.png", square_at(2));
  write_labels(tmp / "truth/c.png", square_at(5));  // no prediction: skipped, counted
  const auto csv = tmp / "scores.csv";
  auto r = evaluate({(tmp / "pred").string(), (tmp / "truth").string(), "--csv", csv.string(), "--json",
                     (tmp / "report.json").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("2 case(s) evaluated; 1 truth(s) without a prediction skipped"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("label_1 (1)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("0.5000 ± 0.7071"), std::string::npos) << r.out;  // Dice of cases a (0) and b (1)

  auto report = json::parse(seg::read_file(tmp / "report.json"));
  EXPECT_EQ(report["truths_without_prediction"].get<int>(), 1);
  ASSERT_EQ(report["cases"].size(), 2u);
  EXPECT_EQ(report["cases"][0]["case"], "a");
  EXPECT_NEAR(report["cases"][0]["dice"][0].get<double>(), 0.0, 1e-6);
  EXPECT_NEAR(report["cases"][0]["hd95_px"][0].get<double>(), 6.0, 1e-9);
  EXPECT_NEAR(report["cases"][0]["assd_px"][0].get<double>(), 4.5, 1e-9);
  EXPECT_NEAR(report["cases"][1]["dice"][0].get<double>(), 1.0, 1e-6);
  EXPECT_EQ(report["cases"][0]["rvd"][0].get<double>(), 0.0);  // same size, elsewhere
  EXPECT_EQ(report["summary"][0]["rvd"]["mean"].get<double>(), 0.0);
  EXPECT_EQ(report["cases"][1]["hd95_px"][0].get<double>(), 0.0);
  EXPECT_FALSE(report["cases"][0].contains("hd95_mm"));  // PNG carries no spacing

  const std::string text = seg::read_file(csv);
  EXPECT_EQ(text.rfind("case,label,name,dice,jaccard,rvd,hd95_px,assd_px\n", 0), 0u) << text;
  EXPECT_NE(text.find("\na,1,label_1,"), std::string::npos) << text;
  EXPECT_NE(text.find(",6,4.5\n"), std::string::npos) << text;
}

TEST_F(EvaluateTool, MissingLabelsAndSpacingInMillimetres) {
  ScratchDir tmp;
  // Columns 0.5 mm, rows 2 mm apart: the horizontal shift of 6 pixels is 3 mm.
  auto truth = square_at(8);
  truth[0][0] = 2;  // label 2 only in the truth: infinite distances, null in JSON
  write_labels(tmp / "truth.nii.gz", truth, {0.5, 2.0}, true);
  write_labels(tmp / "pred.nii.gz", square_at(2), {0.5, 2.0}, true);
  auto r = evaluate({(tmp / "pred.nii.gz").string(), (tmp / "truth.nii.gz").string(), "--json", "-", "--csv",
                     (tmp / "s.csv").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  auto c = json::parse(r.out)["cases"][0];
  EXPECT_NEAR(c["hd95_mm"][0].get<double>(), 3.0, 1e-9);
  EXPECT_NEAR(c["assd_mm"][0].get<double>(), 2.25, 1e-9);
  EXPECT_NEAR(c["hd95_px"][0].get<double>(), 6.0, 1e-9);
  EXPECT_TRUE(c["hd95_px"][1].is_null());
  EXPECT_NEAR(c["dice"][1].get<double>(), 0.0, 1e-6);
  EXPECT_NE(seg::read_file(tmp / "s.csv").find("pred,2,label_2,"), std::string::npos);
  EXPECT_NE(seg::read_file(tmp / "s.csv").find(",inf,inf,inf,inf\n"), std::string::npos) << seg::read_file(tmp / "s.csv");
}

TEST_F(EvaluateTool, TruthFromADataSetSplitWithClassNames) {
  ScratchDir tmp;
  const auto data = tmp / "data";
  write_labels(data / "labels/x.png", square_at(2));
  write_labels(data / "labels/y.png", square_at(3));
  write_labels(data / "labels/z.png", square_at(4));
  seg::write_file_atomically(data / "dataset.json", R"({"name": "squares", "images": "images/{case}.png",
      "labels": "labels/{case}.png", "classes": {"background": 0, "square": 1},
      "split": {"train": ["x"], "test": ["y", "z"]}})");
  write_labels(tmp / "pred/x.png", square_at(2));  // a train case: outside the split, ignored
  write_labels(tmp / "pred/y.png", square_at(3));
  auto r = evaluate({(tmp / "pred").string(), "--data", data.string(), "--split", "test"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("1 case(s) evaluated; 1 truth(s) without a prediction skipped; 1 prediction(s) outside split test ignored"),
            std::string::npos) << r.out;
  EXPECT_NE(r.out.find("square (1)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("1.0000 ± 0.0000"), std::string::npos) << r.out;

  write_labels(tmp / "pred/w.png", square_at(2));  // a case the data set does not have
  auto bad = evaluate({(tmp / "pred").string(), "--data", data.string(), "--split", "test"});
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.err.find("w.png: case w has no truth"), std::string::npos) << bad.err;
  auto no_split = evaluate({(tmp / "pred").string(), "--data", data.string(), "--split", "val"});
  EXPECT_EQ(no_split.code, 1);
  EXPECT_NE(no_split.err.find("no split \"val\""), std::string::npos) << no_split.err;
}

TEST_F(EvaluateTool, ErrorsNameTheFileAndTheExitCodeSaysWhichKind) {
  ScratchDir tmp;
  write_labels(tmp / "pred/a.png", square_at(2));
  write_labels(tmp / "pred/extra.png", square_at(2));
  write_labels(tmp / "truth/a.png", square_at(2));
  auto r = evaluate({(tmp / "pred").string(), (tmp / "truth").string(), "--csv", (tmp / "s.csv").string()});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err.rfind("seg-evaluate: error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find("extra.png: case extra has no truth"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(tmp / "s.csv"));  // nothing written on failure

  write_labels(tmp / "small.png", torch::zeros({5, 5}, torch::kByte));
  auto size = evaluate({(tmp / "small.png").string(), (tmp / "truth/a.png").string()});
  EXPECT_EQ(size.code, 1);
  EXPECT_NE(size.err.find("small.png: is 5x5 (HxW) but its truth"), std::string::npos) << size.err;

  EXPECT_EQ(evaluate({(tmp / "pred").string()}).code, 2);  // no truth
  EXPECT_EQ(evaluate({(tmp / "pred").string(), (tmp / "truth").string(), "--data", tmp.path().string()}).code, 2);
  EXPECT_EQ(evaluate({(tmp / "pred").string(), (tmp / "truth/a.png").string()}).code, 2);  // folder vs file
  auto missing = evaluate({(tmp / "nope").string(), (tmp / "truth").string()});
  EXPECT_EQ(missing.code, 1);
  EXPECT_NE(missing.err.find("nope: no such file"), std::string::npos) << missing.err;
  EXPECT_EQ(evaluate({"--help"}).code, 0);
}

// Two lungs with their sides swapped score 0 each but 1 as one structure, as published
// work scores "the lungs"; the mean over labels leaves the group out.
TEST_F(EvaluateTool, MergedLabelsScoreAsOneStructureApartFromTheMean) {
  ScratchDir tmp;
  auto truth = torch::zeros({10, 16}, torch::kByte), pred = torch::zeros({10, 16}, torch::kByte);
  truth.slice(0, 2, 8).slice(1, 1, 7).fill_(1);
  truth.slice(0, 2, 8).slice(1, 9, 15).fill_(2);
  pred.slice(0, 2, 8).slice(1, 1, 7).fill_(2);
  pred.slice(0, 2, 8).slice(1, 9, 15).fill_(1);
  truth.slice(0, 0, 1).fill_(3);
  pred.slice(0, 0, 1).fill_(3);
  write_labels(tmp / "pred.png", pred);
  write_labels(tmp / "truth.png", truth);
  const auto csv = tmp / "scores.csv";
  auto r = evaluate({(tmp / "pred.png").string(), (tmp / "truth.png").string(), "--merge", "lungs=1,2", "--csv",
                     csv.string(), "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto report = json::parse(r.out);
  ASSERT_EQ(report["groups"].size(), 1u);
  EXPECT_EQ(report["groups"][0]["values"], json({1, 2}));
  const auto dice = report["cases"][0]["dice"];
  ASSERT_EQ(dice.size(), 4u);  // labels 1, 2, 3, then the group
  EXPECT_NEAR(dice[0].get<double>(), 0.0, 1e-6);
  EXPECT_NEAR(dice[1].get<double>(), 0.0, 1e-6);
  EXPECT_NEAR(dice[2].get<double>(), 1.0, 1e-6);
  EXPECT_NEAR(dice[3].get<double>(), 1.0, 1e-6);
  EXPECT_EQ(report["cases"][0]["hd95_px"][3].get<double>(), 0.0);
  EXPECT_NEAR(report["mean_dice"].get<double>(), 1.0 / 3.0, 1e-6);
  EXPECT_EQ(report["mean_dice_per_label"].size(), 3u);
  EXPECT_EQ(report["summary"][3]["name"], "lungs");
  EXPECT_NE(r.err.find("lungs (1+2)"), std::string::npos) << r.err;
  EXPECT_NE(seg::read_file(csv).find("pred,1+2,lungs,1,1,0,0,0\n"), std::string::npos) << seg::read_file(csv);

  for (const char* bad : {"lungs", "lungs=1", "=1,2", "lungs=1,x", "lungs=1,9"}) {
    auto e = evaluate({(tmp / "pred.png").string(), (tmp / "truth.png").string(), "--merge", bad});
    EXPECT_EQ(e.code, 2) << bad;
    EXPECT_NE(e.err.find("--merge"), std::string::npos) << e.err;
  }
}
