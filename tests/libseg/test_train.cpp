#include <seg/dataset.h>
#include <seg/error.h>
#include <seg/fs.h>
#include <seg/train.h>
#include <torch/torch.h>

#include <gtest/gtest.h>

#include <tuple>
#include <nlohmann/json.hpp>

#include "test_support.h"

using seg::testing::ScratchDir;

namespace {

// Discs (label 1) and squares (label 2), brighter than a noisy background: learnable in a
// few steps by the smallest network.
seg::Dataset shapes_dataset(int64_t n = 12, int64_t size = 32) {
  torch::manual_seed(11);
  seg::Dataset d;
  d.name = "shapes";
  d.source = "generated";
  d.classes = {{{"background", 0}, {"disc", 1}, {"square", 2}}};
  auto images = torch::zeros({n, size, size}, torch::kFloat);
  auto labels = torch::zeros({n, size, size}, torch::kByte);
  auto yy = torch::arange(size).view({size, 1}).expand({size, size});
  auto xx = torch::arange(size).view({1, size}).expand({size, size});
  for (int64_t i = 0; i < n; ++i) {
    const int64_t cy = 8 + (i * 5) % 12, cx = 8 + (i * 3) % 10;
    auto disc = ((yy - cy) * (yy - cy) + (xx - cx) * (xx - cx)) < 25;
    auto square = (yy >= 20) & (yy < 28) & (xx >= 20 - i % 4) & (xx < 28 - i % 4);
    labels[i].masked_fill_(disc, 1);
    labels[i].masked_fill_(square, 2);
    images[i] = 60 + 40 * torch::randn({size, size});
    images[i].masked_fill_(disc, 200);
    images[i].masked_fill_(square, 140);
  }
  d.images = images.clamp(0, 255).to(torch::kByte);
  d.labels = labels;
  for (int64_t i = 0; i < n; ++i) d.cases.push_back("case" + std::to_string(i));
  d.splits["train"] = std::vector<std::string>(d.cases.begin(), d.cases.begin() + n - 3);
  d.splits["test"] = std::vector<std::string>(d.cases.end() - 3, d.cases.end());
  return d;
}

// The notebook's kind of recipe, quicker; it validates on the test split, as the notebook does.
seg::TrainOptions quick_options(int64_t epochs) {
  seg::TrainOptions o;
  o.recipe.network = "fcn";
  o.recipe.epochs = epochs;
  o.recipe.batch = 3;
  o.recipe.lr = 1e-2;
  o.recipe.seed = 7;
  o.recipe.validation.split = "test";
  o.recipe.validation.every = 2;
  o.run.device = "cpu";
  o.run.checkpoint_every_s = 0;  // a checkpoint after every epoch: the resume tests stop between any two
  return o;
}

// A recipe of share/recipes.
seg::Recipe shipped_recipe(const std::string& name) {
  const auto recipe = seg::read_recipe(name);
  return seg::recipe_stages(recipe.text, recipe.source).front();
}

// After each epoch: the epoch checkpoint.pt holds (0: none yet), read from the file itself.
struct CheckpointWatch : seg::TrainObserver {
  std::filesystem::path path;
  std::vector<int64_t> held;
  explicit CheckpointWatch(std::filesystem::path p) : path(std::move(p)) {}
  void on_epoch(const seg::EpochLog&, const std::vector<seg::EpochLog>&) override {
    int64_t epoch = 0;
    if (std::filesystem::exists(path)) {
      torch::serialize::InputArchive archive;
      archive.load_from(path.string());
      c10::IValue value;
      archive.read("epoch", value);
      epoch = value.toInt();
    }
    held.push_back(epoch);
  }
  // 1-based epochs after which the checkpoint was that epoch's.
  std::vector<int64_t> written() const {
    std::vector<int64_t> epochs;
    for (size_t k = 0; k < held.size(); ++k)
      if (held[k] == static_cast<int64_t>(k) + 1) epochs.push_back(held[k]);
    return epochs;
  }
};

// Stops a run after an epoch's checkpoint, as a kill between epochs would.
struct Interrupt : seg::TrainObserver {
  int64_t after;
  explicit Interrupt(int64_t epoch) : after(epoch) {}
  void on_epoch(const seg::EpochLog& r, const std::vector<seg::EpochLog>&) override {
    if (r.epoch == after) throw std::runtime_error("interrupted");
  }
};

std::vector<at::Tensor> weights_of(const seg::Model& m) {
  std::vector<at::Tensor> w;
  for (const auto& p : m.net->parameters()) w.push_back(p.detach().clone());
  return w;
}

}  // namespace

class TrainTest : public ::testing::Test {
 protected:
  void SetUp() override { torch::set_num_threads(1); }
};

TEST_F(TrainTest, LossFallsAndTheRunFolderHoldsEverything) {
  ScratchDir run;
  auto result = seg::train_network(shapes_dataset(), quick_options(12), run.path());
  ASSERT_EQ(result.history.size(), 12u);
  EXPECT_LT(result.history.back().loss, 0.6 * result.history.front().loss);
  EXPECT_GT(result.history.back().mean_dice(), 0.5);
  EXPECT_EQ(seg::testing::list_files(run.path()), (std::vector<std::string>{"checkpoint.pt", "log.csv", "model.pth"}));
  const auto csv = seg::read_file(run / "log.csv");
  EXPECT_EQ(csv.substr(0, csv.find('\n')), "epoch,loss,seconds,dice_disc,dice_square,mean_dice");
  auto model = seg::load_model(run.path());
  EXPECT_NE(model.info.provenance_json.find("\"val_mean_dice\""), std::string::npos);
  EXPECT_EQ(model.info.input_size, (std::vector<int64_t>{32, 32}));
  // Reframing scored on the validation cases, and kept (with where the training split's
  // structures sit) unless it lowered their mean Dice.
  const auto provenance = nlohmann::json::parse(model.info.provenance_json);
  ASSERT_TRUE(provenance.contains("reframing_val_mean_dice")) << provenance.dump();
  const auto& reframing = provenance["reframing_val_mean_dice"];
  const bool earned = reframing.at("reframed").get<double>() >= reframing.at("one pass").get<double>();
  ASSERT_EQ(model.info.framing.has_value(), earned) << reframing.dump();
  if (earned) {
    const auto expected = seg::measure_framing(shapes_dataset().subset("train").labels, "shapes");
    EXPECT_EQ(std::make_tuple(model.info.framing->top, model.info.framing->bottom, model.info.framing->left,
                              model.info.framing->right),
              std::make_tuple(expected.top, expected.bottom, expected.left, expected.right));
  }
}

TEST_F(TrainTest, ResumedRunReachesTheSameWeights) {
  ScratchDir whole, split;
  const auto data = shapes_dataset();
  auto uninterrupted = seg::train_network(data, quick_options(4), whole.path());
  Interrupt stop(2);
  EXPECT_THROW(seg::train_network(data, quick_options(4), split.path(), &stop), std::runtime_error);
  auto resumed = seg::train_network(data, quick_options(4), split.path(), nullptr, /*resume=*/true);
  ASSERT_EQ(resumed.history.size(), 4u);
  const auto a = weights_of(uninterrupted.model), b = weights_of(resumed.model);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "parameter " << i;
  EXPECT_DOUBLE_EQ(uninterrupted.history.back().loss, resumed.history.back().loss);
}

// Checkpoints are spaced in time (each write holds training up), but a started run can always
// be resumed and a finished one holds its last epoch.
TEST_F(TrainTest, CheckpointsAfterTheFirstAndLastEpochAndEverySoManySeconds) {
  const auto data = shapes_dataset();
  auto o = quick_options(4);
  ScratchDir spaced, every;
  o.run.checkpoint_every_s = 1e6;
  CheckpointWatch watch_spaced(spaced.path() / "checkpoint.pt");
  seg::train_network(data, o, spaced.path(), &watch_spaced);
  EXPECT_EQ(watch_spaced.written(), (std::vector<int64_t>{1, 4}));
  o.run.checkpoint_every_s = 0;
  CheckpointWatch watch_every(every.path() / "checkpoint.pt");
  seg::train_network(data, o, every.path(), &watch_every);
  EXPECT_EQ(watch_every.written(), (std::vector<int64_t>{1, 2, 3, 4}));
  // The spaced run resumes and extends like any other.
  o.recipe.epochs = 5;
  const auto extended = seg::train_network(data, o, spaced.path(), nullptr, /*resume=*/true);
  EXPECT_EQ(extended.history.size(), 5u);
  EXPECT_EQ(seg::read_run_options(spaced.path()).run.checkpoint_every_s, 1e6);  // the run's own setting
}

// --cuda-graph's step (fixed buffers, the optimiser's scalars on the device) trains as the
// eager step does: the same draws, batches and schedule, the same weights to float rounding.
// On the CPU it runs eagerly; on CUDA it is recorded and replayed (the Cuda test below).
void expect_graphed_step_trains_like_eager(const torch::Device& device) {
  const auto data = shapes_dataset();
  auto o = quick_options(3);
  o.run.device = device.str();
  o.recipe.optimizer = "adamw";
  o.recipe.weight_decay = 1e-3;
  o.recipe.schedule = "onecycle";
  o.recipe.loss = "ce+dice";
  ScratchDir eager_dir, graphed_dir;
  const auto eager = seg::train_network(data, o, eager_dir.path());
  o.run.cuda_graph = true;
  const auto graphed = seg::train_network(data, o, graphed_dir.path());
  // The kernels, and what the networks compute. (Not the biases ahead of an instance norm:
  // their gradients are rounding noise, which Adam's normalised steps blow up to the step size.)
  const auto a = weights_of(eager.model), b = weights_of(graphed.model);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].dim() > 1) {
      EXPECT_TRUE(torch::allclose(a[i].cpu(), b[i].cpu(), 1e-3, 1e-4)) << "parameter " << i << ": "
          << (a[i] - b[i]).abs().max().item<double>();
    }
  }
  const auto x = ((data.images.narrow(0, 0, 4).to(torch::kFloat) - 128) / 64).unsqueeze(1).to(device);
  auto predict = [&x](const seg::Model& m) {
    torch::NoGradGuard no_grad;
    return m.net->forward(x);
  };
  const auto out_eager = predict(eager.model), out_graphed = predict(graphed.model);
  EXPECT_TRUE(torch::allclose(out_eager, out_graphed, 1e-3, 1e-3)) << (out_eager - out_graphed).abs().max().item<double>();
  for (size_t e = 0; e < eager.history.size(); ++e)
    EXPECT_NEAR(eager.history[e].loss, graphed.history[e].loss, 1e-4 * eager.history[e].loss) << "epoch " << e + 1;
  // What a wrong batch or a frozen schedule gives, for scale: another seed's run is far off.
  o.run.cuda_graph = false;
  o.recipe.seed = 8;
  ScratchDir other_dir;
  const auto other = seg::train_network(data, o, other_dir.path());
  EXPECT_FALSE(torch::allclose(a[0].cpu(), weights_of(other.model)[0].cpu(), 1e-3, 1e-4));
  EXPECT_FALSE(torch::allclose(out_eager, predict(other.model), 1e-3, 1e-3));
  // A graphed run resumes as any other: its checkpoint holds the optimiser's step count.
  o.recipe.seed = 7;
  o.run.cuda_graph = true;
  o.recipe.epochs = 4;
  const auto resumed = seg::train_network(data, o, graphed_dir.path(), nullptr, /*resume=*/true);
  EXPECT_EQ(resumed.history.size(), 4u);
  EXPECT_LT(resumed.history.back().loss, graphed.history.front().loss);
}

TEST_F(TrainTest, GraphedStepTrainsLikeTheEagerStep) { expect_graphed_step_trains_like_eager(torch::kCPU); }

TEST_F(TrainTest, CudaGraphTrainsLikeTheEagerStep) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  expect_graphed_step_trains_like_eager(torch::kCUDA);
}

TEST_F(TrainTest, CudaGraphRefusesWhatItCannotRecord) {
  ScratchDir run;
  auto o = quick_options(1);
  o.run.cuda_graph = true;
  auto& strengths = o.recipe.augmentation.strengths;
  for (const std::string name : {"zoom", "opacity", "devices", "rotation", "intensity", "elastic", "texture", "processing"}) {
    strengths[name] = 0.5;
    EXPECT_THROW(seg::train_network(shapes_dataset(), o, run.path()), seg::UsageError) << name;
    strengths[name] = 0;
  }
  o.run.precision = "bfloat16";
  EXPECT_THROW(seg::train_network(shapes_dataset(), o, run.path()), seg::UsageError);
  EXPECT_TRUE(seg::testing::list_files(run.path()).empty());
}

TEST_F(TrainTest, SameSeedSameWeightsOtherSeedOthers) {
  ScratchDir a, b, c;
  const auto data = shapes_dataset();
  auto o = quick_options(2);
  auto run1 = seg::train_network(data, o, a.path());
  auto run2 = seg::train_network(data, o, b.path());
  auto first = weights_of(run1.model), second = weights_of(run2.model);
  o.recipe.seed = 8;
  auto third = weights_of(seg::train_network(data, o, c.path()).model);
  EXPECT_TRUE(torch::equal(first[0], second[0]));
  EXPECT_TRUE(torch::equal(first.back(), second.back()));
  EXPECT_FALSE(torch::equal(first[0], third[0]));
  for (size_t e = 0; e < run1.history.size(); ++e) {
    EXPECT_EQ(run1.history[e].loss, run2.history[e].loss);  // bit-identical, not merely close
    EXPECT_EQ(run1.history[e].val_dice, run2.history[e].val_dice);
  }
}

TEST_F(TrainTest, TooFewCasesForOneBatchIsAnError) {
  ScratchDir run;
  auto o = quick_options(1);
  o.recipe.batch = 64;
  EXPECT_THROW(seg::train_network(shapes_dataset(), o, run.path()), seg::Error);
  EXPECT_TRUE(seg::testing::list_files(run.path()).empty());
}

TEST_F(TrainTest, ResumeWithoutCheckpointIsAnError) {
  ScratchDir run;
  EXPECT_THROW(seg::train_network(shapes_dataset(), quick_options(1), run.path(), nullptr, true), seg::Error);
}

TEST(Schedule, OneCycleWarmsUpThenAnneals) {
  const double base = 1e-2;
  EXPECT_NEAR(seg::scheduled_lr("onecycle", base, 0, 101), base / 25, 1e-12);
  EXPECT_NEAR(seg::scheduled_lr("onecycle", base, 30, 101), base, 1e-9);  // the peak at 30 %
  EXPECT_NEAR(seg::scheduled_lr("onecycle", base, 100, 101), base / 1e4, 1e-12);
  EXPECT_LT(seg::scheduled_lr("onecycle", base, 60, 101), seg::scheduled_lr("onecycle", base, 40, 101));
  EXPECT_DOUBLE_EQ(seg::scheduled_lr("constant", base, 50, 101), base);
  EXPECT_NEAR(seg::scheduled_lr("poly", base, 100, 101), 0.0, 1e-12);
}

TEST_F(TrainTest, FastRecipeLearnsAndResumesExactly) {
  ScratchDir whole, split;
  const auto data = shapes_dataset();
  auto o = quick_options(4);
  o.recipe = shipped_recipe("fast");
  o.recipe.epochs = 4;
  o.recipe.validation.holdout = 3;  // of the 9 training cases
  o.recipe.validation.every = 2;
  auto uninterrupted = seg::train_network(data, o, whole.path());
  EXPECT_LT(uninterrupted.history.back().loss, uninterrupted.history.front().loss);
  Interrupt stop(2);
  EXPECT_THROW(seg::train_network(data, o, split.path(), &stop), std::runtime_error);
  auto resumed = seg::train_network(data, o, split.path(), nullptr, true);
  // The schedule and AdamW state continue where they stopped.
  const auto a = weights_of(uninterrupted.model), b = weights_of(resumed.model);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "parameter " << i;
}

TEST(DeepSupervision, LossWeighsCoarserOutputsByHalvesNormalised) {
  torch::manual_seed(5);
  const auto labels = torch::randint(0, 3, {2, 16, 16}, torch::kLong);
  const auto weights = torch::ones({3});
  const auto full = torch::randn({2, 3, 16, 16}), half = torch::randn({2, 3, 8, 8}), quarter = torch::randn({2, 3, 4, 4});
  auto single = [&](const at::Tensor& logits) { return seg::training_loss(logits, labels, weights, "ce+dice").item<double>(); };
  const double expected = (single(full) + 0.5 * single(half) + 0.25 * single(quarter)) / 1.75;
  EXPECT_NEAR(seg::training_loss({full, half, quarter}, labels, weights, "ce+dice").item<double>(), expected, 1e-5);
  EXPECT_NEAR(seg::training_loss(std::vector<at::Tensor>{full}, labels, weights, "ce").item<double>(),
              seg::training_loss(full, labels, weights, "ce").item<double>(), 1e-7);
}

TEST_F(TrainTest, ResidualUNetRecipeTrainsEveryHead) {
  ScratchDir run;
  const auto data = shapes_dataset();
  auto o = quick_options(3);
  o.recipe = shipped_recipe("res-unet");
  EXPECT_EQ(o.recipe.loss, "ce+dice");
  EXPECT_EQ(o.recipe.schedule, "onecycle");
  EXPECT_EQ(o.recipe.normalization, "image");  // made for radiographs from elsewhere
  EXPECT_GT(o.recipe.augmentation.strength("zoom"), 0.0);
  o.recipe.epochs = 3;
  o.recipe.validation = {"test", 0, 3};
  o.recipe.weight_decay = 0;  // AdamW's decay alone would move heads that get no gradient
  auto result = seg::train_network(data, o, run.path());
  EXPECT_LT(result.history.back().loss, result.history.front().loss);
  // Deep supervision reaches the auxiliary heads, which forward() never uses: training
  // moved them from their initial weights (train_network seeds the initialisation).
  torch::manual_seed(o.recipe.seed);
  const auto initial = seg::make_network({"res-unet", 1, 3})->named_parameters();
  const auto trained = result.model.net->named_parameters();
  EXPECT_FALSE(torch::equal(initial["auxiliary1.weight"], trained["auxiliary1.weight"]));
  EXPECT_FALSE(torch::equal(initial["auxiliary2.weight"], trained["auxiliary2.weight"]));
  EXPECT_EQ(seg::load_model(run.path() / "model.pth").info.network.architecture, "res-unet");
}

TEST_F(TrainTest, ChannelsLastTrainsTheSameNetwork) {
  const auto data = shapes_dataset();
  ScratchDir plain, nhwc;
  auto o = quick_options(2);
  const auto reference = seg::train_network(data, o, plain.path());
  o.run.channels_last = true;
  const auto result = seg::train_network(data, o, nhwc.path());
  // The run's weights were NHWC (the option reached the network)...
  // (a weight with several input channels: with one, both orders are the same strides)
  const auto params = result.model.net->parameters();
  const auto conv = std::find_if(params.begin(), params.end(), [](const at::Tensor& p) { return p.dim() == 4 && p.size(1) > 1; });
  ASSERT_NE(conv, params.end());
  EXPECT_TRUE(conv->is_contiguous(at::MemoryFormat::ChannelsLast));
  EXPECT_FALSE(conv->is_contiguous());
  // ... and only the memory order differs: the same steps, to float rounding.
  ASSERT_EQ(result.history.size(), reference.history.size());
  for (size_t e = 0; e < reference.history.size(); ++e)
    EXPECT_NEAR(result.history[e].loss, reference.history[e].loss, 1e-4 * reference.history[e].loss) << "epoch " << e + 1;
  const auto a = weights_of(reference.model), b = weights_of(result.model);
  // (Convolution weights only: a bias before an instance norm gets a gradient of rounding noise,
  // which Adam scales up to full steps, so it wanders with the order of any sum.)
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].dim() == 4) {
      EXPECT_TRUE(torch::allclose(a[i], b[i], 1e-3, 1e-4)) << "parameter " << i;
    }
  // The model file holds ordinary contiguous weights that load into any run.
  const auto loaded = seg::load_model(nhwc.path() / "model.pth");
  for (const auto& p : loaded.net->parameters()) EXPECT_TRUE(p.is_contiguous());
}

TEST_F(TrainTest, CudaTrainsLikeTheCpuInEveryPrecisionAndMemoryOrder) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device: CPU/CUDA training agreement not checked";
  const auto data = shapes_dataset();
  auto o = quick_options(2);
  // Every augmentation on: their draws come from the CPU generator, so both devices see the
  // same batches; what runs on the device is the warping, filtering and equalisation.
  o.recipe.augmentation.strengths = {{"intensity", 0.2}, {"elastic", 0.02}, {"zoom", 0.3}, {"texture", 1}, {"processing", 1},
                                     {"opacity", 1}, {"devices", 0.5}, {"rotation", 10}};
  o.recipe.loss = "ce+dice";
  ScratchDir cpu_run;
  const auto reference = seg::train_network(data, o, cpu_run.path());
  o.run.device = "cuda";
  for (const auto& [precision, nhwc] : std::vector<std::pair<std::string, bool>>{{"float32", false}, {"float32", true}, {"bfloat16", true}}) {
    ScratchDir run;
    o.run.precision = precision;
    o.run.channels_last = nhwc;
    const auto result = seg::train_network(data, o, run.path());
    const double tolerance = precision == "float32" ? 0.01 : 0.05;
    for (size_t e = 0; e < reference.history.size(); ++e)
      EXPECT_NEAR(result.history[e].loss, reference.history[e].loss, tolerance * reference.history[e].loss)
          << precision << (nhwc ? " channels-last" : "") << ", epoch " << e + 1;
    EXPECT_EQ(seg::load_model(run.path() / "model.pth").info.network.architecture, "fcn");
  }
}

TEST_F(TrainTest, BFloat16AutocastTrainsCloseToFloat32AndKeepsFloat32Weights) {
  {  // oneDNN's bfloat16 convolution needs AVX-512 (BW, VL, DQ) on the CPU
    torch::NoGradGuard no_grad;
    try {
      const seg::AutocastScope autocast(true, at::kCPU);
      EXPECT_EQ(torch::conv2d(torch::ones({1, 1, 4, 4}), torch::ones({1, 1, 3, 3})).scalar_type(), torch::kBFloat16);
    } catch (const c10::Error&) {
      GTEST_SKIP() << "this CPU has no bfloat16 convolution";
    }
  }
  const auto data = shapes_dataset();
  ScratchDir plain, mixed, rejected;
  auto o = quick_options(2);
  const auto reference = seg::train_network(data, o, plain.path());
  o.run.precision = "bfloat16";
  const auto result = seg::train_network(data, o, mixed.path());
  // bfloat16 keeps 8 bits of mantissa: the first epoch's loss moves, but only a little.
  const double a = reference.history[0].loss, b = result.history[0].loss;
  EXPECT_NE(a, b);
  EXPECT_NEAR(b, a, 0.05 * a);
  EXPECT_TRUE(std::isfinite(result.history.back().loss));
  for (const auto& p : result.model.net->parameters()) EXPECT_EQ(p.scalar_type(), torch::kFloat);
  // The scope ended with the step: what runs after it is float32 again.
  EXPECT_EQ(torch::conv2d(torch::ones({1, 1, 4, 4}), torch::ones({1, 1, 3, 3})).scalar_type(), torch::kFloat);
  o.run.precision = "float16";
  EXPECT_THROW(seg::train_network(data, o, rejected.path()), seg::UsageError);
}

TEST_F(TrainTest, RotationTextureProcessingOpacityAndDevicesReachTheStepAndRepeatWithTheSeed) {
  const auto data = shapes_dataset();
  ScratchDir plain;
  const auto without = weights_of(seg::train_network(data, quick_options(2), plain.path()).model);
  for (const std::string name : {"texture", "processing", "opacity", "devices", "rotation"}) {
    ScratchDir augmented, again, rejected;
    auto o = quick_options(2);
    o.recipe.augmentation.strengths[name] = 1.0;
    const auto with = weights_of(seg::train_network(data, o, augmented.path()).model);
    const auto repeated = weights_of(seg::train_network(data, o, again.path()).model);
    EXPECT_FALSE(torch::equal(without[0], with[0])) << name;
    EXPECT_TRUE(torch::equal(with[0], repeated[0])) << name;
    o.recipe.augmentation.strengths[name] = -1;
    EXPECT_THROW(seg::train_network(data, o, rejected.path()), seg::UsageError) << name;
  }
  ScratchDir rejected;
  auto o = quick_options(2);
  o.recipe.augmentation.strengths["devices"] = 1.5;  // a probability
  EXPECT_THROW(seg::train_network(data, o, rejected.path()), seg::UsageError);
  o.recipe.augmentation.strengths["devices"] = 0;
  o.recipe.augmentation.strengths["rotation"] = 181;  // degrees either way
  EXPECT_THROW(seg::train_network(data, o, rejected.path()), seg::UsageError);
}

TEST_F(TrainTest, InitStartsFromTheModelsWeightsAndNormalisation) {
  ScratchDir base, tuned;
  const auto data = shapes_dataset();
  auto o = quick_options(2);
  o.recipe.normalization = "image";
  const auto trained = seg::train_network(data, o, base.path());
  // Fine-tuning with a learning rate of 0 keeps every weight: the run started from them, not
  // from the seed's random ones, and with the model's normalisation, not the options'.
  auto f = quick_options(1);
  f.recipe.lr = 0;
  f.recipe.seed = 99;
  f.recipe.init = base.path().string();
  const auto kept = seg::train_network(data, f, tuned.path());
  const auto a = weights_of(trained.model), b = weights_of(kept.model);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "parameter " << i;
  EXPECT_EQ(kept.model.info.normalization.mode, "image");
  // ... and a learning rate above 0 moves them.
  ScratchDir moved;
  f.recipe.lr = 1e-2;
  const auto c = weights_of(seg::train_network(data, f, moved.path()).model);
  EXPECT_FALSE(torch::equal(a[0], c[0]));
}

TEST_F(TrainTest, FineTunedModelKeepsTheRecordOfEveryRunBehindIt) {
  ScratchDir base, tuned, again, resumed;
  const auto data = shapes_dataset();
  seg::train_network(data, quick_options(2), base.path());
  auto f = quick_options(1);
  f.recipe.init = base.path().string();
  seg::train_network(data, f, tuned.path());
  f.recipe.init = tuned.path().string();
  const auto twice = seg::train_network(data, f, again.path());
  const auto record = nlohmann::json::parse(twice.model.info.provenance_json);
  ASSERT_TRUE(record.contains("init")) << record.dump();
  EXPECT_EQ(record["recipe"]["init"], tuned.path().string());
  EXPECT_EQ(record["init"]["epochs_done"], 1);
  EXPECT_EQ(record["init"]["recipe"]["init"], base.path().string());
  ASSERT_TRUE(record["init"].contains("init")) << record.dump();
  EXPECT_EQ(record["init"]["init"]["epochs_done"], 2);
  EXPECT_FALSE(record["init"]["init"].contains("init"));
  // A fine-tune stopped and resumed still names where it started.
  Interrupt stop(1);
  f.recipe.epochs = 2;
  EXPECT_THROW(seg::train_network(data, f, resumed.path(), &stop), std::runtime_error);
  const auto finished = seg::train_network(data, f, resumed.path(), nullptr, /*resume=*/true);
  const auto after_resume = nlohmann::json::parse(finished.model.info.provenance_json);
  ASSERT_TRUE(after_resume.contains("init")) << after_resume.dump();
  EXPECT_EQ(after_resume["init"]["epochs_done"], 1);
}

// A run with no validation cases cannot choose a clean-up or reframing: started from a model,
// it keeps that model's choices (a last stage on every case); from scratch it carries none.
TEST_F(TrainTest, RunWithoutValidationKeepsTheChoicesOfTheModelItStartedFrom) {
  ScratchDir base, chosen, tuned, reframing, validated, fresh_run;
  const auto data = shapes_dataset();
  auto start = seg::train_network(data, quick_options(1), base.path()).model;
  // Choices no validation of this data would make by itself, to tell them from a default.
  start.info.postprocessing = {"fill-holes"};
  start.info.framing.reset();
  seg::save_model(start, chosen.path() / "model.pth");
  auto f = quick_options(1);
  f.recipe.init = (chosen.path() / "model.pth").string();
  f.recipe.validation = {"", 0, 1};
  const auto kept = seg::train_network(data, f, tuned.path()).model;
  EXPECT_EQ(kept.info.postprocessing, std::vector<std::string>{"fill-holes"});
  EXPECT_FALSE(kept.info.framing.has_value());
  const auto record = nlohmann::json::parse(kept.info.provenance_json);
  EXPECT_EQ(record.value("postprocessing_chosen_by", ""), "init") << record.dump();
  EXPECT_FALSE(record.contains("postprocessing_val_mean_dice"));
  // The model file carries them, as seg-segment reads it.
  const auto written = seg::load_model(tuned.path() / "model.pth");
  EXPECT_EQ(written.info.postprocessing, std::vector<std::string>{"fill-holes"});
  EXPECT_FALSE(written.info.framing.has_value());
  // A start model that reframes passes that on, measured on the cases this run trains on.
  start.info.framing = seg::Framing{0.1, 0.1, 0.1, 0.1};
  seg::save_model(start, chosen.path() / "model.pth");
  const auto reframes = seg::train_network(data, f, reframing.path()).model;
  ASSERT_TRUE(reframes.info.framing.has_value());
  EXPECT_NE(reframes.info.framing->top, 0.1);
  // A run that validates chooses for itself, and says so.
  f.recipe.validation = {"test", 0, 1};
  const auto own = seg::train_network(data, f, validated.path()).model;
  const auto own_record = nlohmann::json::parse(own.info.provenance_json);
  EXPECT_FALSE(own_record.contains("postprocessing_chosen_by"));
  EXPECT_TRUE(own_record.contains("postprocessing_val_mean_dice"));
  // From scratch without validation there is nothing to keep.
  auto fresh = quick_options(1);
  fresh.recipe.validation = {"", 0, 1};
  const auto none = seg::train_network(data, fresh, fresh_run.path()).model;
  EXPECT_TRUE(none.info.postprocessing.empty());
  EXPECT_FALSE(nlohmann::json::parse(none.info.provenance_json).contains("postprocessing_chosen_by"));
}

TEST_F(TrainTest, InitFromAnotherNetworkOrClassTableIsAnError) {
  ScratchDir base, other_net, other_labels;
  const auto data = shapes_dataset();
  seg::train_network(data, quick_options(1), base.path());
  auto o = quick_options(1);
  o.recipe.init = base.path().string();
  o.recipe.network = "fast";
  EXPECT_THROW(seg::train_network(data, o, other_net.path()), seg::Error);
  o.recipe.network = "fcn";
  auto relabelled = data;
  relabelled.classes = {{{"background", 0}, {"disc", 1}, {"box", 2}}};
  EXPECT_THROW(seg::train_network(relabelled, o, other_labels.path()), seg::Error);
  EXPECT_TRUE(seg::testing::list_files(other_net.path()).empty());
  EXPECT_TRUE(seg::testing::list_files(other_labels.path()).empty());
}

// The recipes' rule: validation cases are a fixed part of the train split, left out of
// training; the model and its run record them.
TEST_F(TrainTest, ValidationCasesAreHeldOutOfTheTrainSplitAndNotTrainedOn) {
  const auto data = shapes_dataset();  // train: case0..case8, test: case9..case11
  auto o = quick_options(2);
  o.recipe.validation = {"", 3, 1};
  const auto cases = seg::choose_validation_cases(data, o.recipe);
  // Every 3rd of the 9 as listed; the rest are trained on; the test split is not touched.
  EXPECT_EQ(cases.val, (std::vector<std::string>{"case2", "case5", "case8"}));
  EXPECT_EQ(cases.train, (std::vector<std::string>{"case0", "case1", "case3", "case4", "case6", "case7"}));
  EXPECT_EQ(seg::choose_validation_cases(data, o.recipe).val, cases.val);  // the same for the same data
  ScratchDir held, without;
  const auto result = seg::train_network(data, o, held.path());
  const auto provenance = nlohmann::json::parse(result.model.info.provenance_json);
  EXPECT_EQ(provenance["val_cases"].get<std::vector<std::string>>(), cases.val);
  EXPECT_EQ(provenance["train_cases"], 6);
  EXPECT_EQ(provenance["validation"], cases.source);
  ASSERT_FALSE(result.history.back().val_dice.empty());
  // Not trained on: the same run on the data without those cases gives the same weights, bit
  // for bit (validation does not touch training).
  auto reduced = data;
  reduced.splits["train"] = cases.train;
  reduced.splits["test"] = cases.val;
  auto plain = o;
  plain.recipe.validation = {"test", 0, 1};
  const auto a = weights_of(result.model), b = weights_of(seg::train_network(reduced, plain, without.path()).model);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "parameter " << i;
  // A train split that cannot spare the cases is an error, before anything is written.
  ScratchDir too_many;
  o.recipe.validation.holdout = 5;
  EXPECT_THROW(seg::train_network(data, o, too_many.path()), seg::Error);
  EXPECT_TRUE(seg::testing::list_files(too_many.path()).empty());
}

// A recipe that validates on a split the data lacks says what it does instead.
TEST(ValidationCases, DataWithoutTheNamedSplitGetsANoteNotSilence) {
  auto data = shapes_dataset();
  seg::Recipe notebook;
  notebook.validation.split = "test";
  auto renamed = data;
  renamed.splits["val"] = renamed.splits["test"];
  renamed.splits.erase("test");
  const auto on_val = seg::choose_validation_cases(renamed, notebook);
  EXPECT_EQ(on_val.val, data.splits["test"]);
  EXPECT_NE(on_val.note.find("split \"val\""), std::string::npos) << on_val.note;
  auto train_only = data;
  train_only.splits.erase("test");
  const auto held = seg::choose_validation_cases(train_only, notebook);
  EXPECT_EQ(held.val.size(), 4u);  // at most half of the 9 training cases
  EXPECT_EQ(held.train.size() + held.val.size(), 9u);
  EXPECT_NE(held.note.find("held out of split train"), std::string::npos) << held.note;
  EXPECT_TRUE(seg::held_out_of_training(held.source)) << held.source;  // what model listings go by
  auto two = renamed;
  two.splits["extra"] = {"case9"};
  EXPECT_THROW(seg::choose_validation_cases(two, notebook), seg::Error);
  const auto as_named = seg::choose_validation_cases(data, notebook);
  EXPECT_TRUE(as_named.note.empty());
  EXPECT_EQ(as_named.source, "split test");
  EXPECT_FALSE(seg::held_out_of_training(as_named.source));
  EXPECT_FALSE(seg::held_out_of_training(on_val.source));
}

namespace {
// Stops a staged run in its `stage`-th stage after `epoch`.
struct StageInterrupt : seg::TrainObserver {
  int64_t stop_stage, stop_epoch, stage = 0;
  std::vector<int64_t> stages_run;
  StageInterrupt(int64_t s, int64_t e) : stop_stage(s), stop_epoch(e) {}
  void on_stage(int64_t k, int64_t, const std::filesystem::path&) override {
    stage = k;
    stages_run.push_back(k);
  }
  void on_epoch(const seg::EpochLog& r, const std::vector<seg::EpochLog>&) override {
    if (stage == stop_stage && r.epoch == stop_epoch) throw std::runtime_error("interrupted");
  }
};
}  // namespace

TEST_F(TrainTest, StagedRecipeStartsEachStageFromTheOneBeforeAndResumesWhereItStopped) {
  const auto data = shapes_dataset();
  const auto stages = seg::recipe_stages(R"({"stages": [{"network": "fcn", "epochs": 1, "lr": 0.01, "seed": 7,
      "validation": {"split": "test", "every": 1}}, {"epochs": 2, "lr": 0.005, "augmentation": {"zoom": 0.3}}, {"lr": 0.001}]})",
                                         "three.json");
  auto o = quick_options(1);
  ScratchDir whole, split;
  StageInterrupt none(0, 0);
  const auto result = seg::train_stages(data, stages, o, whole.path(), &none);
  EXPECT_EQ(none.stages_run, (std::vector<int64_t>{1, 2, 3}));
  for (size_t k = 1; k <= 3; ++k) EXPECT_TRUE(std::filesystem::exists(seg::stage_folder(whole.path(), k) / "model.pth")) << k;
  // Stage 2 started from stage 1's model, and its record keeps stage 1's.
  const auto second = nlohmann::json::parse(seg::load_model(seg::stage_folder(whole.path(), 2)).info.provenance_json);
  EXPECT_EQ(second["recipe"]["init"], (seg::stage_folder(whole.path(), 1) / "model.pth").string());
  EXPECT_EQ(second["init"]["epochs_done"], 1);
  EXPECT_EQ(second["recipe"]["augmentation"]["zoom"], 0.3);
  // The run's model is the last stage's.
  EXPECT_EQ(seg::read_file(whole / "model.pth"), seg::read_file(seg::stage_folder(whole.path(), 3) / "model.pth"));
  // Stopped after stage 2's first epoch, it resumes there (stage 1 is not run again) and ends
  // with the same weights.
  StageInterrupt stop(2, 1);
  EXPECT_THROW(seg::train_stages(data, stages, o, split.path(), &stop), std::runtime_error);
  StageInterrupt resumed_watch(0, 0);
  const auto resumed = seg::train_stages(data, stages, o, split.path(), &resumed_watch, /*resume=*/true);
  EXPECT_EQ(resumed_watch.stages_run, (std::vector<int64_t>{2, 3}));
  const auto a = weights_of(result.model), b = weights_of(resumed.model);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "parameter " << i;
  // A finished run resumed has nothing left to do.
  StageInterrupt again(0, 0);
  seg::train_stages(data, stages, o, split.path(), &again, /*resume=*/true);
  EXPECT_TRUE(again.stages_run.empty());
}
