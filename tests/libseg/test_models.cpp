#include <seg/error.h>
#include <seg/model_file.h>
#include <seg/models.h>
#include <seg/predict.h>
#include <torch/torch.h>

#include <gtest/gtest.h>

#include <tuple>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdlib>
#include <fstream>

#include "small_model.h"
#include "test_support.h"

using seg::testing::ScratchDir;
using seg::testing::small_model;

// The notebook states these counts; they pin down every layer's shape.
TEST(Networks, TrainableParameterCountsMatchTheNotebook) {
  EXPECT_EQ(seg::count_trainable_parameters(*seg::make_network({"fcn", 1, 6})), 63686);
  EXPECT_EQ(seg::count_trainable_parameters(*seg::make_network({"fcn-wide", 1, 6})), 973574);
  EXPECT_EQ(seg::count_trainable_parameters(*seg::make_network({"light-unet", 1, 6})), 3873094);
}

TEST(Networks, OutputResolution) {
  torch::NoGradGuard no_grad;
  auto x = torch::randn({2, 1, 64, 48});
  EXPECT_EQ(seg::make_network({"fcn", 1, 6})->forward(x).sizes(), (std::vector<int64_t>{2, 6, 16, 12}));
  EXPECT_EQ(seg::make_network({"light-unet", 1, 4})->forward(x).sizes(), (std::vector<int64_t>{2, 4, 64, 48}));
}

TEST(Networks, UnknownNameListsTheKnownOnes) {
  try {
    seg::make_network({"resnet-9000", 1, 6});
    FAIL();
  } catch (const seg::UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("light-unet"), std::string::npos);
  }
}

TEST(Networks, ParameterNamesFollowThePyTorchModules) {
  auto fcn = seg::make_network({"fcn", 1, 6});
  auto names = fcn->named_parameters().keys();
  EXPECT_EQ(names.front(), "0.0.weight");
  EXPECT_EQ(names.back(), "4.bias");
  auto unet = seg::make_network({"light-unet", 1, 6});
  EXPECT_EQ(unet->named_parameters().keys().front(), "encoder_block1.0.weight");
  EXPECT_EQ(unet->named_parameters().keys().back(), "classifier.bias");
}

TEST(ModelFile, RoundTripCarriesWeightsAndMetadata) {
  ScratchDir tmp;
  auto m = small_model(3);
  seg::save_model(m, tmp / "model.pth");
  auto back = seg::load_model(tmp.path());  // a run folder works as well as the file
  EXPECT_EQ(back.info.network.architecture, "fcn");
  EXPECT_EQ(back.info.classes.entries, m.info.classes.entries);
  EXPECT_EQ(back.info.input_size, m.info.input_size);
  EXPECT_DOUBLE_EQ(back.info.normalization.std, 20.0);
  EXPECT_NE(back.info.provenance_json.find("epochs_done"), std::string::npos);
  EXPECT_TRUE(back.info.postprocessing.empty());
  auto raw = torch::rand({2, 40, 24}) * 255;
  auto a = seg::predict_logits(m, raw, torch::kCPU);
  auto b = seg::predict_logits(back, raw, torch::kCPU);
  EXPECT_EQ(a.sizes(), (std::vector<int64_t>{2, 3, 40, 24}));  // back on the input's own grid
  EXPECT_TRUE(torch::equal(a, b));
}

// The framing travels with the model; files written before it existed have none; a margin
// that cannot be one is refused, naming the file.
TEST(ModelFile, CarriesItsFraming) {
  ScratchDir tmp;
  auto m = small_model(3);
  m.info.framing = seg::Framing{0.1, 0.2, 0.15, 0.125};
  seg::save_model(m, tmp / "model.pth");
  const auto back = seg::load_model(tmp / "model.pth").info.framing;
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(std::make_tuple(back->top, back->bottom, back->left, back->right), std::make_tuple(0.1, 0.2, 0.15, 0.125));
  auto j = nlohmann::json::parse(seg::model_info_to_json(m.info));
  j.erase("framing");
  EXPECT_FALSE(seg::model_info_from_json(j.dump(), "old.pth").framing.has_value());
  j["framing"] = {{"top", 0.1}, {"bottom", -0.2}, {"left", 0.1}, {"right", 0.1}};
  try {
    seg::model_info_from_json(j.dump(), "odd.pth");
    ADD_FAILURE() << "a negative margin was accepted";
  } catch (const seg::Error& e) {
    EXPECT_NE(std::string(e.what()).find("odd.pth"), std::string::npos) << e.what();
  }
}

// The structures drawn over others travel with the model (seg-segment --whole); files written
// before 2026-12-05 have none; one the class table does not hold is refused, naming the file.
TEST(ModelFile, CarriesTheStructuresItsLabelsDrewOver) {
  ScratchDir tmp;
  auto m = small_model(3);
  const int last = m.info.classes.max_value();
  m.info.overlaps = {{1, last}};
  seg::save_model(m, tmp / "model.pth");
  const auto back = seg::load_model(tmp / "model.pth").info.overlaps;
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(std::make_pair(back[0].under, back[0].over), std::make_pair(1, last));
  auto j = nlohmann::json::parse(seg::model_info_to_json(m.info));
  j.erase("overlaps");
  EXPECT_TRUE(seg::model_info_from_json(j.dump(), "old.pth").overlaps.empty());
  for (const auto& bad : {nlohmann::json{{"under", 1}, {"over", last + 1}}, nlohmann::json{{"under", 0}, {"over", 1}},
                          nlohmann::json{{"under", 1}, {"over", 1}}}) {
    j["overlaps"] = nlohmann::json::array({bad});
    try {
      seg::model_info_from_json(j.dump(), "odd.pth");
      ADD_FAILURE() << "accepted " << bad;
    } catch (const seg::Error& e) {
      EXPECT_NE(std::string(e.what()).find("odd.pth"), std::string::npos) << e.what();
    }
  }
}

// The recommended clean-up travels with the model; files written before it existed read as
// none; an unknown step is refused, naming the file.
TEST(ModelFile, CarriesItsPostprocessing) {
  ScratchDir tmp;
  auto m = small_model(3);
  m.info.postprocessing = {"largest-component", "fill-holes"};
  seg::save_model(m, tmp / "model.pth");
  EXPECT_EQ(seg::load_model(tmp / "model.pth").info.postprocessing, m.info.postprocessing);
  auto j = nlohmann::json::parse(seg::model_info_to_json(m.info));
  j.erase("postprocessing");
  EXPECT_TRUE(seg::model_info_from_json(j.dump(), "old.pth").postprocessing.empty());
  j["postprocessing"] = {"largest-component", "erode"};
  try {
    seg::model_info_from_json(j.dump(), "odd.pth");
    ADD_FAILURE() << "an unknown step was accepted";
  } catch (const seg::Error& e) {
    EXPECT_NE(std::string(e.what()).find("odd.pth"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("erode"), std::string::npos) << e.what();
  }
}

// float16 weights: half the file, the same network to within rounding, and back to float32
// in memory; a weight outside the float16 range is refused rather than stored as inf.
TEST(ModelFile, HalfPrecisionHalvesTheFileAndKeepsThePredictions) {
  ScratchDir tmp;
  auto m = small_model(3);
  seg::save_model(m, tmp / "full.pth");
  m.stored_as = seg::WeightPrecision::float16;
  seg::save_model(m, tmp / "half.pth");
  EXPECT_LT(std::filesystem::file_size(tmp / "half.pth"), 0.6 * std::filesystem::file_size(tmp / "full.pth"));
  EXPECT_EQ(seg::load_model(tmp / "full.pth").stored_as, seg::WeightPrecision::float32);
  auto half = seg::load_model(tmp / "half.pth");
  EXPECT_EQ(half.stored_as, seg::WeightPrecision::float16);
  for (const auto& item : half.net->named_parameters()) {
    const auto original = m.net->named_parameters()[item.key()];
    EXPECT_EQ(item.value().scalar_type(), torch::kFloat) << item.key();
    EXPECT_TRUE(torch::equal(item.value(), original.to(torch::kHalf).to(torch::kFloat))) << item.key();
  }
  torch::manual_seed(8);
  auto raw = torch::rand({2, 48, 40}) * 255;
  auto a = seg::predict_logits(m, raw, torch::kCPU);
  auto b = seg::predict_logits(half, raw, torch::kCPU);
  EXPECT_LT((a - b).abs().max().item<double>(), 0.02 * a.abs().max().item<double>());
  EXPECT_GT(a.argmax(1).eq(b.argmax(1)).to(torch::kDouble).mean().item<double>(), 0.99);

  {
    torch::NoGradGuard no_grad;
    m.net->named_parameters()["4.bias"][0].fill_(1e6);
  }
  try {
    seg::save_model(m, tmp / "huge.pth");
    ADD_FAILURE() << "a weight of 1e6 was stored in float16";
  } catch (const seg::Error& e) {
    EXPECT_NE(std::string(e.what()).find("4.bias"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(tmp / "huge.pth"));
}

TEST(ModelFile, RejectsAModelForAnotherNetwork) {
  ScratchDir tmp;
  auto m = small_model(3);
  seg::save_model(m, tmp / "model.pth");
  auto other = seg::make_network({"fcn", 1, 6});  // six classes, not three
  EXPECT_THROW(seg::load_state_dict(*other, tmp / "model.pth"), seg::Error);
  std::ofstream(tmp / "junk.pth") << "not a model";
  EXPECT_THROW(seg::load_model(tmp / "junk.pth"), seg::Error);
  EXPECT_THROW(seg::load_model(tmp.path() / "missing.pth"), seg::Error);
}

TEST(Predict, LabelsUseTheClassValues) {
  // Channel k means the k-th class of the table, whose value need not be k.
  seg::ClassTable classes{{{"background", 0}, {"lung", 10}, {"heart", 20}}};
  auto logits = torch::zeros({1, 3, 1, 3});
  logits[0][0][0][0] = 1;
  logits[0][1][0][1] = 1;
  logits[0][2][0][2] = 1;
  auto labels = seg::logits_to_labels(logits, classes);
  EXPECT_EQ(labels[0][0][0].item<int>(), 0);
  EXPECT_EQ(labels[0][0][1].item<int>(), 10);
  EXPECT_EQ(labels[0][0][2].item<int>(), 20);
}

TEST(Predict, ImageNormalizationIgnoresScaleAndOutliers) {
  torch::manual_seed(5);
  auto image = torch::rand({1, 64, 64}) * 1000;
  auto scaled = image * 16 + 7;                // another bit depth and offset
  scaled[0][0][0] = 1e9;                        // burnt-in marker
  seg::Normalization per_image{"image", 0, 1};
  auto a = seg::normalize_images(image, per_image);
  auto b = seg::normalize_images(scaled, per_image);
  EXPECT_LT((a - b).abs().flatten().slice(0, 1).max().item<double>(), 1e-2);  // float rounding at 16000
  EXPECT_NEAR(a.mean().item<double>(), 0.0, 1e-4);
}

// Python's torch.load reads our model file (interchange with PyTorch).
TEST(ModelFile, PythonTorchLoadReadsIt) {
  if (std::system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "/usr/bin/python3 with torch not available: skipped";
  ScratchDir tmp;
  seg::save_model(small_model(3), tmp / "model.pth");
  const std::string script =
      "import torch, json, sys\n"
      "m = torch.load(sys.argv[1])\n"
      "meta = json.loads(m['metadata'])\n"
      "assert meta['architecture'] == 'fcn' and meta['num_classes'] == 3\n"
      "net = torch.nn.Sequential(*[torch.nn.Sequential(torch.nn.Conv2d(i, o, 3, stride=s, padding=1), torch.nn.InstanceNorm2d(o), torch.nn.LeakyReLU())"
      " for i, o, s in [(1,16,2),(16,32,2),(32,64,1),(64,64,1)]], torch.nn.Conv2d(64, 3, 3, padding=1))\n"
      "net.load_state_dict(m['state_dict'])\n"
      "torch.save(dict(net.state_dict()), sys.argv[2])\n";
  std::ofstream(tmp / "check.py") << script;
  const std::string cmd = "/usr/bin/python3 " + (tmp / "check.py").string() + " " + (tmp / "model.pth").string() +
                          " " + (tmp / "state.pth").string();
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  // And the state_dict Python wrote loads back into our network.
  auto net = seg::make_network({"fcn", 1, 3});
  seg::load_state_dict(*net, tmp / "state.pth");
  auto original = small_model(3);
  EXPECT_TRUE(torch::equal(net->named_parameters()["4.weight"], original.net->named_parameters()["4.weight"]));
}

TEST(Networks, FastPresetIsSmallAndPredictsAtHalfResolution) {
  auto net = seg::make_network({"fast", 1, 6});
  const auto params = seg::count_trainable_parameters(*net);
  EXPECT_GT(params, 400000);
  EXPECT_LT(params, 500000);
  torch::NoGradGuard no_grad;
  EXPECT_EQ(net->forward(torch::randn({1, 1, 64, 64})).sizes(), (std::vector<int64_t>{1, 6, 32, 32}));
}

TEST(Networks, ResidualUNetPredictsAtFullResolutionWithTwoAuxiliaryHeads) {
  auto net = seg::make_network({"res-unet", 1, 6});
  // Pins every layer's shape (the shipped jsrt-res-unet.pth loads only into this one); in
  // float32 8.3 MB (shipped as float16, 4.2 MB), under the 10 MB a shipped model may take.
  EXPECT_EQ(seg::count_trainable_parameters(*net), 2076978);
  torch::NoGradGuard no_grad;
  net->eval();
  const auto x = torch::randn({2, 1, 64, 48});
  const auto outputs = net->forward_supervised(x);
  ASSERT_EQ(outputs.size(), 3u);
  EXPECT_EQ(outputs[0].sizes(), (std::vector<int64_t>{2, 6, 64, 48}));
  EXPECT_EQ(outputs[1].sizes(), (std::vector<int64_t>{2, 6, 32, 24}));
  EXPECT_EQ(outputs[2].sizes(), (std::vector<int64_t>{2, 6, 16, 12}));
  // Inference sees the full-resolution head only, the same logits.
  EXPECT_TRUE(torch::allclose(net->forward(x), outputs[0]));
  // Odd sizes: the decoder upsamples to each skip's size.
  EXPECT_EQ(net->forward(torch::randn({1, 1, 37, 29})).sizes(), (std::vector<int64_t>{1, 6, 37, 29}));
}

TEST(Networks, ResidualBlocksChangeWidthThroughAProjection) {
  auto net = seg::make_network({"res-unet", 1, 6});
  const auto names = net->named_parameters().keys();
  auto has = [&](const std::string& name) { return std::find(names.begin(), names.end(), name) != names.end(); };
  EXPECT_TRUE(has("encoder2.shortcut.0.weight"));   // 16 -> 32 channels at stride 2
  EXPECT_TRUE(has("decoder1.conv2.weight"));        // the full-resolution decoder block
  EXPECT_TRUE(has("auxiliary2.weight"));            // the 1/4-resolution head
  EXPECT_FALSE(has("auxiliary3.weight"));
}
