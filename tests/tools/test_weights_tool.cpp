// seg-weights in-process: the notebook's weights on the real train split, modes, splits.
#include <seg/dataset.h>
#include <seg/fs.h>
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

auto weights(const seg::tools::Args& args) { return run_tool_in_process(seg::tools::weights, args); }

// Labels with known counts: train (cases a, b) holds 6 zeros, 4 ones, 2 twos; test (c) all 2.
fs::path small_pack(const ScratchDir& tmp) {
  seg::Dataset d;
  d.name = "counts";
  d.source = "memory";
  d.images = torch::zeros({3, 2, 3}, torch::kByte);
  d.labels = torch::tensor({0, 0, 0, 1, 1, 2, 0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 2, 2}, torch::kByte).view({3, 2, 3});
  d.cases = {"a", "b", "c"};
  d.classes.entries = {{"background", 0}, {"one", 1}, {"two", 2}, {"unused", 3}};
  d.splits["train"] = {"a", "b"};
  d.splits["test"] = {"c"};
  const auto path = tmp / "counts.pth";
  seg::save_tensor_pack(d, path);
  return path;
}

std::vector<double> weights_of(const json& j) { return j["weights"].get<std::vector<double>>(); }

}  // namespace

TEST(WeightsTool, ReproducesTheNotebookWeightsOnTheRealTrainSplit) {
  SEG_REQUIRE_JSRT(dir);
  auto r = weights({"--data", dir.string(), "--json", "--threads", "1"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = json::parse(r.out);
  EXPECT_EQ(j["cases"].get<int>(), 160);
  EXPECT_EQ(j["counts"].get<std::vector<int64_t>>(),
            (std::vector<int64_t>{6332708, 1683559, 1344302, 930102, 97785, 97304}));
  const std::vector<double> notebook{0.4031, 0.6409, 0.6934, 0.7888, 1.7354, 1.7383};
  const auto w = weights_of(j);
  ASSERT_EQ(w.size(), 6u);
  for (size_t k = 0; k < 6; ++k) EXPECT_NEAR(w[k], notebook[k], 1e-3) << "label " << k;
  EXPECT_EQ(j["classes"][3], "heart");
}

TEST(WeightsTool, ModesPowersAndSplitsOnATensorPack) {
  ScratchDir tmp;
  const auto pack = small_pack(tmp).string();
  // power 0.5 over the train split: counts 6, 4, 2, 0 -> 6^-.5, 4^-.5, 2^-.5, 0 over their mean.
  auto r = weights({"--data", pack, "--power", "0.5", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = json::parse(r.out);
  EXPECT_EQ(j["counts"].get<std::vector<int64_t>>(), (std::vector<int64_t>{6, 4, 2, 0}));
  const double a = 1 / std::sqrt(6.0), b = 0.5, c = 1 / std::sqrt(2.0), m = (a + b + c) / 4;
  auto w = weights_of(j);
  EXPECT_NEAR(w[0], a / m, 1e-6);
  EXPECT_NEAR(w[1], b / m, 1e-6);
  EXPECT_NEAR(w[2], c / m, 1e-6);
  EXPECT_EQ(w[3], 0.0);

  auto inv = json::parse(weights({"--data", pack, "--mode", "inverse", "--json"}).out);
  const double mi = (1.0 / 6 + 1.0 / 4 + 1.0 / 2) / 4;
  EXPECT_NEAR(weights_of(inv)[2], 0.5 / mi, 1e-6);
  EXPECT_EQ(weights_of(json::parse(weights({"--data", pack, "--mode", "none", "--json"}).out)),
            (std::vector<double>{1, 1, 1, 1}));
  auto test = json::parse(weights({"--data", pack, "--split", "test", "--json"}).out);
  EXPECT_EQ(test["counts"].get<std::vector<int64_t>>(), (std::vector<int64_t>{0, 0, 6, 0}));
  auto all = json::parse(weights({"--data", pack, "--split", "all", "--json"}).out);
  EXPECT_EQ(all["counts"].get<std::vector<int64_t>>(), (std::vector<int64_t>{6, 4, 8, 0}));
  EXPECT_EQ(all["cases"].get<int>(), 3);
}

TEST(WeightsTool, TableOnStdoutAndJsonToAFile) {
  ScratchDir tmp;
  const auto pack = small_pack(tmp).string();
  auto r = weights({"--data", pack, "--json", (tmp / "w.json").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("from 2 case(s) of split train"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("one"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("weights: ["), std::string::npos) << r.out;
  EXPECT_EQ(json::parse(seg::read_file(tmp / "w.json"))["counts"][1].get<int>(), 4);
}

TEST(WeightsTool, BadInputAndUsageErrors) {
  ScratchDir tmp;
  const auto pack = small_pack(tmp).string();
  auto split = weights({"--data", pack, "--split", "val"});
  EXPECT_EQ(split.code, 1);
  EXPECT_NE(split.err.find("no split \"val\" (it has: test, train)"), std::string::npos) << split.err;
  EXPECT_EQ(weights({"--data", pack, "--mode", "median"}).code, 2);
  EXPECT_EQ(weights({"--data", pack, "--power", "-1"}).code, 2);
  EXPECT_EQ(weights({}).code, 2);  // --data is required
  auto missing = weights({"--data", (tmp / "none.pth").string()});
  EXPECT_EQ(missing.code, 1);
  EXPECT_NE(missing.err.find("none.pth"), std::string::npos) << missing.err;
}

// A class table with a gap in its values ({0, 1, 2, 5}) gets one weight per class, not one per
// value up to the largest: four weights for a four-class network.
TEST(WeightsTool, OneWeightPerClassOfTheTableWhateverItsValues) {
  ScratchDir tmp;
  seg::Dataset d;
  d.name = "gaps";
  d.source = "memory";
  d.images = torch::zeros({1, 2, 4}, torch::kByte);
  d.labels = torch::tensor({0, 0, 0, 1, 1, 2, 5, 5}, torch::kByte).view({1, 2, 4});
  d.cases = {"a"};
  d.classes.entries = {{"background", 0}, {"one", 1}, {"two", 2}, {"five", 5}};
  d.splits["train"] = {"a"};
  seg::save_tensor_pack(d, tmp / "gaps.pth");
  const auto r = weights({"--data", (tmp / "gaps.pth").string(), "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = json::parse(r.out);
  EXPECT_EQ(j["counts"].get<std::vector<int64_t>>(), (std::vector<int64_t>{3, 2, 1, 2}));
  EXPECT_EQ(j["values"].get<std::vector<int>>(), (std::vector<int>{0, 1, 2, 5}));
  EXPECT_EQ(j["classes"].get<std::vector<std::string>>(), (std::vector<std::string>{"background", "one", "two", "five"}));
  EXPECT_EQ(weights_of(j).size(), 4u);
}
