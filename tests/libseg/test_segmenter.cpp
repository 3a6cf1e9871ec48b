// The Segmenter's fast path (predictions kept at the networks' resolution, label maps worked
// out pixel by pixel only near class boundaries) against the plain one (predict_probabilities
// at full size, argmax, clean-up on full-size probabilities).
#include <seg/error.h>
#include <seg/film_prediction.h>
#include <seg/model_file.h>
#include <seg/models.h>
#include <seg/postprocess.h>
#include <seg/predict.h>
#include <seg/segmenter.h>
#include <torch/torch.h>

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

namespace {

// A random fcn (logits at a quarter of the input) or fast U-Net (logits at the input's size),
// its logits scaled up so that its classes are not all near ties.
struct ScaledNetImpl : seg::SegNetImpl {
  explicit ScaledNetImpl(std::shared_ptr<seg::SegNetImpl> inner) : inner_(register_module("inner", std::move(inner))) {}
  at::Tensor forward(const at::Tensor& x) override { return inner_->forward(x) * 20.0; }
  std::shared_ptr<seg::SegNetImpl> inner_;
};

seg::Model random_model(const std::string& architecture, int64_t classes, int64_t input_size, uint64_t seed) {
  torch::manual_seed(seed);
  seg::Model m;
  m.info.network = {architecture, 1, classes};
  m.info.classes = seg::ClassTable::numbered(static_cast<int>(classes));
  m.info.input_size = {input_size, input_size};
  m.info.normalization = {"image", 0.0, 1.0};
  m.info.framing = seg::Framing{0.1, 0.15, 0.1, 0.1};
  m.net = std::make_shared<ScaledNetImpl>(seg::make_network(m.info.network));
  m.net->eval();
  return m;
}

// A network that calls a pixel foreground where its input is above 0 (logits -x, x): with
// blocks of +1 in a background of -1 to -0.5 its structures are the blocks, so reframing finds
// them and runs. A third class never wins, but is the runner-up of the background below -0.83:
// the clean-up's choice for a dropped pixel depends on where it lies.
struct SignNetImpl : seg::SegNetImpl {
  at::Tensor forward(const at::Tensor& x) override { return torch::cat({-x, x, -2.0 * x - 2.5}, 1) * 5.0; }
};

seg::Model framed_sign_model() {
  seg::Model m;
  m.info.network = {"sign", 1, 3};
  m.info.classes = seg::ClassTable::numbered(3);
  m.info.input_size = {32, 32};
  m.info.normalization = {"dataset", 0.0, 1.0};
  m.info.framing = seg::Framing{0.25, 0.5, 0.125, 0.75};
  m.net = std::make_shared<SignNetImpl>();
  return m;
}

// A film of height x width: smooth structure plus noise, as integers (a decoded 12-bit film).
at::Tensor film(int64_t height, int64_t width, uint64_t seed) {
  torch::manual_seed(seed);
  auto y = torch::linspace(0, 6.28, height).view({height, 1}), x = torch::linspace(0, 6.28, width).view({1, width});
  auto smooth = torch::sin(y * 1.3 + 0.4) * torch::cos(x * 0.9) + 0.3 * torch::sin(x * 3.1 + y);
  return ((smooth + 0.4 * torch::rand({height, width}) + 2.0) * 900.0).round().to(torch::kInt);
}

// A film with a block of +1 at rows [top, bottom), columns [left, right) in a background that
// rises from -1 at the top left to -0.5 at the bottom right.
at::Tensor block_film(int64_t height, int64_t width, int64_t top, int64_t bottom, int64_t left, int64_t right) {
  auto image = -1.0 + 0.25 * (torch::linspace(0, 1, height).view({height, 1}) + torch::linspace(0, 1, width).view({1, width}));
  image.narrow(0, top, bottom - top).narrow(1, left, right - left).fill_(1.0);
  return image;
}

// Pixels where the plain probabilities' two largest are so close that float rounding may
// order them either way.
at::Tensor near_ties(const at::Tensor& probabilities) {
  const auto top2 = std::get<0>(probabilities.topk(2, 0));
  return (top2[0] - top2[1]) < 1e-4;
}

struct FastPathCase {
  const char* label;
  std::vector<std::array<int64_t, 2>> sizes;  // the films, segmented together
  std::string architecture;                    // "fcn", "fast" or "sign" (reframing)
  bool tta, reframe, ensemble, pad;
};
void PrintTo(const FastPathCase& c, std::ostream* os) { *os << c.label; }

std::vector<seg::Model> models_of(const FastPathCase& c, uint64_t seed) {
  if (c.architecture == "sign") return {framed_sign_model()};
  std::vector<seg::Model> models{random_model(c.architecture, 4, 32, seed)};
  if (c.ensemble) {
    models.push_back(random_model("fcn", 4, 48, seed + 1));
    models.back().info.normalization = {"dataset", 1800.0, 400.0};
  }
  return models;
}

std::vector<at::Tensor> films_of(const FastPathCase& c, uint64_t seed) {
  std::vector<at::Tensor> films;
  for (size_t i = 0; i < c.sizes.size(); ++i) films.push_back(film(c.sizes[i][0], c.sizes[i][1], seed + i));
  if (c.architecture != "sign") return films;
  // A structure small in the frame (reframed), one that fills it (not), one whose crop cuts a
  // bridge to a piece below (the first pass stands), one in a wide film.
  films.push_back(block_film(160, 160, 20, 60, 90, 130));
  films.push_back(block_film(160, 160, 20, 120, 10, 100));
  auto cut = block_film(160, 160, 20, 60, 90, 130);
  cut.narrow(0, 60, 80).narrow(1, 103, 3).fill_(1.0);
  cut.narrow(0, 140, 10).narrow(1, 80, 40).fill_(1.0);
  films.push_back(cut);
  films.push_back(block_film(96, 200, 30, 50, 20, 60));
  return films;
}

class FastPath : public ::testing::TestWithParam<FastPathCase> {};

}  // namespace

// Label maps, probabilities and the clean-up's runner-up classes as the plain path gives them.
TEST_P(FastPath, GivesThePlainPathsLabelMaps) {
  const auto& c = GetParam();
  torch::NoGradGuard no_grad;
  const auto models = models_of(c, 1);
  const auto films = films_of(c, 10);
  const seg::PredictOptions options{c.pad, c.tta, c.reframe};
  const auto& classes = models.front().info.classes;
  const auto predictions = seg::predict_films(models, films, torch::kCPU, options);
  ASSERT_EQ(predictions.size(), films.size());
  int64_t reframed = 0, ties = 0;
  for (size_t i = 0; i < films.size(); ++i) {
    SCOPED_TRACE("film " + std::to_string(i));
    const auto& fast = predictions[i];
    int64_t plain_reframed = 0;
    const auto plain = seg::predict_probabilities(models, films[i].unsqueeze(0), torch::kCPU, options, &plain_reframed)[0];
    EXPECT_EQ(fast.reframed(), plain_reframed == 1);
    reframed += plain_reframed;
    ASSERT_EQ(fast.height(), films[i].size(0));
    ASSERT_EQ(fast.width(), films[i].size(1));
    EXPECT_TRUE(torch::allclose(fast.probabilities(), plain, 1e-4, 1e-5))
        << (fast.probabilities() - plain).abs().max().item<float>();
    const auto tied = near_ties(plain);
    ties += tied.sum().item<int64_t>();
    const auto plain_labels = seg::logits_to_labels(plain.unsqueeze(0), classes)[0];
    const auto labels = fast.labels();
    EXPECT_TRUE(torch::equal(labels.masked_select(~tied), plain_labels.masked_select(~tied)))
        << (labels != plain_labels).sum().item<int64_t>() << " pixels differ";
    // The runner-up of every pixel as the clean-up asks for it, leaving out its own class.
    const auto top = plain.argmax(0);
    const auto others = plain.masked_fill(torch::one_hot(top, classes.size()).permute({2, 0, 1}).to(torch::kBool), -1.0f);
    const auto runner_up = others.argmax(0);
    const auto clear = (~tied).logical_and(~near_ties(others));
    const auto top_at = top.accessor<int64_t, 2>(), runner_up_at = runner_up.accessor<int64_t, 2>();
    const auto clear_at = clear.accessor<bool, 2>();
    for (int64_t y = 0; y < films[i].size(0); y += 3)
      for (int64_t x = 0; x < films[i].size(1); x += 3)
        if (clear_at[y][x]) {
          ASSERT_EQ(fast.likeliest_channel_except(y, x, static_cast<int>(top_at[y][x])), runner_up_at[y][x])
              << "at " << y << ", " << x;
        }
  }
  if (c.reframe) {
    EXPECT_GT(reframed, 0) << "the case should reframe some film";
  }
  EXPECT_LT(ties, 50);
}

// The Segmenter's clean-up, masks and probabilities from the fast path, as the plain path's.
TEST_P(FastPath, SegmenterCleansUpAsThePlainPath) {
  const auto& c = GetParam();
  torch::NoGradGuard no_grad;
  auto models = models_of(c, 3);
  if (c.architecture != "sign") models.front().info.overlaps = {{1, 2}};
  seg::SegmenterOptions options;
  options.predict = {c.pad, c.tta, c.reframe};
  options.postprocessing = seg::postprocessing_steps();
  options.masks = options.probabilities = true;
  const seg::Segmenter segmenter(models, options, torch::kCPU, "models");
  int cleaned_up = 0;
  for (const auto& raw : films_of(c, 20)) {
    const auto result = segmenter.segment(raw.unsqueeze(0));
    const auto plain = seg::predict_probabilities(models, raw.unsqueeze(0), torch::kCPU, options.predict);
    // The clean-up of the fast path's own label map (the first test holds it to the plain one's;
    // a near tie that came out the other way may join or part pieces) with the plain
    // probabilities' runner-ups.
    const auto labels = segmenter.predict({raw}).front().labels().unsqueeze(0);
    const auto cleaned = seg::postprocess(labels, options.postprocessing, segmenter.classes(), plain);
    cleaned_up += !torch::equal(cleaned, labels);
    EXPECT_TRUE(torch::equal(result.labels, cleaned)) << raw.size(0) << " x " << raw.size(1);
    EXPECT_TRUE(torch::equal(result.as_predicted, cleaned));
    EXPECT_TRUE(torch::equal(result.restored, seg::restore_covered(cleaned, models.front().info.overlaps)));
    EXPECT_TRUE(torch::allclose(result.probabilities, plain, 1e-4, 1e-5));
  }
  EXPECT_GT(cleaned_up, 0) << "the clean-up should have had work on some film";
}

INSTANTIATE_TEST_SUITE_P(
    Segmenter, FastPath,
    ::testing::Values(
        FastPathCase{"Square", {{64, 64}, {128, 128}}, "fcn", false, false, false, true},
        FastPathCase{"AspectRatios", {{48, 40}, {37, 91}, {120, 30}, {50, 70}}, "fcn", false, false, false, true},
        FastPathCase{"SmallerThanTheInput", {{20, 24}, {3, 50}}, "fcn", false, false, false, true},
        FastPathCase{"Stretched", {{48, 40}, {90, 60}}, "fcn", false, false, false, false},
        FastPathCase{"FullResolutionLogits", {{64, 64}, {80, 48}}, "fast", false, false, false, true},
        FastPathCase{"TestTimeWarps", {{64, 64}, {50, 70}}, "fcn", true, false, false, true},
        FastPathCase{"Ensemble", {{64, 64}, {37, 91}}, "fcn", false, false, true, true},
        FastPathCase{"EnsembleWithWarps", {{50, 70}}, "fcn", true, false, true, true},
        FastPathCase{"Reframing", {}, "sign", false, true, false, true},
        FastPathCase{"ReframingWithWarps", {}, "sign", true, true, false, true}),
    [](const auto& info) { return std::string(info.param.label); });

// Films segmented together come out as each alone (one forward pass for films of any sizes).
TEST(FastPathBatches, FilmsOfAnySizesTogetherAsAlone) {
  torch::NoGradGuard no_grad;
  const std::vector<seg::Model> models{random_model("fcn", 4, 32, 5)};
  const std::vector<at::Tensor> films{film(64, 64, 1), film(40, 90, 2), film(33, 33, 3)};
  const auto together = seg::predict_films(models, films, torch::kCPU, {true, true, false});
  for (size_t i = 0; i < films.size(); ++i) {
    const auto alone = seg::predict_films(models, {films[i]}, torch::kCPU, {true, true, false}).front();
    EXPECT_TRUE(torch::allclose(together[i].probabilities(), alone.probabilities(), 1e-5, 1e-6));
  }
  EXPECT_THROW(seg::predict_films(models, {torch::zeros({2, 3, 4})}, torch::kCPU), seg::Error);
  EXPECT_TRUE(seg::predict_films(models, {}, torch::kCPU).empty());
}

namespace {

class Stream : public ::testing::TestWithParam<int> {};  // the threads

}  // namespace

// Films streamed through workers come out in order, each as segment() makes it alone.
TEST_P(Stream, WritesEveryFilmInOrderAsSegmentAlone) {
  const std::vector<seg::Model> models{random_model("fcn", 4, 32, 6)};
  seg::SegmenterOptions options;
  options.postprocessing = seg::postprocessing_steps();
  const seg::Segmenter segmenter(models, options, torch::kCPU, "model");
  std::vector<at::Tensor> films;
  for (int64_t i = 0; i < 9; ++i) films.push_back(film(40 + 7 * i, 64 - 3 * i, 30 + static_cast<uint64_t>(i)));
  std::vector<size_t> written;
  segmenter.stream(
      films.size(), [&](size_t i) { return std::optional<seg::Image>(seg::Image{films[i], {}, "uint16"}); },
      [&](size_t i, const seg::Image& image, const seg::Segmentation& result) {
        written.push_back(i);
        EXPECT_FALSE(image.pixels.defined()) << "pixels are dropped unless asked for";
        EXPECT_TRUE(torch::equal(result.labels, segmenter.segment(films[i].unsqueeze(0)).labels)) << "film " << i;
      },
      {GetParam(), 2, false});
  EXPECT_EQ(written, (std::vector<size_t>{0, 1, 2, 3, 4, 5, 6, 7, 8}));
}

// A film read() leaves out is skipped; one that fails to be read stops the stream after every
// film before it is written, and none after; a failing write stops it at once.
TEST_P(Stream, StopsAtAFailureAfterTheFilmsBeforeIt) {
  const std::vector<seg::Model> models{random_model("fcn", 4, 32, 7)};
  const seg::Segmenter segmenter(models, {}, torch::kCPU, "model");
  auto read = [&](size_t i) -> std::optional<seg::Image> {
    if (i == 2) return std::nullopt;
    if (i == 5) throw seg::Error("film 5", "cannot be read");
    return seg::Image{film(48, 48, i), {}, "uint16"};
  };
  std::vector<size_t> written;
  auto write = [&](size_t i, const seg::Image& image, const seg::Segmentation&) {
    EXPECT_TRUE(image.pixels.defined()) << "pixels kept when asked for";
    written.push_back(i);
  };
  try {
    segmenter.stream(12, read, write, {GetParam(), 3, true});
    ADD_FAILURE() << "the read failure should stop the stream";
  } catch (const seg::Error& e) {
    EXPECT_NE(std::string(e.what()).find("film 5"), std::string::npos);
  }
  EXPECT_EQ(written, (std::vector<size_t>{0, 1, 3, 4}));
  written.clear();
  EXPECT_THROW(segmenter.stream(
                   12, [&](size_t i) { return std::optional<seg::Image>(seg::Image{film(48, 48, i), {}, "uint16"}); },
                   [&](size_t i, const seg::Image&, const seg::Segmentation&) {
                     if (i == 3) throw seg::Error("out", "disk full");
                     written.push_back(i);
                   },
                   {GetParam(), 1, false}),
               seg::Error);
  EXPECT_EQ(written, (std::vector<size_t>{0, 1, 2}));
}

// A film that fails in a forward pass with others: the pass is retried a film at a time, so
// the films before it are written and the error names it, not the pass's first film.
TEST_P(Stream, AFilmThatCannotBeSegmentedIsNamedAfterTheFilmsBeforeIt) {
  const std::vector<seg::Model> models{random_model("fcn", 4, 32, 8)};
  const seg::Segmenter segmenter(models, {}, torch::kCPU, "model");
  auto read = [&](size_t i) -> std::optional<seg::Image> {
    if (i == 2) return seg::Image{torch::zeros({2, 3, 4}), {}, "uint16"};  // read, but no film to segment
    return seg::Image{film(48, 48, i), {}, "uint16"};
  };
  std::vector<size_t> written;
  try {
    segmenter.stream(6, read, [&](size_t i, const seg::Image&, const seg::Segmentation&) { written.push_back(i); },
                     {GetParam(), 4, false});
    ADD_FAILURE() << "film 2 should stop the stream";
  } catch (const seg::FilmSegmentationError& e) {
    EXPECT_EQ(e.index, 2u) << e.what();
  }
  EXPECT_EQ(written, (std::vector<size_t>{0, 1}));
}

INSTANTIATE_TEST_SUITE_P(Segmenter, Stream, ::testing::Values(1, 3),
                         [](const auto& info) { return std::to_string(info.param) + "Threads"; });
