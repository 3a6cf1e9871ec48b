// Models by name in the tools (--model NAME, seg-inspect NAME and --models), and --version.
#include <seg/fs.h>
#include <seg/io/image_io.h>
#include <seg/model_description.h>
#include <seg/model_file.h>
#include <torch/torch.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <regex>
#include <sstream>

#include "fixtures.h"
#include "scoped_env.h"
#include "test_support.h"
#include "tool_run.h"
#include "tools.h"

namespace fs = std::filesystem;
using seg::testing::contains;
using seg::testing::run_tool_in_process;
using seg::testing::ScopedEnv;
using seg::testing::ScratchDir;

namespace {

const fs::path kShippedFast = fs::path(SEG_SOURCE_DIR) / "share" / "models" / "jsrt-fast.pth";
// Where the tools linked into this test binary (build/bin) find the shipped models by name.
const fs::path kBuildModels = (fs::path(SEG_BINARY_DIR) / ".." / "share" / "segsuite" / "models").lexically_normal();

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream stream(text);
  for (std::string line; std::getline(stream, line);) lines.push_back(line);
  return lines;
}

}  // namespace

class ModelNames : public ::testing::Test {
 protected:
  void SetUp() override { torch::set_num_threads(1); }
  ScratchDir tmp;
  ScopedEnv model_path{"SEG_MODEL_PATH", (tmp / "mine").string()};
};

TEST_F(ModelNames, InspectModelsListsEachNameOnceWithNetworkClassesSizeTestFigureAndPlace) {
  fs::create_directories(tmp / "mine");
  fs::copy_file(kShippedFast, tmp / "mine" / "copy.pth");
  fs::copy_file(kShippedFast, tmp / "mine" / "jsrt-res-unet.pth");  // shadows the shipped one
  seg::write_file_atomically(tmp / "mine" / "broken.pth", "not a model");
  seg::Model validated_on_train = seg::load_model(kShippedFast);
  auto provenance = nlohmann::json::parse(validated_on_train.info.provenance_json);
  provenance["val_split"] = "train";  // validated on what it trained on: no figure to list
  provenance.erase("validation");
  provenance.erase("val_cases");
  validated_on_train.info.provenance_json = provenance.dump();
  seg::save_model(validated_on_train, tmp / "mine" / "no-test.pth");

  const auto r = run_tool_in_process(seg::tools::inspect, {"--models"});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto lines = lines_of(r.out);
  // SEG_MODEL_PATH's folder first, by name; then the build tree's shipped models.
  ASSERT_EQ(lines.size(), 5u) << r.out;
  EXPECT_EQ(lines[0].rfind("broken  ", 0), 0u) << r.out;
  EXPECT_EQ(lines[1].rfind("copy  ", 0), 0u) << r.out;
  EXPECT_EQ(lines[2].rfind("jsrt-res-unet  ", 0), 0u) << r.out;
  EXPECT_EQ(lines[3].rfind("no-test  ", 0), 0u) << r.out;
  EXPECT_EQ(lines[4].rfind("jsrt-fast  ", 0), 0u) << r.out;

  // The shipped fast model validated on cases held out of the train split: the listing says so.
  const std::string figure = seg::recorded_figure(seg::load_model(kShippedFast).info.provenance_json);
  EXPECT_EQ(figure.rfind("validation mean Dice 0.", 0), 0u) << figure;
  EXPECT_TRUE(contains(figure, " held-out cases)")) << figure;
  const std::string size = std::to_string((fs::file_size(kShippedFast) + 1023) / 1024) + " KiB";
  EXPECT_EQ(lines[1], "copy  fast  6 classes  " + size + "  " + figure + "  " + (tmp / "mine" / "copy.pth").string());
  EXPECT_EQ(lines[4], "jsrt-fast  fast  6 classes  " + size + "  " + figure + "  " + (kBuildModels / "jsrt-fast.pth").string());
  EXPECT_TRUE(contains(lines[2], "  " + (tmp / "mine" / "jsrt-res-unet.pth").string())) << lines[2];
  EXPECT_TRUE(contains(lines[3], "  fast  6 classes  ") && contains(lines[3], " KiB  -  ")) << lines[3];
  EXPECT_TRUE(contains(lines[0], "broken  -  -  1 KiB  unreadable: ")) << lines[0];

  const auto j = run_tool_in_process(seg::tools::inspect, {"--models", "--json"});
  ASSERT_EQ(j.code, 0) << j.err;
  const auto list = nlohmann::json::parse(j.out);
  ASSERT_EQ(list.size(), 5u);
  EXPECT_EQ(list[4]["name"], "jsrt-fast");
  EXPECT_EQ(list[4]["network"], "fast");
  EXPECT_EQ(list[4]["classes"], 6);
  EXPECT_EQ(list[4]["bytes"], fs::file_size(kShippedFast));
  EXPECT_EQ(list[4]["figure"], figure);
  EXPECT_EQ(list[4]["path"], (kBuildModels / "jsrt-fast.pth").string());
}

TEST_F(ModelNames, InspectModelsAndAPathTogetherIsAUsageError) {
  const auto r = run_tool_in_process(seg::tools::inspect, {"--models", kShippedFast.string()});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "seg-inspect: error: give a path to inspect, or --models\n");
}

TEST_F(ModelNames, SegmentInspectConvertAndTrainTakeAModelName) {
  seg::io::write_image(tmp / "film.png", seg::testing::image_of(torch::randint(0, 256, {48, 40}, torch::kByte), "uint8"));
  const auto segmented = run_tool_in_process(
      seg::tools::segment, {"--model", "jsrt-fast", (tmp / "film.png").string(), "-o", (tmp / "out").string(),
                            "--threads", "1"});
  ASSERT_EQ(segmented.code, 0) << segmented.err;
  const auto labels = seg::io::read_label_map(tmp / "out" / "film.png");
  EXPECT_EQ(labels.height(), 48);
  EXPECT_EQ(labels.width(), 40);

  const auto inspected = run_tool_in_process(seg::tools::inspect, {"jsrt-fast.pth"});
  ASSERT_EQ(inspected.code, 0) << inspected.err;
  EXPECT_TRUE(contains(inspected.out, "model: " + (kBuildModels / "jsrt-fast.pth").string() + "\n")) << inspected.out;

  const auto converted = run_tool_in_process(seg::tools::convert, {"jsrt-fast", "-o", (tmp / "copy.pth").string()});
  ASSERT_EQ(converted.code, 0) << converted.err;
  EXPECT_EQ(seg::load_model(tmp / "copy.pth").info.network.architecture, "fast");

  // --init's model decides the network, so --dry-run shows that the name was read.
  const auto dry = run_tool_in_process(seg::tools::train, {"--init", "jsrt-fast", "--dry-run"});
  ASSERT_EQ(dry.code, 0) << dry.err;
  EXPECT_TRUE(contains(dry.out, "\nfast (1 input channel")) << dry.out;
}

TEST_F(ModelNames, AnUnknownNameIsOneLineNamingWhereTheToolLooked) {
  const std::string places = (tmp / "mine").string() + ", " + kBuildModels.string();
  seg::io::write_image(tmp / "film.png", seg::testing::image_of(torch::zeros({16, 16}, torch::kByte), "uint8"));
  const auto segmented = run_tool_in_process(
      seg::tools::segment, {"--model", "jsrt-fats", (tmp / "film.png").string(), "-o", (tmp / "out").string()});
  EXPECT_EQ(segmented.code, 1);
  EXPECT_EQ(segmented.err.rfind("seg-segment: error: jsrt-fats: ", 0), 0u) << segmented.err;
  EXPECT_TRUE(contains(segmented.err, "jsrt-fats.pth in " + places + ";")) << segmented.err;
  EXPECT_EQ(std::count(segmented.err.begin(), segmented.err.end(), '\n'), 1) << segmented.err;
  EXPECT_FALSE(fs::exists(tmp / "out"));

  const auto trained = run_tool_in_process(seg::tools::train, {"--init", "jsrt-fats", "--out", (tmp / "run").string()});
  EXPECT_EQ(trained.code, 1);
  EXPECT_EQ(trained.err.rfind("seg-train: error: jsrt-fats: ", 0), 0u) << trained.err;
  EXPECT_TRUE(contains(trained.err, places)) << trained.err;
  EXPECT_FALSE(fs::exists(tmp / "run"));
}

TEST(ToolVersion, EveryToolAnswersVersionWithItsNameAndTheSuitesVersion) {
  const std::vector<std::pair<std::string, int (*)(const seg::tools::Args&, std::ostream&, std::ostream&)>> tools{
      {"convert", seg::tools::convert}, {"inspect", seg::tools::inspect},   {"augment", seg::tools::augment},
      {"weights", seg::tools::weights}, {"train", seg::tools::train},       {"segment", seg::tools::segment},
      {"evaluate", seg::tools::evaluate}};
  for (const auto& [name, tool] : tools) {
    const auto r = run_tool_in_process(tool, {"--version"});
    EXPECT_EQ(r.code, 0) << name << ": " << r.err;
    EXPECT_TRUE(std::regex_match(r.out, std::regex("seg-" + name + " [0-9]+\\.[0-9]+\\.[0-9]+\n"))) << r.out;
  }
}
