// End to end on a handful of real JSRT cases: seg-train, seg-segment, seg-evaluate.
#include <seg/dataset.h>
#include <seg/fs.h>
#include <seg/io/image_io.h>
#include <seg/model_file.h>
#include <torch/torch.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sstream>

#include "fixtures.h"
#include "test_support.h"
#include "tool_run.h"
#include "tools.h"

namespace fs = std::filesystem;
using seg::testing::run_tool_in_process;
using seg::testing::ScratchDir;

namespace {

// A small data set folder over the real images: 12 training and 3 test cases.
void make_small_jsrt(const fs::path& real, const fs::path& dir) {
  fs::create_directory_symlink(real / "images", dir / "images");
  fs::create_directory_symlink(real / "labels", dir / "labels");
  nlohmann::json j = nlohmann::json::parse(seg::read_file(real / "dataset.json"));
  auto train = j["split"]["train"].get<std::vector<std::string>>();
  auto test = j["split"]["test"].get<std::vector<std::string>>();
  j["split"]["train"] = std::vector<std::string>(train.begin(), train.begin() + 12);
  j["split"]["test"] = std::vector<std::string>(test.begin(), test.begin() + 3);
  seg::write_file_atomically(dir / "dataset.json", j.dump());
}

}  // namespace

class TrainSegmentTool : public ::testing::Test {
 protected:
  void SetUp() override { torch::set_num_threads(1); }
};

TEST_F(TrainSegmentTool, DryRunPrintsTheParameterCount) {
  auto r = run_tool_in_process(seg::tools::train, {"--model", "fcn-wide", "--dry-run"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("trainable parameters: 973574"), std::string::npos) << r.out;
}

TEST_F(TrainSegmentTool, UnknownNetworkIsAUsageError) {
  ScratchDir tmp;
  auto r = run_tool_in_process(seg::tools::train, {"--data", tmp.path().string(), "--model", "nope", "--out", (tmp / "run").string()});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("unknown network \"nope\""), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(tmp / "run"));
}

TEST_F(TrainSegmentTool, TrainSegmentEvaluateOnRealCases) {
  SEG_REQUIRE_JSRT(real);
  ScratchDir tmp;
  make_small_jsrt(real, tmp.path());
  const auto run_dir = (tmp / "run").string();
  auto trained = run_tool_in_process(seg::tools::train, {"--data", tmp.path().string(), "--model", "fcn", "--epochs", "24", "--val-every",
                                         "8", "--lr", "0.003", "--seed", "1", "--threads", "1", "--out", run_dir});
  ASSERT_EQ(trained.code, 0) << trained.err;
  for (const char* f : {"model.pth", "checkpoint.pt", "log.csv", "loss.png", "run.json"})
    EXPECT_TRUE(fs::exists(fs::path(run_dir) / f)) << f;
  EXPECT_NE(trained.out.find("epoch 24: loss"), std::string::npos) << trained.out;

  // Resume extends the run from its checkpoint without --data.
  auto resumed = run_tool_in_process(seg::tools::train, {"--resume", run_dir, "--epochs", "25", "--threads", "1"});
  ASSERT_EQ(resumed.code, 0) << resumed.err;
  EXPECT_NE(resumed.out.find("resuming at epoch 25"), std::string::npos) << resumed.out;

  const auto seg_dir = tmp / "seg";
  auto segmented = run_tool_in_process(seg::tools::segment, {"--model", run_dir, "--data", tmp.path().string(), "--split", "test",
                                             "-o", seg_dir.string(), "--overlay", "--threads", "1"});
  ASSERT_EQ(segmented.code, 0) << segmented.err;
  auto files = seg::testing::list_files(seg_dir);
  EXPECT_EQ(files, (std::vector<std::string>{"JPCNN007.png", "JPCNN008.png", "JPCNN009.png", "overlays/JPCNN007.png",
                                             "overlays/JPCNN008.png", "overlays/JPCNN009.png"}));
  auto labels = seg::io::read_label_map(seg_dir / "JPCNN008.png");
  EXPECT_EQ(labels.pixels.sizes(), (std::vector<int64_t>{256, 256}));
  EXPECT_LE(labels.pixels.max().item<int>(), 5);

  auto evaluated = run_tool_in_process(seg::tools::evaluate, {seg_dir.string(), "--data", tmp.path().string(), "--split", "test", "--json"});
  ASSERT_EQ(evaluated.code, 0) << evaluated.err;
  auto metrics = nlohmann::json::parse(evaluated.out);
  EXPECT_EQ(metrics["cases_evaluated"].get<int>(), 3);
  // A hundred steps on twelve cases already find the lungs; a broken pipeline scores near 0.
  const auto per_label = metrics["mean_dice_per_label"];
  ASSERT_EQ(per_label.size(), 5u);
  EXPECT_GT(per_label[0].get<double>(), 0.6) << per_label;  // right lung
  EXPECT_GT(per_label[1].get<double>(), 0.6) << per_label;  // left lung
}

TEST_F(TrainSegmentTool, ModelFileAloneSegmentsAnyImageSize) {
  SEG_REQUIRE_JSRT(real);
  ScratchDir tmp;
  make_small_jsrt(real, tmp.path());
  auto trained = run_tool_in_process(seg::tools::train, {"--data", tmp.path().string(), "--epochs", "1", "--threads", "1", "--out",
                                         (tmp / "run").string()});
  ASSERT_EQ(trained.code, 0) << trained.err;
  fs::create_directory(tmp / "elsewhere");
  fs::copy_file(tmp / "run/model.pth", tmp / "elsewhere/only.pth");
  fs::remove_all(tmp / "run");
  // A 512 x 512 radiograph through a model trained at 256: labels come back on its own grid, as NIfTI.
  auto r = run_tool_in_process(seg::tools::segment, {"--model", (tmp / "elsewhere/only.pth").string(),
                                     (real / "images512/JPCNN010.png").string(), "-o", (tmp / "out").string(),
                                     "--format", "nii.gz", "--threads", "1"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto labels = seg::io::read_label_map(tmp / "out/JPCNN010.nii.gz");
  EXPECT_EQ(labels.pixels.sizes(), (std::vector<int64_t>{512, 512}));
}

// --cuda-graph where there is no GPU trains all the same (the graphed step's arithmetic, run
// eagerly), and says so instead of leaving the user to think a graph was recorded.
TEST_F(TrainSegmentTool, CudaGraphOnTheCpuSaysTheStepRunsEagerly) {
  ScratchDir tmp;
  seg::save_tensor_pack(seg::testing::random_dataset("tiny", 6, 32, 32, 3, 4), tmp / "pack.pth");
  const std::vector<std::string> args{"--data", (tmp / "pack.pth").string(), "--model", "fcn", "--epochs", "1",
                                      "--batch", "2", "--device", "cpu", "--threads", "1", "--out", (tmp / "run").string()};
  auto graphed = args;
  graphed.push_back("--cuda-graph");
  const auto r = run_tool_in_process(seg::tools::train, graphed);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("--cuda-graph: no CUDA device, so each step runs eagerly"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(tmp / "run" / "model.pth"));
  auto plain = args;
  plain.back() = (tmp / "plain").string();
  const auto p = run_tool_in_process(seg::tools::train, plain);
  ASSERT_EQ(p.code, 0) << p.err;
  EXPECT_EQ(p.out.find("--cuda-graph"), std::string::npos) << p.out;
}

TEST_F(TrainSegmentTool, BadInputsAreOneClearLineAndNoOutput) {
  ScratchDir tmp;
  auto missing_model = run_tool_in_process(seg::tools::segment, {"--model", (tmp / "none.pth").string(), (tmp / "x.png").string(),
                                                 "-o", (tmp / "out").string()});
  EXPECT_EQ(missing_model.code, 1);
  EXPECT_NE(missing_model.err.find("x.png: no such file"), std::string::npos) << missing_model.err;
  EXPECT_FALSE(fs::exists(tmp / "out"));

  auto no_checkpoint = run_tool_in_process(seg::tools::train, {"--resume", (tmp / "norun").string()});
  EXPECT_EQ(no_checkpoint.code, 1);
  EXPECT_EQ(std::count(no_checkpoint.err.begin(), no_checkpoint.err.end(), '\n'), 1) << no_checkpoint.err;
  EXPECT_EQ(no_checkpoint.err.rfind("seg-train: error: ", 0), 0u) << no_checkpoint.err;
}

TEST_F(TrainSegmentTool, InitFineTunesAModelAtAnotherSize) {
  SEG_REQUIRE_JSRT(real);
  ScratchDir tmp;
  make_small_jsrt(real, tmp.path());
  const auto base = (tmp / "base").string(), tuned = (tmp / "tuned").string();
  // The labels drew each clavicle over its lung (--overlap, by name or value): the model
  // records it, and a fine-tuned one keeps it.
  auto bad = run_tool_in_process(seg::tools::train, {"--data", tmp.path().string(), "--model", "fast", "--epochs", "1",
                                                     "--overlap", "lung:right_clavicle", "--out", base});
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("--overlap lung:right_clavicle"), std::string::npos) << bad.err;
  EXPECT_FALSE(fs::exists(base));
  auto trained = run_tool_in_process(seg::tools::train, {"--data", tmp.path().string(), "--model", "fast", "--epochs", "1",
                                         "--threads", "1", "--overlap", "right_lung:right_clavicle", "--overlap", "2:5",
                                         "--out", base});
  ASSERT_EQ(trained.code, 0) << trained.err;
  EXPECT_EQ(seg::load_model(base).info.overlaps.size(), 2u);
  // No --model: the network, and with it its recipe, come from the model.
  auto r = run_tool_in_process(seg::tools::train, {"--data", tmp.path().string(), "--size", "128", "--init", base, "--epochs", "1",
                                   "--threads", "1", "--out", tuned});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto model = seg::load_model(tuned);
  EXPECT_EQ(model.info.network.architecture, "fast");
  EXPECT_EQ(model.info.input_size, (std::vector<int64_t>{128, 128}));
  ASSERT_EQ(model.info.overlaps.size(), 2u);  // the labels are drawn as the start model's were
  EXPECT_EQ(std::make_pair(model.info.overlaps[1].under, model.info.overlaps[1].over), std::make_pair(2, 5));
  const auto options = nlohmann::json::parse(model.info.provenance_json)["options"];
  EXPECT_EQ(options["init_from"], base);
  EXPECT_EQ(options["loss"], "ce+dice");  // the fast preset's, not the notebook's
  auto shown = run_tool_in_process(seg::tools::inspect, {tuned});
  ASSERT_EQ(shown.code, 0) << shown.err;
  EXPECT_NE(shown.out.find("started from: " + base + ", trained on "), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("(12 cases), 1 epoch on cpu"), std::string::npos) << shown.out;

  auto both = run_tool_in_process(seg::tools::train, {"--init", base, "--resume", tuned});
  EXPECT_EQ(both.code, 2) << both.err;
  // Usage comes before reading the model: a missing one does not hide the help or a usage error.
  auto missing_and_resume = run_tool_in_process(seg::tools::train, {"--init", (tmp / "none.pth").string(), "--resume", tuned});
  EXPECT_EQ(missing_and_resume.code, 2) << missing_and_resume.err;
  auto help = run_tool_in_process(seg::tools::train, {"--init", (tmp / "none.pth").string(), "--help"});
  EXPECT_EQ(help.code, 0) << help.err;
  EXPECT_NE(help.out.find("--init"), std::string::npos);
  auto dry = run_tool_in_process(seg::tools::train, {"--init", (tmp / "none.pth").string(), "--dry-run"});
  EXPECT_EQ(dry.code, 1) << dry.out;  // not the default network's layers
  EXPECT_NE(dry.err.find("none.pth"), std::string::npos) << dry.err;
  auto missing = run_tool_in_process(seg::tools::train, {"--data", tmp.path().string(), "--init", (tmp / "none.pth").string(),
                                         "--out", (tmp / "never").string()});
  EXPECT_EQ(missing.code, 1);
  EXPECT_EQ(std::count(missing.err.begin(), missing.err.end(), '\n'), 1) << missing.err;
  EXPECT_NE(missing.err.find("none.pth"), std::string::npos) << missing.err;
  EXPECT_FALSE(fs::exists(tmp / "never"));
}
