// seg-evaluate in-process: the notebook's Dice on real cases, hand-checked distances,
// folder matching, data sets, class tables, reports and errors.
#include <seg/dataset.h>
#include <seg/fs.h>
#include <seg/io/image_io.h>
#include <seg/metrics.h>
#include <seg/model_file.h>
#include <seg/models.h>
#include <torch/torch.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <memory>

#include "fixtures.h"
#include "scoped_working_dir.h"
#include "test_support.h"
#include "tool_run.h"

namespace fs = std::filesystem;
using nlohmann::json;
using seg::testing::list_files;
using seg::testing::run_tool_in_process;
using seg::testing::ScopedWorkingDir;
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

  // The data set's class table names the same five labels.
  auto named = evaluate({pred.string(), truth.string(), "--classes", (dir / "dataset.json").string(), "--json"});
  ASSERT_EQ(named.code, 0) << named.err;
  const auto named_report = json::parse(named.out);
  ASSERT_EQ(named_report["labels"].size(), 5u);
  EXPECT_EQ(named_report["labels"][0]["name"], "right_lung");
  EXPECT_EQ(named_report["mean_dice_per_label"], report["mean_dice_per_label"]);
}

// One pixel of 255 in a prediction used to add labels 6..255, each absent from both sides and
// so scoring Dice 1, which lifted the mean over labels towards 1. Label 255 is in no truth now:
// reported, scored where it is, and left out of the mean, which falls by the pixel it took.
TEST_F(EvaluateTool, AStrayPixelOf255DoesNotRaiseTheMean) {
  SEG_REQUIRE_JSRT(dir);
  ScratchDir tmp;
  const auto truth = dir / "labels/JPCNN007.png";
  auto pred = seg::io::read_label_map(dir / "labels/JPCNN009.png");
  // A pixel of the right lung that the truth has too.
  const auto lung = ((pred.pixels == 1) & (seg::io::read_label_map(truth).pixels == 1)).nonzero()[0];
  pred.pixels[lung[0].item<int64_t>()][lung[1].item<int64_t>()] = 255;
  seg::io::write_label_map(tmp / "stray.png", pred);
  auto clean = evaluate({(dir / "labels/JPCNN009.png").string(), truth.string(), "--json"});
  auto r = evaluate({(tmp / "stray.png").string(), truth.string(), "--json"});
  ASSERT_EQ(clean.code, 0) << clean.err;
  ASSERT_EQ(r.code, 0) << r.err;
  const auto report = json::parse(r.out);
  const double clean_mean = json::parse(clean.out)["mean_dice"].get<double>();
  EXPECT_LT(report["mean_dice"].get<double>(), clean_mean);
  EXPECT_GT(report["mean_dice"].get<double>(), clean_mean - 0.01);
  ASSERT_EQ(report["labels"].size(), 6u);  // 1..5 and 255
  EXPECT_EQ(report["labels"][5]["value"], 255);
  EXPECT_EQ(report["labels"][5]["in_truth"], false);
  EXPECT_NE(r.err.find("seg-evaluate: warning: class label_255 (255) has no pixels in any truth; left out of the mean"),
            std::string::npos) << r.err;
}

TEST_F(EvaluateTool, FoldersMatchByCaseIdAndTruthsWithoutPredictionNeedSkipMissing) {
  ScratchDir tmp;
  write_labels(tmp / "pred/a.png", square_at(2));
  write_labels(tmp / "truth/a.png", square_at(8));
  write_labels(tmp / "pred/b.png", square_at(2));
  write_labels(tmp / "truth/b.png", square_at(2));
  write_labels(tmp / "truth/c.png", square_at(5));  // no prediction
  const auto csv = tmp / "scores.csv";
  const seg::tools::Args args{(tmp / "pred").string(), (tmp / "truth").string(), "--csv", csv.string(), "--json",
                              (tmp / "report.json").string()};
  auto stopped = evaluate(args);
  EXPECT_EQ(stopped.code, 1);
  EXPECT_NE(stopped.err.find("1 truth(s) without a prediction (c); add them, or pass --skip-missing"), std::string::npos)
      << stopped.err;
  EXPECT_FALSE(fs::exists(csv));

  auto with_skip = args;
  with_skip.push_back("--skip-missing");
  auto r = evaluate(with_skip);
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
  // z, a test case, has no prediction: listed, and scored around with --skip-missing.
  auto stopped = evaluate({(tmp / "pred").string(), "--data", data.string(), "--split", "test"});
  EXPECT_EQ(stopped.code, 1);
  EXPECT_NE(stopped.err.find("1 truth(s) of split test without a prediction (z)"), std::string::npos) << stopped.err;
  auto r = evaluate({(tmp / "pred").string(), "--data", data.string(), "--split", "test", "--skip-missing"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("1 case(s) evaluated; 1 truth(s) without a prediction skipped; 1 prediction(s) outside split test ignored"),
            std::string::npos) << r.out;
  EXPECT_NE(r.out.find("square (1)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("1.0000 ± 0.0000"), std::string::npos) << r.out;

  // A prediction of a case the data set does not have follows the same rule.
  write_labels(tmp / "pred/w.png", square_at(2));
  write_labels(tmp / "pred/z.png", square_at(4));
  auto unknown = evaluate({(tmp / "pred").string(), "--data", data.string(), "--split", "test"});
  EXPECT_EQ(unknown.code, 1);
  EXPECT_NE(unknown.err.find("1 prediction(s) without a truth in " + data.string() + " (w)"), std::string::npos)
      << unknown.err;
  auto skipped = evaluate({(tmp / "pred").string(), "--data", data.string(), "--split", "test", "--skip-missing", "--json"});
  ASSERT_EQ(skipped.code, 0) << skipped.err;
  EXPECT_EQ(json::parse(skipped.out)["predictions_without_truth"].get<int>(), 1);
  EXPECT_EQ(json::parse(skipped.out)["cases_evaluated"].get<int>(), 2);
}

TEST_F(EvaluateTool, ReportsReplaceFilesOnlyWithOverwriteAndNeverAnInput) {
  ScratchDir tmp;
  write_labels(tmp / "pred.png", square_at(2));
  write_labels(tmp / "truth.png", square_at(3));
  const auto csv = tmp / "scores.csv";
  seg::write_file_atomically(csv, "old\n");
  const seg::tools::Args args{(tmp / "pred.png").string(), (tmp / "truth.png").string(), "--csv", csv.string()};
  auto refused = evaluate(args);
  EXPECT_EQ(refused.code, 1);
  EXPECT_NE(refused.err.find("scores.csv: exists; choose another name or pass --overwrite"), std::string::npos)
      << refused.err;
  EXPECT_EQ(seg::read_file(csv), "old\n");
  auto replaced_args = args;
  replaced_args.push_back("--overwrite");
  ASSERT_EQ(evaluate(replaced_args).code, 0);
  EXPECT_EQ(seg::read_file(csv).rfind("case,label,name,", 0), 0u);
}

// --csv - writes the CSV to stdout, as --json - does the JSON; the table then goes to stderr,
// and no file named "-" appears.
TEST_F(EvaluateTool, CsvToStdout) {
  ScratchDir tmp;
  write_labels(tmp / "pred.png", square_at(2));
  write_labels(tmp / "truth.png", square_at(3));
  ScopedWorkingDir in(tmp.path());
  auto r = evaluate({"pred.png", "truth.png", "--csv", "-"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("case,label,name,dice,", 0), 0u) << r.out;
  EXPECT_NE(r.err.find("1 case(s) evaluated"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(tmp / "-"));
}

// File names need not be UTF-8 (a byte 0xFF is a valid name on Linux); the JSON report, which
// must be, holds U+FFFD for such bytes instead of stopping.
TEST_F(EvaluateTool, JsonReportOfNamesThatAreNotUtf8) {
  ScratchDir tmp;
  write_labels(tmp / "pred" / "\xff.png", square_at(2));
  write_labels(tmp / "truth" / "\xff.png", square_at(3));
  auto r = evaluate({(tmp / "pred").string(), (tmp / "truth").string(), "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto report = json::parse(r.out);
  EXPECT_EQ(report["cases"][0]["case"], "\xef\xbf\xbd");
  EXPECT_EQ(report["cases_evaluated"], 1);
}

TEST_F(EvaluateTool, HelpSaysWhereTheLabelsComeFrom) {
  auto r = evaluate({"--help"});
  EXPECT_EQ(r.code, 0);
  for (const char* option : {"--classes", "--model", "--skip-missing", "--overwrite"})
    EXPECT_NE(r.out.find(option), std::string::npos) << option;
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

// Bad input, one named case each: the exit code, one error line naming the file or option and
// what is wrong, and no report written.
namespace {

// Arguments starting "IN/" name the shared inputs, "OUT/" the case's own output folder.
struct BadEvaluation {
  std::string name;
  seg::tools::Args args;
  int code;
  std::vector<std::string> mentions;
};
void PrintTo(const BadEvaluation& c, std::ostream* os) { *os << c.name; }

// The inputs the cases share, made once: square maps in pred/ and truth/ (cases a, b), a data
// set of the same cases, a grey-scale image, a label map with value 3, a model with 2 classes.
class BadEvaluationInputs {
 public:
  BadEvaluationInputs() {
    for (const char* c : {"a", "b"}) {
      write_labels(dir_ / "pred" / (std::string(c) + ".png"), square_at(2));
      write_labels(dir_ / "truth" / (std::string(c) + ".png"), square_at(3));
      write_labels(dir_ / "data/labels" / (std::string(c) + ".png"), square_at(3));
    }
    seg::write_file_atomically(dir_ / "data/dataset.json", R"({"images": "images/{case}.png", "labels": "labels/{case}.png",
        "classes": {"background": 0, "square": 1}, "split": {"train": ["a"], "test": ["b"]}})");
    write_labels(dir_ / "grey.png", torch::arange(0, 160, torch::kInt).reshape({10, 16}));
    auto three = square_at(2);
    three[0][0] = 3;
    write_labels(dir_ / "three.png", three);
    write_labels(dir_ / "small.png", torch::zeros({5, 5}, torch::kByte));
    write_labels(dir_ / "truth-short/a.png", square_at(3));
    seg::io::write_image(dir_ / "fraction.nii.gz", seg::testing::image_of(torch::full({10, 16}, 0.5), "float32"));
    seg::Model model;
    model.info.network = {"fcn", 1, 2};
    model.info.classes = seg::ClassTable{{{"background", 0}, {"square", 1}}};
    model.info.input_size = {10, 16};
    model.net = seg::make_network(model.info.network);
    seg::save_model(model, dir_ / "model.pth");
  }
  const fs::path& root() const { return dir_.path(); }

 private:
  ScratchDir dir_{"seg-evaluate-bad"};
};

class EvaluateBadInput : public ::testing::TestWithParam<BadEvaluation> {
 protected:
  static void SetUpTestSuite() {
    torch::set_num_threads(1);
    inputs_ = std::make_unique<BadEvaluationInputs>();
  }
  static void TearDownTestSuite() { inputs_.reset(); }
  static std::unique_ptr<BadEvaluationInputs> inputs_;
};
std::unique_ptr<BadEvaluationInputs> EvaluateBadInput::inputs_;

const std::vector<BadEvaluation> kBadEvaluations = {
    {"GreyScaleImageAsPrediction", {"IN/grey.png", "IN/truth/a.png", "--csv", "OUT/m.csv"}, 1,
     {"grey.png", "160 distinct values", "--classes"}},
    {"ValueOutsideTheClasses", {"IN/three.png", "IN/truth/a.png", "--classes", "IN/data", "--csv", "OUT/m.csv"}, 1,
     {"three.png", "label value 3", "dataset.json"}},
    {"ValueOutsideTheModelsClasses", {"IN/three.png", "IN/truth/a.png", "--model", "IN/model.pth"}, 1,
     {"three.png", "label value 3", "model.pth"}},
    {"NonIntegerPrediction", {"IN/fraction.nii.gz", "IN/truth/a.png"}, 1, {"fraction.nii.gz", "non-integer"}},
    {"MissingPrediction", {"IN/none.png", "IN/truth/a.png"}, 1, {"none.png", "no such file"}},
    {"MissingModel", {"IN/pred/a.png", "IN/truth/a.png", "--model", "IN/none.pth"}, 1, {"none.pth"}},
    {"TruthsWithoutPrediction", {"IN/pred/a.png", "IN/truth", "--csv", "OUT/m.csv"}, 1,
     {"1 truth(s) without a prediction (b)", "--skip-missing"}},
    {"PredictionsWithoutTruth", {"IN/pred", "IN/truth-short", "--json", "OUT/m.json"}, 1,
     {"1 prediction(s) without a truth", "(b)", "--skip-missing"}},
    {"UnknownSplit", {"IN/pred", "--data", "IN/data", "--split", "val"}, 1, {"no split \"val\" (it has: test, train)"}},
    {"SizeMismatch", {"IN/small.png", "IN/truth/a.png", "--csv", "OUT/m.csv"}, 1,
     {"small.png: is 5x5 (HxW) but its truth"}},
    {"ReportIsAFolder", {"IN/pred/a.png", "IN/truth/a.png", "--csv", "OUT/"}, 1, {"is a folder"}},
    {"ReportIsAnInput",
     {"IN/pred/a.png", "--data", "IN/data", "--skip-missing", "--json", "IN/data/dataset.json", "--overwrite"}, 1,
     {"dataset.json: is an input of this run"}},
    {"CsvAndJsonTheSameFile", {"IN/pred/a.png", "IN/truth/a.png", "--csv", "OUT/m", "--json", "OUT/m"}, 2,
     {"--csv", "--json"}},
    {"JsonTakesThePredictions", {"--json", "IN/pred", "IN/truth"}, 2, {"--json", "bare --json"}},
    {"ClassesAndModel", {"IN/pred/a.png", "IN/truth/a.png", "--classes", "IN/data", "--model", "IN/model.pth"}, 2,
     {"--classes", "--model"}},
    {"TruthTwice", {"IN/pred", "IN/truth", "--data", "IN/data"}, 2, {"--data"}},
    {"NoTruth", {"IN/pred"}, 2, {"no truth"}},
    {"SplitWithoutData", {"IN/pred", "IN/truth", "--split", "test"}, 2, {"--split"}},
    {"FolderAgainstOneFile", {"IN/pred", "IN/truth/a.png"}, 2, {"PRED is a folder"}},
    {"MergeOfAnUnscoredLabel", {"IN/pred/a.png", "IN/truth/a.png", "--merge", "both=1,2"}, 2, {"--merge both", "label 2"}},
    {"MergeNamesALabelTwice", {"IN/pred/a.png", "IN/truth/a.png", "--merge", "both=1,1"}, 2, {"--merge both=1,1", "twice"}},
    {"MergeTakesALabelsName", {"IN/three.png", "IN/truth/a.png", "--merge", "label_1=1,3"}, 2, {"--merge label_1=...", "another name"}},
    {"MergeEndsInAComma", {"IN/pred/a.png", "IN/truth/a.png", "--merge", "both=1,2,"}, 2, {"--merge both=1,2,", "NAME=V1,V2"}},
    {"MergeGroupNamedTwice", {"IN/pred/a.png", "IN/truth/a.png", "--merge", "g=1,2", "--merge", "g=1,3"}, 2,
     {"--merge g=1,3", "named g is given twice"}},
    {"PredictionsAreTheTruth", {"IN/truth", "IN/truth", "--csv", "OUT/m.csv"}, 2, {"PRED and TRUTH are the same folder"}},
    {"PredictionIsTheTruthFile", {"IN/truth/a.png", "IN/truth/./a.png"}, 2, {"PRED and TRUTH are the same file"}},
    {"CsvAndJsonBothToStdout", {"IN/pred/a.png", "IN/truth/a.png", "--csv", "-", "--json"}, 2, {"--csv -", "stdout"}},
};

}  // namespace

TEST_P(EvaluateBadInput, GivesOneLineTheRightCodeAndWritesNothing) {
  const auto& c = GetParam();
  ScratchDir out("seg-evaluate-out");
  seg::tools::Args args;
  for (const auto& a : c.args) {
    if (a.rfind("IN/", 0) == 0) args.push_back((inputs_->root() / a.substr(3)).string());
    else if (a.rfind("OUT/", 0) == 0) args.push_back((out.path() / a.substr(4)).string());
    else args.push_back(a);
  }
  const auto r = evaluate(args);
  EXPECT_EQ(r.code, c.code) << r.err << r.out;
  EXPECT_EQ(r.err.rfind("seg-evaluate: error: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  for (const auto& m : c.mentions) EXPECT_NE(r.err.find(m), std::string::npos) << "should mention " << m << ": " << r.err;
  EXPECT_EQ(list_files(out.path()), std::vector<std::string>{});
}

INSTANTIATE_TEST_SUITE_P(Table, EvaluateBadInput, ::testing::ValuesIn(kBadEvaluations),
                         [](const ::testing::TestParamInfo<BadEvaluation>& info) { return info.param.name; });

// The reports never replace what seg-evaluate reads (seg-segment --qc's files beside the
// predictions) nor each other under another spelling; a report whose folder is missing stops
// the run before the other report is written.
TEST_F(EvaluateTool, ReportsNeverReplaceItsInputsOrEachOther) {
  ScratchDir tmp;
  write_labels(tmp / "pred/a.png", square_at(2));
  write_labels(tmp / "truth/a.png", square_at(2));
  seg::write_file_atomically(tmp / "pred" / "qc.csv", "case,estimated_dice_label_1,qc_score,flag\na,0.9,0.9,0\n");
  const std::string qc = seg::read_file(tmp / "pred" / "qc.csv");
  const std::string pred = (tmp / "pred").string(), truth = (tmp / "truth").string();
  auto r = evaluate({pred, truth, "--csv", (tmp / "pred" / "qc.csv").string(), "--overwrite"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("is an input"), std::string::npos) << r.err;
  EXPECT_EQ(seg::read_file(tmp / "pred" / "qc.csv"), qc);
  r = evaluate({pred, truth, "--csv", (tmp / "r.csv").string(), "--json", (tmp / "pred" / ".." / "r.csv").string()});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("name the same file"), std::string::npos) << r.err;
  r = evaluate({pred, truth, "--csv", (tmp / "r.csv").string(), "--json", (tmp / "nowhere" / "r.json").string()});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("does not exist"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(tmp / "r.csv"));
}
