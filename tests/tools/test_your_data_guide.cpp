// docs/your-data.md, run: a non-square, non-chest data set with three classes, made here, and
// the guide's commands exactly as the guide writes them, with their defaults, to a test-split
// mean Dice of at least 0.95.
#include <seg/fs.h>
#include <seg/io/dataset_io.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "fixtures.h"
#include "scoped_working_dir.h"
#include "shapes_dataset.h"
#include "test_support.h"
#include "tool_run.h"
#include "tools.h"

namespace fs = std::filesystem;

namespace {

using Tool = int (*)(const seg::tools::Args&, std::ostream&, std::ostream&);

Tool tool_named(const std::string& name) {
  if (name == "seg-inspect") return seg::tools::inspect;
  if (name == "seg-convert") return seg::tools::convert;
  if (name == "seg-weights") return seg::tools::weights;
  if (name == "seg-augment") return seg::tools::augment;
  if (name == "seg-train") return seg::tools::train;
  if (name == "seg-segment") return seg::tools::segment;
  if (name == "seg-evaluate") return seg::tools::evaluate;
  return nullptr;
}

// The lines of the ```sh block that follows the guide's marker comment, each split into words.
std::vector<std::vector<std::string>> guide_commands(const std::string& guide) {
  const std::string marker = "<!-- the commands tests/tools/test_your_data_guide.cpp runs -->";
  const auto at = guide.find(marker);
  if (at == std::string::npos) return {};
  const auto begin = guide.find("```sh\n", at);
  const auto end = guide.find("```", begin + 6);
  if (begin == std::string::npos || end == std::string::npos) return {};
  std::istringstream lines(guide.substr(begin + 6, end - begin - 6));
  std::vector<std::vector<std::string>> commands;
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::vector<std::string> command;
    for (std::string word; words >> word;) command.push_back(word);
    if (!command.empty()) commands.push_back(command);
  }
  return commands;
}

}  // namespace

TEST(YourDataGuide, ItsCommandsReachADiceOfAtLeast95OnANonSquareDataSetOfShapes) {
  const auto commands = guide_commands(seg::read_file(fs::path(SEG_SOURCE_DIR) / "docs" / "your-data.md"));
  ASSERT_EQ(commands.size(), 4u) << "docs/your-data.md lost its marked block of commands";

  seg::testing::ScratchDir tmp("guide");
  auto data = seg::testing::shapes_dataset(100, 128, 160, 75);
  data.description = "discs, rectangles and rings";
  seg::io::write_dataset_folder(data, tmp / "shapes");
  // The dataset.json the guide shows is the one such a folder has.
  const auto spec = nlohmann::json::parse(seg::read_file(tmp / "shapes" / "dataset.json"));
  EXPECT_EQ(spec["images"], "images/{case}.png");
  EXPECT_EQ(spec["labels"], "labels/{case}.png");

  const seg::testing::ScopedWorkingDir in_scratch(tmp.path());  // the guide's commands run in it
  for (const auto& command : commands) {
    const Tool tool = tool_named(command.front());
    ASSERT_NE(tool, nullptr) << "the guide runs " << command.front() << ", which is no tool of the suite";
    const auto start = std::chrono::steady_clock::now();
    const auto r = seg::testing::run_tool_in_process(tool, {command.begin() + 1, command.end()});
    std::cout << command.front() << ": "
              << std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() << " s\n";
    ASSERT_EQ(r.code, 0) << command.front() << ":\n" << r.err << r.out;
    if (command.front() == "seg-inspect") {
      EXPECT_TRUE(seg::testing::contains(r.out, "warnings: none")) << r.out;
    }
  }
  const auto metrics = nlohmann::json::parse(seg::read_file(tmp / "metrics.json"));
  ASSERT_TRUE(metrics["mean_dice"].is_number()) << metrics.dump(1);
  EXPECT_GE(metrics["mean_dice"].get<double>(), 0.95) << metrics.dump(1);
  for (const auto& label : metrics["mean_dice_per_label"]) EXPECT_TRUE(label.is_number()) << metrics.dump(1);
}
