#include <seg/error.h>
#include <seg/weights.h>
#include <torch/torch.h>

#include <gtest/gtest.h>

#include <cmath>

TEST(LabelCounts, CountsEveryLabelIncludingAbsentOnes) {
  auto labels = torch::tensor({0, 0, 2, 2, 2, 0}, torch::kByte).view({2, 3});
  auto counts = seg::label_counts(labels, 4);
  EXPECT_EQ(counts.scalar_type(), torch::kLong);
  EXPECT_TRUE(torch::equal(counts, torch::tensor({3, 0, 3, 0}, torch::kLong)));
  EXPECT_THROW(seg::label_counts(labels, 2), seg::Error);  // value 2 has no class
  EXPECT_THROW(seg::label_counts(labels.to(torch::kFloat), 4), seg::Error);
}

TEST(ClassWeights, NotebookPowerOnTheJsrtTrainCounts) {
  // The pixel counts of labels 0..5 over the 160 JSRT train label maps (reference-values.md).
  auto counts = torch::tensor({6332708L, 1683559L, 1344302L, 930102L, 97785L, 97304L});
  auto w = seg::class_weights(counts);
  auto expected = torch::tensor({0.4031, 0.6409, 0.6934, 0.7888, 1.7354, 1.7383}, torch::kFloat);
  EXPECT_EQ(w.scalar_type(), torch::kFloat);
  EXPECT_LT((w - expected).abs().max().item<double>(), 1e-3);
  EXPECT_NEAR(w.mean().item<double>(), 1.0, 1e-6);
}

TEST(ClassWeights, PowerInverseAndNoneByHand) {
  auto counts = torch::tensor({100L, 10L, 1L});
  const double a = std::pow(100.0, -0.5), b = std::pow(10.0, -0.5), c = 1.0, m = (a + b + c) / 3;
  auto w = seg::class_weights(counts, seg::WeightMode::power, 0.5);
  EXPECT_NEAR(w[0].item<double>(), a / m, 1e-6);
  EXPECT_NEAR(w[1].item<double>(), b / m, 1e-6);
  EXPECT_NEAR(w[2].item<double>(), c / m, 1e-6);
  // inverse: 1/count over its mean (0.37): 0.027, 0.27, 2.7; the power argument is ignored.
  auto inv = seg::class_weights(counts, seg::WeightMode::inverse, 0.35);
  EXPECT_NEAR(inv[0].item<double>(), 0.01 / 0.37, 1e-6);
  EXPECT_NEAR(inv[2].item<double>(), 1.0 / 0.37, 1e-5);
  EXPECT_TRUE(torch::equal(seg::class_weights(counts, seg::WeightMode::none), torch::ones({3})));
}

TEST(ClassWeights, AbsentLabelsWeighZeroNotInfinity) {
  auto w = seg::class_weights(torch::tensor({50L, 0L, 50L}));
  EXPECT_EQ(w[1].item<double>(), 0.0);
  EXPECT_NEAR(w[0].item<double>(), 1.5, 1e-6);  // the mean includes the zero
  EXPECT_TRUE(torch::isfinite(w).all().item<bool>());
  EXPECT_THROW(seg::class_weights(torch::tensor({0L, 0L})), seg::Error);
}

TEST(ClassWeights, ParsesModeNames) {
  EXPECT_EQ(seg::parse_weight_mode("power"), seg::WeightMode::power);
  EXPECT_EQ(seg::parse_weight_mode("inverse"), seg::WeightMode::inverse);
  EXPECT_EQ(seg::parse_weight_mode("none"), seg::WeightMode::none);
  EXPECT_THROW(seg::parse_weight_mode("median"), seg::UsageError);
}

TEST(ClassWeights, AgreesOnCuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device: CPU/CUDA agreement not checked";
  auto labels = torch::randint(0, 6, {3, 64, 64}, torch::kByte);
  auto cpu = seg::label_counts(labels, 6);
  auto gpu = seg::label_counts(labels.cuda(), 6);
  EXPECT_TRUE(gpu.is_cuda());
  EXPECT_TRUE(torch::equal(gpu.cpu(), cpu));
  EXPECT_TRUE(torch::allclose(seg::class_weights(gpu).cpu(), seg::class_weights(cpu)));
}
