// Inference geometry: aspect-ratio-keeping padding, test-time warps, ensembles.
#include <seg/error.h>
#include <seg/model_file.h>
#include <seg/models.h>
#include <seg/predict.h>
#include <torch/torch.h>

#include <gtest/gtest.h>

namespace {

// A stand-in network whose logits are its input, averaged over 4 x 4 cells (coarse like fcn):
// channel 0 = x, channel 1 = -x. Any geometric mistake (a wrong crop, a warp not undone)
// shows as a shifted or scaled ramp.
struct RampNetImpl : seg::SegNetImpl {
  at::Tensor forward(const at::Tensor& x) override {
    auto y = torch::avg_pool2d(x, 4);
    return torch::cat({y, -y}, 1);
  }
};

seg::Model ramp_model(int64_t input_size) {
  seg::Model m;
  m.info.network = {"ramp", 1, 2};
  m.info.classes = seg::ClassTable::numbered(2);
  m.info.input_size = {input_size, input_size};
  m.info.normalization = {"dataset", 0.0, 1.0};
  m.net = std::make_shared<RampNetImpl>();
  return m;
}

// A stand-in network that calls a pixel foreground where its input is above 0: logits
// (-x, x). With inputs of +-1 in blocks of the resampling's cells, its label maps are the
// blocks exactly.
struct SignNetImpl : seg::SegNetImpl {
  at::Tensor forward(const at::Tensor& x) override { return torch::cat({-x, x}, 1); }
};

seg::Model sign_model(int64_t input_size) {
  seg::Model m = ramp_model(input_size);
  m.info.network.architecture = "sign";
  m.net = std::make_shared<SignNetImpl>();
  return m;
}

// The sign model at 32 x 32 with a framing of 0.25 and 0.5 of the box's height above and
// below, 0.125 and 0.75 of its width left and right.
seg::Model framed_sign_model() {
  seg::Model m = sign_model(32);
  m.info.framing = seg::Framing{0.25, 0.5, 0.125, 0.75};
  return m;
}

seg::Model fcn_model(int64_t classes, int64_t input_size, uint64_t seed) {
  torch::manual_seed(seed);
  seg::Model m;
  m.info.network = {"fcn", 1, classes};
  m.info.classes = seg::ClassTable::numbered(static_cast<int>(classes));
  m.info.input_size = {input_size, input_size};
  m.info.normalization = {"image", 0.0, 1.0};
  m.net = seg::make_network(m.info.network);
  return m;
}

// 1 x H x W: a smooth ramp in both directions, values within [-1, 1].
at::Tensor ramp(int64_t height, int64_t width) {
  auto y = torch::linspace(-0.5, 0.5, height).view({height, 1});
  auto x = torch::linspace(-0.5, 0.5, width).view({1, width});
  return (y + x).unsqueeze(0);
}

double interior_error(const at::Tensor& a, const at::Tensor& b, int64_t margin) {
  using torch::indexing::Slice;
  auto d = (a - b).index({Slice(), Slice(), Slice(margin, -margin), Slice(margin, -margin)});
  return d.abs().max().item<double>();
}

}  // namespace

TEST(Predict, FittedSizeKeepsTheAspectRatio) {
  EXPECT_EQ(seg::fitted_size(2048, 2048, 256, 256), (std::array<int64_t, 2>{256, 256}));
  EXPECT_EQ(seg::fitted_size(64, 128, 32, 32), (std::array<int64_t, 2>{16, 32}));
  EXPECT_EQ(seg::fitted_size(3000, 2000, 256, 256), (std::array<int64_t, 2>{256, 171}));
  EXPECT_EQ(seg::fitted_size(10, 5000, 256, 256), (std::array<int64_t, 2>{1, 256}));
}

TEST(Predict, SquareImagesArePaddedNotAtAll) {
  auto m = fcn_model(3, 32, 1);
  auto raw = torch::rand({2, 64, 64}) * 255;
  auto padded = seg::predict_logits(m, raw, torch::kCPU);
  auto stretched = seg::predict_logits(m, raw, torch::kCPU, {false, false});
  EXPECT_TRUE(torch::equal(padded, stretched));
}

TEST(Predict, PaddingIsCutOffAndTheImageComesBackInPlace) {
  // A 64 x 128 ramp into a 32 x 32 input: fitted at 16 x 32, 8 rows of padding above and
  // below. The ramp net's output, cropped and resampled, must be the ramp again.
  auto m = ramp_model(32);
  auto image = ramp(64, 128);
  auto logits = seg::predict_logits(m, image, torch::kCPU);
  ASSERT_EQ(logits.sizes(), (std::vector<int64_t>{1, 2, 64, 128}));
  EXPECT_LT(interior_error(logits.narrow(1, 0, 1), image.unsqueeze(0), 12), 1e-4);
  // Stretching gets the ramp back too (the net is equivariant), but sees the image squashed.
  auto stretched = seg::predict_logits(m, image, torch::kCPU, {false, false});
  EXPECT_LT(interior_error(stretched.narrow(1, 0, 1), image.unsqueeze(0), 12), 1e-4);
  // A tall image: padding at the sides.
  auto tall = ramp(96, 48);
  auto back = seg::predict_logits(m, tall, torch::kCPU);
  EXPECT_LT(interior_error(back.narrow(1, 0, 1), tall.unsqueeze(0), 12), 1e-4);
}

TEST(Predict, TestTimeWarpsAreUndone) {
  // Every warp's output, warped back, lands where the plain prediction does (away from the
  // edges, where a warp sees the replicated border instead of the ramp).
  auto m = ramp_model(64);
  for (auto sizes : {std::array<int64_t, 2>{64, 64}, std::array<int64_t, 2>{64, 128}}) {
    auto image = ramp(sizes[0], sizes[1]) * 2;
    auto plain = seg::predict_probabilities({m}, image, torch::kCPU);
    auto tta = seg::predict_probabilities({m}, image, torch::kCPU, {true, true});
    ASSERT_EQ(tta.sizes(), plain.sizes());
    EXPECT_LT(interior_error(tta, plain, 16), 1e-4) << sizes[0] << " x " << sizes[1];
    EXPECT_LT((tta.sum(1) - 1).abs().max().item<double>(), 1e-5);
  }
  // On a real network the warps change the probabilities a little, not the shapes.
  auto fcn = fcn_model(3, 32, 2);
  auto raw = torch::rand({2, 48, 40}) * 255;
  auto plain = seg::predict_probabilities({fcn}, raw, torch::kCPU);
  auto tta = seg::predict_probabilities({fcn}, raw, torch::kCPU, {true, true});
  EXPECT_EQ(tta.sizes(), (std::vector<int64_t>{2, 3, 48, 40}));
  EXPECT_FALSE(torch::allclose(tta, plain));
  // predict_logits with tta gives the log of the same probabilities.
  auto log_tta = seg::predict_logits(fcn, raw, torch::kCPU, {true, true});
  EXPECT_TRUE(torch::allclose(torch::softmax(log_tta, 1), tta, 1e-5, 1e-6));
}

TEST(Predict, EnsembleAveragesModelsOfDifferentSizes) {
  auto a = fcn_model(3, 32, 3);
  auto b = fcn_model(3, 48, 4);
  b.info.normalization = {"dataset", 120.0, 50.0};
  auto raw = torch::rand({1, 50, 70}) * 255;
  auto both = seg::predict_probabilities({a, b}, raw, torch::kCPU);
  auto pa = torch::softmax(seg::predict_logits(a, raw, torch::kCPU), 1);
  auto pb = torch::softmax(seg::predict_logits(b, raw, torch::kCPU), 1);
  ASSERT_EQ(both.sizes(), (std::vector<int64_t>{1, 3, 50, 70}));
  EXPECT_TRUE(torch::allclose(both, (pa + pb) / 2, 1e-5, 1e-6));
  auto other = fcn_model(4, 32, 5);
  EXPECT_THROW(seg::predict_probabilities({a, other}, raw, torch::kCPU), seg::Error);
  EXPECT_THROW(seg::predict_probabilities({}, raw, torch::kCPU), seg::UsageError);
}

// The second pass segments the crop that frames the first pass's structures as the model's
// framing says, and its probabilities replace the first pass's there and nowhere else.
TEST(Predict, ReframingSegmentsTheFramedCropAgain) {
  using torch::indexing::Slice;
  const auto m = framed_sign_model();
  // 160 x 160 (5 image pixels to an input pixel): a 40 x 40 structure, and a smaller stray
  // piece that the largest-component step keeps out of the box.
  auto image = -torch::ones({1, 160, 160});
  image.index_put_({0, Slice(20, 60), Slice(90, 130)}, 1.0);
  image.index_put_({0, Slice(140, 150), Slice(10, 20)}, 1.0);
  const seg::PredictOptions once{true, false, false}, twice{true, false, true};
  const auto first = seg::predict_probabilities({m}, image, torch::kCPU, once);
  auto found = seg::logits_to_labels(first, m.info.classes)[0];
  found.index_put_({Slice(130, 160), Slice(0, 30)}, 0);
  ASSERT_EQ(seg::structure_box(found), (seg::Crop{20, 60, 90, 130}));
  // Framed: 10 rows above, 20 below, 5 columns left, 30 right (cut to the image at 160):
  // rows 10..80, columns 85..160; grown to the square input's aspect: rows 8..83.
  const seg::Crop crop{8, 83, 85, 160};
  auto expected = first.clone();
  const auto part = image.index({Slice(), Slice(crop.top, crop.bottom), Slice(crop.left, crop.right)}).contiguous();
  expected.index_put_({Slice(), Slice(), Slice(crop.top, crop.bottom), Slice(crop.left, crop.right)},
                      seg::predict_probabilities({m}, part, torch::kCPU, once));
  int64_t count = 0;
  const auto reframed = seg::predict_probabilities({m}, image, torch::kCPU, twice, &count);
  EXPECT_EQ(count, 1);
  EXPECT_TRUE(torch::allclose(reframed, expected, 1e-6, 1e-6));
  EXPECT_FALSE(torch::allclose(reframed, first, 1e-3, 1e-3));  // the crop was segmented anew
  // With test-time warps both passes average them.
  const seg::PredictOptions tta_once{true, true, false}, tta_twice{true, true, true};
  auto expected_tta = seg::predict_probabilities({m}, image, torch::kCPU, tta_once);
  expected_tta.index_put_({Slice(), Slice(), Slice(crop.top, crop.bottom), Slice(crop.left, crop.right)},
                          seg::predict_probabilities({m}, part, torch::kCPU, tta_once));
  EXPECT_TRUE(torch::allclose(seg::predict_probabilities({m}, image, torch::kCPU, tta_twice), expected_tta, 1e-6, 1e-6));
}

// No second pass where it would magnify less than 1.1 times (a film framed as the training
// images, or tighter) or more than 8 times (what was found is no chest), or where nothing was
// found; a model without a framing cannot reframe.
TEST(Predict, ReframingLeavesFramedAndEmptyImagesAsTheyAre) {
  using torch::indexing::Slice;
  auto m = framed_sign_model();
  const seg::PredictOptions once{true, false, false}, twice{true, false, true};
  auto filled = -torch::ones({4, 160, 160});
  filled.index_put_({0, Slice(20, 120), Slice(10, 100)}, 1.0);  // the crop is the image
  filled.index_put_({1, Slice(30, 120), Slice(20, 100)}, 1.0);  // a crop of 152 x 152: 1.05 times
  filled.index_put_({2, Slice(80, 90), Slice(80, 90)}, 1.0);    // a crop of 19 x 19: 8.4 times
  const auto first = seg::predict_probabilities({m}, filled, torch::kCPU, once);
  int64_t count = 0;
  EXPECT_TRUE(torch::equal(seg::predict_probabilities({m}, filled, torch::kCPU, twice, &count), first));
  EXPECT_EQ(count, 0);
  m.info.framing.reset();
  EXPECT_THROW(seg::predict_probabilities({m}, filled, torch::kCPU, twice), seg::Error);
  EXPECT_NO_THROW(seg::predict_probabilities({m}, filled, torch::kCPU, once));
}

// A structure the first pass saw only in part: a bridge 3 px wide across two of its cells
// (lost at its 5:1 resampling) joins the main piece to a smaller one below, which the
// largest-component step then drops. The second pass, at 2.3:1, finds the bridge running into
// the crop's lower side, inside the image: the crop cut through something; the first pass stands.
TEST(Predict, ReframingKeepsTheFirstPassWhereTheCropCutsAStructure) {
  using torch::indexing::Slice;
  const auto m = framed_sign_model();
  auto image = -torch::ones({1, 160, 160});
  image.index_put_({0, Slice(20, 60), Slice(90, 130)}, 1.0);
  image.index_put_({0, Slice(60, 140), Slice(103, 106)}, 1.0);  // the bridge
  image.index_put_({0, Slice(140, 150), Slice(80, 120)}, 1.0);  // the piece below
  const seg::PredictOptions once{true, false, false}, twice{true, false, true};
  const auto first = seg::predict_probabilities({m}, image, torch::kCPU, once);
  const auto labels = seg::logits_to_labels(first, m.info.classes);
  ASSERT_EQ(labels.index({0, Slice(70, 130), Slice(95, 110)}).count_nonzero().item<int64_t>(), 0);  // bridge unseen
  // Without the bridge the same crop (rows 8..83, columns 85..160) is reframed.
  auto unbridged = image.clone();
  unbridged.index_put_({0, Slice(60, 140), Slice(103, 106)}, -1.0);
  int64_t count = 0;
  seg::predict_probabilities({m}, unbridged, torch::kCPU, twice, &count);
  ASSERT_EQ(count, 1);
  count = 0;
  EXPECT_TRUE(torch::equal(seg::predict_probabilities({m}, image, torch::kCPU, twice, &count), first));
  EXPECT_EQ(count, 0);
}
