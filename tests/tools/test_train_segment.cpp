// End to end on a handful of real JSRT cases: seg-train, seg-segment, seg-evaluate.
#include <seg/dataset.h>
#include <seg/fs.h>
#include <seg/io/image_io.h>
#include <seg/model_file.h>
#include <torch/torch.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sstream>

#include <sys/stat.h>

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
  EXPECT_NE(r.err.find("\"nope\" is not one of the networks"), std::string::npos) << r.err;
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
  // (12 training cases cannot spare the fast recipe's 24 validation cases: these runs validate on the test split)
  auto bad = run_tool_in_process(seg::tools::train, {"--data", tmp.path().string(), "--model", "fast", "--epochs", "1", "--val-split",
                                                     "test", "--overlap", "lung:right_clavicle", "--out", base});
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("--overlap lung:right_clavicle"), std::string::npos) << bad.err;
  EXPECT_FALSE(fs::exists(base));
  auto trained = run_tool_in_process(seg::tools::train, {"--data", tmp.path().string(), "--model", "fast", "--epochs", "1",
                                         "--val-split", "test", "--threads", "1", "--overlap", "right_lung:right_clavicle", "--overlap", "2:5",
                                         "--out", base});
  ASSERT_EQ(trained.code, 0) << trained.err;
  EXPECT_EQ(seg::load_model(base).info.overlaps.size(), 2u);
  // No --model: the network, and with it its recipe, come from the model.
  auto r = run_tool_in_process(seg::tools::train, {"--data", tmp.path().string(), "--size", "128", "--init", base, "--epochs", "1",
                                   "--val-split", "test", "--threads", "1", "--out", tuned});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto model = seg::load_model(tuned);
  EXPECT_EQ(model.info.network.architecture, "fast");
  EXPECT_EQ(model.info.input_size, (std::vector<int64_t>{128, 128}));
  ASSERT_EQ(model.info.overlaps.size(), 2u);  // the labels are drawn as the start model's were
  EXPECT_EQ(std::make_pair(model.info.overlaps[1].under, model.info.overlaps[1].over), std::make_pair(2, 5));
  const auto provenance = nlohmann::json::parse(model.info.provenance_json);
  EXPECT_EQ(provenance["recipe"]["init"], base);
  EXPECT_EQ(provenance["recipe"]["loss"], "ce+dice");  // the fast recipe's, not the notebook's
  EXPECT_EQ(provenance["recipe_name"], "fast");
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

namespace {
// A tensor pack of 12 cases of 32 x 32 (4 classes): 10 to train on, 2 to test.
fs::path tiny_pack(const ScratchDir& tmp) {
  torch::manual_seed(3);
  const auto path = tmp / "pack.pth";
  seg::save_tensor_pack(seg::testing::random_dataset("tiny", 12, 32, 32, 4, 10), path);
  return path;
}
}  // namespace

// --recipe and the options over it: the run records both, and which keys the command line set.
TEST_F(TrainSegmentTool, RecipeAndItsOverridesAreRecorded) {
  ScratchDir tmp;
  const auto pack = tiny_pack(tmp).string(), run_dir = (tmp / "run").string();
  const auto r = run_tool_in_process(seg::tools::train, {"--data", pack, "--recipe", "fast", "--epochs", "1", "--lr", "0.01",
                                                         "--val-holdout", "2", "--threads", "1", "--out", run_dir});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("8 training cases, 2 validation cases (2 cases held out of split train"), std::string::npos) << r.out;
  const auto run = nlohmann::json::parse(seg::read_file(fs::path(run_dir) / "run.json"));
  EXPECT_EQ(run["recipe"]["lr"], 0.01);
  EXPECT_EQ(run["recipe"]["network"], "fast");  // the rest is the recipe's
  EXPECT_EQ(run["recipe"]["schedule"], "onecycle");
  EXPECT_EQ(run["settings"]["recipe_name"], "fast");
  const auto overridden = run["settings"]["overridden"].get<std::vector<std::string>>();
  for (const char* key : {"epochs", "lr", "validation.holdout", "validation.split"})
    EXPECT_NE(std::find(overridden.begin(), overridden.end(), key), overridden.end()) << key;
  // The validation cases come from the train split (every 5th of the 10), and are recorded.
  EXPECT_EQ(run["val_cases"], (std::vector<std::string>{"e", "j"}));
  const auto provenance = nlohmann::json::parse(seg::load_model(run_dir).info.provenance_json);
  EXPECT_EQ(provenance["recipe"], run["recipe"]);
  EXPECT_EQ(provenance["overridden"], run["settings"]["overridden"]);
  EXPECT_EQ(provenance["val_cases"], run["val_cases"]);
  EXPECT_EQ(provenance["train_cases"], 8);
  const auto shown = run_tool_in_process(seg::tools::inspect, {run_dir, "--json"});
  ASSERT_EQ(shown.code, 0) << shown.err;
  EXPECT_EQ(nlohmann::json::parse(shown.out)["val_cases"], run["val_cases"]);
  // A resumed run keeps its recipe: options that would change it are refused.
  const auto changed = run_tool_in_process(seg::tools::train, {"--resume", run_dir, "--lr", "0.1"});
  EXPECT_EQ(changed.code, 2) << changed.err;
}

TEST_F(TrainSegmentTool, DryRunReadsTheDataAndShowsEveryValueOfTheRecipe) {
  ScratchDir tmp;
  const auto pack = tiny_pack(tmp).string();
  const auto r = run_tool_in_process(seg::tools::train, {"--data", pack, "--recipe", "fast", "--val-holdout", "2", "--dry-run"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("fast (1 input channel, 4 classes, the data's)"), std::string::npos) << r.out;
  for (const char* value : {"\"lr\": 0.004", "\"weight_decay\": 0.0001", "\"processing\": 0.0", "\"holdout\": 2", "\"device\":\"auto\""})
    EXPECT_NE(r.out.find(value), std::string::npos) << value << "\n" << r.out;
  EXPECT_NE(r.out.find("validation cases: 2"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(tmp / "run"));
}

// A staged recipe runs every stage, each from the one before, into RUN/stage-N; RUN/model.pth
// is the last stage's.
TEST_F(TrainSegmentTool, StagedRecipeRunsItsStagesAndResumes) {
  ScratchDir tmp;
  const auto pack = tiny_pack(tmp).string(), run_dir = (tmp / "run").string();
  const auto r = run_tool_in_process(seg::tools::train, {"--data", pack, "--recipe", "jsrt-fast", "--epochs", "1", "--val-holdout",
                                                         "2", "--threads", "1", "--out", run_dir});
  ASSERT_EQ(r.code, 0) << r.err;
  for (int k = 1; k <= 4; ++k) EXPECT_NE(r.out.find("stage " + std::to_string(k) + " of 4"), std::string::npos) << r.out;
  const auto last = seg::load_model(fs::path(run_dir) / "stage-4");
  EXPECT_EQ(seg::read_file(fs::path(run_dir) / "model.pth"), seg::read_file(fs::path(run_dir) / "stage-4" / "model.pth"));
  const auto provenance = nlohmann::json::parse(last.info.provenance_json);
  EXPECT_EQ(provenance["recipe"]["init"], (fs::path(run_dir) / "stage-3" / "model.pth").string());
  EXPECT_EQ(provenance["recipe"]["augmentation"]["devices"], 0.5);
  EXPECT_EQ(provenance["init"]["init"]["init"]["recipe"]["epochs"], 1);  // stage 1's record, three deep
  const auto run = nlohmann::json::parse(seg::read_file(fs::path(run_dir) / "run.json"));
  ASSERT_EQ(run["recipe"]["stages"].size(), 4u);
  // Resumed when finished: nothing left to train, the model stays.
  const auto resumed = run_tool_in_process(seg::tools::train, {"--resume", run_dir, "--threads", "1"});
  ASSERT_EQ(resumed.code, 0) << resumed.err;
  EXPECT_EQ(resumed.out.find("stage "), std::string::npos) << resumed.out;
  const auto extended = run_tool_in_process(seg::tools::train, {"--resume", run_dir, "--epochs", "3"});
  EXPECT_EQ(extended.code, 2) << extended.err;
}

// A bad value says where it came from: the recipe file (bad input) or an option (usage).
TEST_F(TrainSegmentTool, BadRecipeValuesNameTheirFileOrOption) {
  ScratchDir tmp;
  const auto pack = tiny_pack(tmp).string();
  seg::write_file_atomically(tmp / "typo.json", R"({"network": "fcn", "epohcs": 3})");
  seg::write_file_atomically(tmp / "zero.json", R"({"network": "fcn", "epochs": 0})");
  const auto typo = run_tool_in_process(seg::tools::train, {"--data", pack, "--recipe", (tmp / "typo.json").string(), "--out", (tmp / "a").string()});
  EXPECT_EQ(typo.code, 1);
  EXPECT_NE(typo.err.find("typo.json: unknown key \"epohcs\""), std::string::npos) << typo.err;
  const auto zero = run_tool_in_process(seg::tools::train, {"--data", pack, "--recipe", (tmp / "zero.json").string(), "--out", (tmp / "b").string()});
  EXPECT_EQ(zero.code, 1);
  EXPECT_NE(zero.err.find("zero.json: epochs must be at least 1"), std::string::npos) << zero.err;
  const auto option = run_tool_in_process(seg::tools::train, {"--data", pack, "--epochs", "0", "--out", (tmp / "c").string()});
  EXPECT_EQ(option.code, 2);
  EXPECT_NE(option.err.find("--epochs must be at least 1"), std::string::npos) << option.err;
  const auto graph = run_tool_in_process(seg::tools::train, {"--data", pack, "--augment-zoom", "0.5", "--cuda-graph", "--out", (tmp / "d").string()});
  EXPECT_EQ(graph.code, 2);
  EXPECT_NE(graph.err.find("--cuda-graph records --augment-scale only; set --augment-zoom to 0"), std::string::npos) << graph.err;
  for (const char* dir : {"a", "b", "c", "d"}) EXPECT_FALSE(fs::exists(tmp / dir)) << dir;
}

// A run writes only into what it may: never over a file already in --out (a failing run
// leaves them too), never over its own --init model, never into the data's folder.
TEST_F(TrainSegmentTool, ARunNeverWritesOverWhatTheUserHad) {
  ScratchDir tmp;
  const auto pack = tiny_pack(tmp).string();
  auto train = [&](std::vector<std::string> args) {
    args.insert(args.end(), {"--epochs", "1", "--threads", "1"});
    return run_tool_in_process(seg::tools::train, args);
  };
  fs::create_directories(tmp / "mine");
  seg::write_file_atomically(tmp / "mine" / "log.csv", "my notes");
  for (const char* batch : {"99", "3"}) {  // fails on its data, then would run
    const auto r = train({"--data", pack, "--batch", batch, "--out", (tmp / "mine").string()});
    EXPECT_EQ(r.code, 1) << r.err;
    EXPECT_EQ(seg::read_file(tmp / "mine" / "log.csv"), "my notes") << "batch " << batch;
    EXPECT_EQ(seg::testing::list_files(tmp / "mine"), std::vector<std::string>{"log.csv"}) << r.err;
  }
  ASSERT_EQ(train({"--data", pack, "--out", (tmp / "first").string()}).code, 0);
  const std::string init = seg::read_file(tmp / "first" / "model.pth");
  fs::create_directories(tmp / "tune");
  fs::copy_file(tmp / "first" / "model.pth", tmp / "tune" / "model.pth");
  auto r = train({"--data", pack, "--init", (tmp / "tune" / "model.pth").string(), "--out", (tmp / "tune").string()});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("is an input of this run"), std::string::npos) << r.err;
  EXPECT_EQ(seg::read_file(tmp / "tune" / "model.pth"), init);
  // The data set's folder, given by its dataset.json.
  fs::create_directories(tmp / "set");
  seg::write_file_atomically(tmp / "set" / "dataset.json", "{}");
  r = train({"--data", (tmp / "set" / "dataset.json").string(), "--out", (tmp / "set").string()});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("is an input of this run"), std::string::npos) << r.err;
  EXPECT_EQ(seg::testing::list_files(tmp / "set"), std::vector<std::string>{"dataset.json"}) << r.err;
}

// Values that JSON cannot hold are refused, not read as absent; a run whose loss becomes NaN
// stops with an error instead of saving NaN weights.
TEST_F(TrainSegmentTool, NonFiniteValuesAndDivergedRunsAreErrors) {
  ScratchDir tmp;
  const auto pack = tiny_pack(tmp).string();
  for (const char* value : {"nan", "inf", "1e999"}) {
    const auto r = run_tool_in_process(seg::tools::train, {"--recipe", "fast", "--lr", value, "--dry-run"});
    EXPECT_EQ(r.code, 2) << value << ": " << r.out;
    EXPECT_NE(r.err.find("must be a finite number"), std::string::npos) << r.err;
  }
  // Finite values that would overflow mid-step, or weigh the classes by zero, are refused too.
  const std::vector<std::pair<std::vector<std::string>, std::string>> out_of_range = {
      {{"--lr", "1e300"}, "--lr must be 0 or more, and a float32 number"},
      {{"--weight-decay", "1e300"}, "--weight-decay must be 0 or more, and a float32 number"},
      {{"--weights-power", "-3"}, "--weights-power must be more than 0 and at most 10"},
      {{"--weights-power", "1e300"}, "--weights-power must be more than 0 and at most 10"}};
  for (const auto& [option, message] : out_of_range) {
    seg::tools::Args args{"--recipe", "fast", "--dry-run"};
    args.insert(args.end(), option.begin(), option.end());
    const auto r = run_tool_in_process(seg::tools::train, args);
    EXPECT_EQ(r.code, 2) << option[0] << ": " << r.out;
    EXPECT_NE(r.err.find(message), std::string::npos) << r.err;
  }
  seg::write_file_atomically(tmp / "wild.json", R"({"network": "fcn", "epochs": 2, "lr": 1e30, "batch": 2, "validation": {"split": "test"}})");
  const auto r = run_tool_in_process(seg::tools::train, {"--data", pack, "--recipe", (tmp / "wild.json").string(),
                                                         "--threads", "1", "--out", (tmp / "wild").string()});
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.err.find("training diverged"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(tmp / "wild" / "model.pth"));
}

// --resume refuses what it would otherwise ignore; a run stopped before its first checkpoint
// starts again as recorded; a staged recipe's later stages are checked before anything runs.
TEST_F(TrainSegmentTool, ResumeAndStagesAreCheckedBeforeTraining) {
  ScratchDir tmp;
  const auto pack = tiny_pack(tmp).string(), run_dir = (tmp / "run").string();
  ASSERT_EQ(run_tool_in_process(seg::tools::train, {"--data", pack, "--epochs", "1", "--threads", "1", "--out", run_dir}).code, 0);
  for (const std::vector<std::string>& extra : {std::vector<std::string>{"--dry-run"}, {"--size", "16"}, {"--device", "cpu"}}) {
    std::vector<std::string> args{"--resume", run_dir, "--epochs", "2"};
    args.insert(args.end(), extra.begin(), extra.end());
    const auto r = run_tool_in_process(seg::tools::train, args);
    EXPECT_EQ(r.code, 2) << extra.front() << ": " << r.out;
    EXPECT_NE(r.err.find("not " + extra.front()), std::string::npos) << r.err;
  }
  EXPECT_EQ(seg::load_model(run_dir).info.input_size, (std::vector<int64_t>{32, 32}));
  for (const char* file : {"checkpoint.pt", "model.pth", "log.csv", "loss.png"}) fs::remove(fs::path(run_dir) / file);
  const auto restarted = run_tool_in_process(seg::tools::train, {"--resume", run_dir, "--threads", "1"});
  ASSERT_EQ(restarted.code, 0) << restarted.err;
  EXPECT_TRUE(fs::exists(fs::path(run_dir) / "model.pth"));

  seg::write_file_atomically(tmp / "two-networks.json", R"({"stages": [{"network": "fcn", "epochs": 1, "validation": {"split": "test"}}, {"network": "fast"}]})");
  seg::write_file_atomically(tmp / "big-batch.json", R"({"stages": [{"network": "fcn", "epochs": 1, "validation": {"split": "test"}}, {"batch": 99}]})");
  for (const char* recipe : {"two-networks.json", "big-batch.json"}) {
    const auto out = tmp / (std::string("staged-") + recipe);
    const auto r = run_tool_in_process(seg::tools::train, {"--data", pack, "--recipe", (tmp / recipe).string(), "--threads", "1",
                                                           "--out", out.string()});
    EXPECT_EQ(r.code, 1) << recipe << ": " << r.out;
    EXPECT_EQ(r.out.find("epoch"), std::string::npos) << recipe << ": nothing trains";
    EXPECT_FALSE(fs::exists(out)) << recipe << ": " << r.err;
  }
}

// Recipe values the JSON reader would convert quietly are refused, and so are recipe files that
// are not small regular files, sizes past --max-pixels and a run.json of the wrong types.
TEST_F(TrainSegmentTool, RecipeValuesAreTakenAsWrittenOrRefused) {
  ScratchDir tmp;
  const auto pack = tiny_pack(tmp).string();
  const std::vector<std::pair<std::string, std::string>> cases{
      {R"({"network": "fcn", "epochs": 1.7})", "\"epochs\" must be a whole number, not 1.7"},
      {R"({"network": "fcn", "seed": -1})", "\"seed\" must be 0 or more, not -1"},
      {R"({"network": "fcn", "epochs": null})", "\"epochs\" is null"},
      {R"({"network": "fcn", "validation": {"every": 2.5}})", "\"validation.every\" must be a whole number"}};
  for (const auto& [text, message] : cases) {
    seg::write_file_atomically(tmp / "r.json", text);
    const auto r = run_tool_in_process(seg::tools::train, {"--recipe", (tmp / "r.json").string(), "--dry-run"});
    EXPECT_EQ(r.code, 1) << text;
    EXPECT_NE(r.err.find(message), std::string::npos) << text << ": " << r.err;
  }
  ASSERT_EQ(::mkfifo((tmp / "fifo.json").c_str(), 0600), 0);
  auto r = run_tool_in_process(seg::tools::train, {"--recipe", (tmp / "fifo.json").string(), "--dry-run"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("is not a regular file"), std::string::npos) << r.err;
  r = run_tool_in_process(seg::tools::train, {"--data", pack, "--size", "8192x8193", "--dry-run"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("more pixels than --max-pixels allows"), std::string::npos) << r.err;
  const auto run_dir = tmp / "run";
  ASSERT_EQ(run_tool_in_process(seg::tools::train, {"--data", pack, "--epochs", "1", "--threads", "1", "--out", run_dir.string()}).code, 0);
  auto run = nlohmann::json::parse(seg::read_file(run_dir / "run.json"));
  run["data"] = 5;
  seg::write_file_atomically(run_dir / "run.json", run.dump());
  r = run_tool_in_process(seg::tools::train, {"--resume", run_dir.string()});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("run.json: malformed run description"), std::string::npos) << r.err;
}
