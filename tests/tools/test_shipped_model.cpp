// The models shipped in share/models work from a fresh clone, with no training.
#include <seg/augment.h>
#include <seg/fs.h>
#include <seg/io/image_io.h>
#include <seg/metrics.h>
#include <seg/model_file.h>
#include <torch/torch.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <sstream>

#include "fixtures.h"
#include "test_support.h"
#include "tool_run.h"

namespace fs = std::filesystem;
using seg::testing::run_tool_in_process;
using seg::testing::ScratchDir;

struct Shipped {
  std::string file, architecture;
  double diseased_lung_floor;  // the least lung Dice a consolidated lung may score (the small model sees less)
  double bedside_lung_floor;   // the same under tubes, wires and a pacemaker
  double turned_clavicle_floor;  // the least clavicle Dice on a film turned by 12 degrees
  double reframe_gain;    // the least mean Dice the second pass adds to a chest small or off-centre
  double reframed_floor;  // the least mean Dice such a chest keeps reframed
  double whole_lung_floor;  // the least Dice a lung made whole scores against SCR's whole outline
};
void PrintTo(const Shipped& shipped, std::ostream* os) { *os << shipped.file; }

class ShippedModel : public ::testing::TestWithParam<Shipped> {
 protected:
  std::string model() const { return (fs::path(SEG_SOURCE_DIR) / "share/models" / GetParam().file).string(); }

  // seg-segment `inputs` (files or a folder) into tmp/seg with this model, then seg-evaluate
  // them against the label maps in `truth`: the JSON report, null after a reported failure.
  nlohmann::json segment_and_score(const std::vector<std::string>& inputs, const fs::path& truth,
                                   const fs::path& tmp, const std::vector<std::string>& options = {}) const {
    std::vector<std::string> args{"--model", model(), "-o", (tmp / "seg").string(), "--threads", "1"};
    args.insert(args.end(), inputs.begin(), inputs.end());
    args.insert(args.end(), options.begin(), options.end());
    const auto seg = run_tool_in_process(seg::tools::segment, args);
    if (seg.code != 0) {
      ADD_FAILURE() << seg.err;
      return nullptr;
    }
    const auto eval = run_tool_in_process(seg::tools::evaluate,
                                          {(tmp / "seg").string(), truth.string(), "--skip-missing", "--json"});
    if (eval.code != 0) {
      ADD_FAILURE() << eval.err;
      return nullptr;
    }
    return nlohmann::json::parse(eval.out);
  }

  // Writes each (name, 8-bit image, label map) into tmp/in and tmp/truth and scores them all:
  // the report, null after a reported failure or a case missing from it.
  using Variants = std::vector<std::tuple<std::string, at::Tensor, at::Tensor>>;
  nlohmann::json segment_and_score_variants(const Variants& variants, const fs::path& tmp,
                                            const std::vector<std::string>& options = {}) const {
    fs::create_directories(tmp / "in");
    fs::create_directories(tmp / "truth");
    for (const auto& [name, image, truth] : variants) {
      seg::io::write_image(tmp / "in" / (name + ".png"), seg::testing::image_of(image, "uint8"));
      seg::io::write_label_map(tmp / "truth" / (name + ".png"), seg::testing::image_of(truth, "uint8"));
    }
    auto report = segment_and_score({(tmp / "in").string()}, tmp / "truth", tmp, options);
    if (!report.is_null() && report["cases"].size() != variants.size()) {
      ADD_FAILURE() << report["cases"].size() << " of " << variants.size() << " cases scored";
      return nullptr;
    }
    return report;
  }
};

// The film framed wider: `by` pixels of black on every side.
at::Tensor pad_frame(const at::Tensor& t, int64_t by) { return torch::constant_pad_nd(t, {by, by, by, by}, 0); }

// Every case of a report keeps both lungs above `threshold`. "dice" lists labels 1..5 in
// the order of "labels": the lungs first.
void expect_lungs_above(const nlohmann::json& report, double threshold) {
  ASSERT_EQ(report["labels"][0]["value"], 1);
  ASSERT_EQ(report["labels"][1]["value"], 2);
  for (const auto& c : report["cases"]) {
    EXPECT_GT(c["dice"][0].get<double>(), threshold) << c["case"];
    EXPECT_GT(c["dice"][1].get<double>(), threshold) << c["case"];
  }
}

// One structure of one case as SCR outlined it, whole (where JSRT's label maps paint another
// structure over it too), at size x size: its landmark polygon (landmarks_1024.csv: x = column,
// y = row in the 1024 frame) filled as the data's README says the label maps were, every pixel
// centre inside or on the outline. Empty when the case is not in `landmarks_csv` (the file's text).
at::Tensor scr_outline_filled(const std::string& landmarks_csv, const std::string& case_id, const std::string& structure,
                              int64_t size) {
  std::vector<std::array<double, 2>> polygon;  // (x, y) at `size`
  std::istringstream lines(landmarks_csv);
  const std::string prefix = case_id + "," + structure + ",";
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(prefix, 0) != 0) continue;
    std::istringstream fields(line.substr(prefix.size()));
    std::string index, x, y;
    std::getline(fields, index, ',');
    std::getline(fields, x, ',');
    std::getline(fields, y, ',');
    polygon.push_back({std::stod(x) * static_cast<double>(size) / 1024.0, std::stod(y) * static_cast<double>(size) / 1024.0});
  }
  auto mask = torch::zeros({size, size}, torch::kBool);
  auto m = mask.accessor<bool, 2>();
  for (int64_t r = 0; r < size; ++r)
    for (int64_t c = 0; c < size; ++c) {
      const double x = static_cast<double>(c), y = static_cast<double>(r);
      bool inside = false, on_edge = false;
      for (size_t i = 0; i < polygon.size() && !on_edge; ++i) {
        const auto& a = polygon[i];
        const auto& b = polygon[(i + 1) % polygon.size()];
        const double cross = (b[0] - a[0]) * (y - a[1]) - (b[1] - a[1]) * (x - a[0]);
        on_edge = std::abs(cross) < 1e-9 && x >= std::min(a[0], b[0]) - 1e-9 && x <= std::max(a[0], b[0]) + 1e-9 &&
                  y >= std::min(a[1], b[1]) - 1e-9 && y <= std::max(a[1], b[1]) + 1e-9;
        if ((a[1] > y) != (b[1] > y) && x < a[0] + (y - a[1]) * (b[0] - a[0]) / (b[1] - a[1])) inside = !inside;
      }
      m[r][c] = inside || on_edge;
    }
  return mask;
}

INSTANTIATE_TEST_SUITE_P(Models, ShippedModel,
                         ::testing::Values(Shipped{"jsrt-res-unet.pth", "res-unet", 0.94, 0.95, 0.80, 0.01, 0.92, 0.97},
                                           Shipped{"jsrt-fast.pth", "fast", 0.85, 0.92, 0.60, 0.008, 0.87, 0.96}),
                         [](const auto& info) {
                           std::string name = info.param.architecture;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

TEST_P(ShippedModel, CarriesItsMetadataAndIsSmall) {
  ASSERT_TRUE(fs::exists(model()));
  EXPECT_LT(fs::file_size(model()), 10u * 1024 * 1024);
  const auto m = seg::load_model(model());
  EXPECT_EQ(m.info.network.architecture, GetParam().architecture);
  EXPECT_EQ(m.info.classes.size(), 6);
  EXPECT_EQ(m.info.classes.name_of(3), "heart");
  EXPECT_NE(m.info.provenance_json.find("val_mean_dice"), std::string::npos);
  // The SHA-256 of its weights, which load_model has verified.
  EXPECT_EQ(m.weights_sha256.size(), 64u);
  // Where JSRT's training labels sit (the chest's box about 200 of 256 pixels): seg-segment
  // reframes to it.
  ASSERT_TRUE(m.info.framing.has_value());
  EXPECT_NEAR(m.info.framing->top, 0.095, 0.01);
  EXPECT_NEAR(m.info.framing->bottom, 0.171, 0.01);
  EXPECT_NEAR(m.info.framing->left, 0.146, 0.01);
  EXPECT_NEAR(m.info.framing->right, 0.129, 0.01);
  // JSRT's label maps paint each clavicle over its lung: seg-segment --whole undoes it.
  ASSERT_EQ(m.info.overlaps.size(), 2u);
  EXPECT_EQ(std::make_pair(m.info.overlaps[0].under, m.info.overlaps[0].over), std::make_pair(1, 4));
  EXPECT_EQ(std::make_pair(m.info.overlaps[1].under, m.info.overlaps[1].over), std::make_pair(2, 5));
}

TEST_P(ShippedModel, SegmentsRealTestCasesWell) {
  SEG_REQUIRE_JSRT(real);
  ScratchDir tmp;
  const auto report = segment_and_score(
      {(real / "images/JPCNN009.png").string(), (real / "images/JPCNN050.png").string()}, real / "labels", tmp.path(),
      {"--largest-component"});
  ASSERT_FALSE(report.is_null());
  EXPECT_EQ(report["cases_evaluated"].get<int>(), 2);
  // The shipped models score 0.94 or more on the whole test split; a broken one falls far below.
  EXPECT_GT(report["mean_dice"].get<double>(), 0.88) << report["mean_dice_per_label"];
}

// Radiographs from elsewhere: 12-bit pixels, other exposure (gamma), lower contrast. The
// shipped models normalise each image on their own and were trained with intensity
// augmentation, so the lungs still come out right (a model normalised with JSRT's 8-bit
// statistics sees a 12-bit image as blown out).
TEST_P(ShippedModel, ToleratesOtherBitDepthsExposureAndContrast) {
  SEG_REQUIRE_JSRT(real);
  ScratchDir tmp;
  const auto image = seg::io::read_image(real / "images/JPCNN009.png");
  const auto unit = image.pixels.to(torch::kDouble) / 255.0;
  std::filesystem::create_directories(tmp / "in");
  std::filesystem::create_directories(tmp / "truth");
  const std::vector<std::pair<std::string, seg::Image>> variants = {
      {"bits12", seg::testing::image_of((unit * 4095).round().to(torch::kInt), "uint16")},
      {"gamma06", seg::testing::image_of((unit.pow(0.6) * 255).round().to(torch::kByte), "uint8")},
      {"gamma16", seg::testing::image_of((unit.pow(1.6) * 255).round().to(torch::kByte), "uint8")},
      {"contrast", seg::testing::image_of((unit * 127 + 60).round().to(torch::kByte), "uint8")}};
  for (const auto& [name, variant] : variants) {
    seg::io::write_image(tmp / "in" / (name + ".png"), variant);
    std::filesystem::copy_file(real / "labels/JPCNN009.png", tmp / "truth" / (name + ".png"));
  }
  const auto report = segment_and_score({(tmp / "in").string()}, tmp / "truth", tmp.path());
  ASSERT_FALSE(report.is_null());
  EXPECT_EQ(report["cases"].size(), variants.size());
  expect_lungs_above(report, 0.95);
}

// Hospital films come as DICOM, often 12-bit MONOCHROME1 (stored as the negative): either
// polarity segments alike.
TEST_P(ShippedModel, ReadsDicomFilmsOfEitherPolarity) {
  SEG_REQUIRE_JSRT(real);
  ScratchDir tmp;
  const auto bits12 = (seg::io::read_image(real / "images/JPCNN009.png").pixels.to(torch::kDouble) * (4095.0 / 255))
                          .round()
                          .to(torch::kInt);
  fs::create_directories(tmp / "in");
  fs::create_directories(tmp / "truth");
  seg::testing::write_dicom(tmp / "in/positive.dcm", bits12, "MONOCHROME2");
  seg::testing::write_dicom(tmp / "in/negative.dcm", 4095 - bits12, "MONOCHROME1");
  for (const char* name : {"positive", "negative"})
    fs::copy_file(real / "labels/JPCNN009.png", tmp / "truth" / (std::string(name) + ".png"));
  const auto report = segment_and_score({(tmp / "in").string()}, tmp / "truth", tmp.path());
  ASSERT_FALSE(report.is_null());
  ASSERT_EQ(report["cases"].size(), 2u);
  expect_lungs_above(report, 0.95);
}

// Films from other scanners' processing: unsharp-masked (CR/DR), soft, histogram-equalised
// (bench/shift_variants.py measures the whole test split so).
TEST_P(ShippedModel, ToleratesSharpenedSoftAndEqualisedFilms) {
  SEG_REQUIRE_JSRT(real);
  ScratchDir tmp;
  const auto pixels = seg::io::read_image(real / "images/JPCNN009.png").pixels.to(torch::kFloat);
  const auto as_image = [&](const at::Tensor& x) { return x.view_as(pixels); };
  const auto batch = pixels.view({1, 1, 256, 256});
  const auto soft = seg::gaussian_blur(batch, torch::tensor({1.5f}));
  const auto sharpened = batch + 2.5 * (batch - seg::gaussian_blur(batch, torch::tensor({4.0f})));
  const auto counts = torch::histc(pixels, 256, 0, 256);
  const auto cdf = counts.cumsum(0) / static_cast<double>(pixels.numel());
  const auto equalised = cdf.index_select(0, pixels.flatten().to(torch::kLong)) * 255;
  const std::vector<std::pair<std::string, at::Tensor>> variants = {
      {"sharpened", as_image(sharpened)}, {"soft", as_image(soft)}, {"equalised", as_image(equalised)}};
  fs::create_directories(tmp / "in");
  fs::create_directories(tmp / "truth");
  for (const auto& [name, image] : variants) {
    seg::io::write_image(tmp / "in" / (name + ".png"),
                         seg::testing::image_of(image.round().clamp(0, 255).to(torch::kByte), "uint8"));
    fs::copy_file(real / "labels/JPCNN009.png", tmp / "truth" / (name + ".png"));
  }
  const auto report = segment_and_score({(tmp / "in").string()}, tmp / "truth", tmp.path());
  ASSERT_FALSE(report.is_null());
  ASSERT_EQ(report["cases"].size(), variants.size());
  expect_lungs_above(report, 0.95);
}

// Films from elsewhere carry burnt-in text and side markers, and frame the chest wider or
// tighter, in other aspect ratios. The same case under each keeps its lungs.
TEST_P(ShippedModel, ToleratesMarkersAndOtherFieldsOfView) {
  SEG_REQUIRE_JSRT(real);
  ScratchDir tmp;
  using torch::indexing::Slice;
  const auto pixels = seg::io::read_image(real / "images/JPCNN009.png").pixels;
  const auto labels = seg::io::read_label_map(real / "labels/JPCNN009.png").pixels;
  ASSERT_EQ(pixels.sizes(), (std::vector<int64_t>{256, 256}));
  auto marked = pixels.clone();
  // Glyph-like strokes of white text in the top left, a solid side marker in the top right.
  const auto strokes = (torch::arange(64).remainder(6) < 3).to(torch::kByte).mul(255).expand({14, 64});
  marked.index_put_({Slice(6, 20), Slice(6, 70)}, strokes);
  marked.index_put_({Slice(8, 30), Slice(224, 246)}, 255);
  const Variants variants = {
      {"markers", marked, labels},
      {"wide", pad_frame(pixels, 64), pad_frame(labels, 64)},                                           // 384 x 384, chest smaller
      {"tight", pixels.index({Slice(16, 240), Slice(16, 240)}), labels.index({Slice(16, 240), Slice(16, 240)})},
      {"portrait", pixels.index({Slice(), Slice(24, 232)}), labels.index({Slice(), Slice(24, 232)})},  // 256 x 208
  };
  const auto report = segment_and_score_variants(variants, tmp.path());
  ASSERT_FALSE(report.is_null());
  expect_lungs_above(report, 0.93);
}

// Films from tuberculosis and pneumonia screening, the external lung data sets' kind: a lower
// lobe filled in by consolidation is still lung, and a child on an adult detector or a
// whole-body film shows the chest at half the frame (bench/shift_variants.py: consolidation,
// black128; the models shipped before --augment-opacity and --augment-zoom 1 lost 0.03 and
// 0.1 of lung Dice there).
TEST_P(ShippedModel, ToleratesConsolidatedLungsAndAChestAtHalfTheFrame) {
  SEG_REQUIRE_JSRT(real);
  ScratchDir tmp;
  const auto pixels = seg::io::read_image(real / "images/JPCNN009.png").pixels.to(torch::kFloat);
  const auto labels = seg::io::read_label_map(real / "labels/JPCNN009.png").pixels;
  const float heart_grey = pixels.masked_select(labels == 3).median().item<float>();
  // The lower half of one lung blended up to 85 % of the way to the heart's grey, patchily (a
  // smooth grain between 0.3 and 1, as bench/shift_variants.py draws it), with a soft edge.
  auto gen = seg::make_seeded_generator(9);
  auto grain = seg::gaussian_blur(torch::randn({1, 1, 256, 256}, gen), torch::tensor({4.0f})).view({256, 256});
  grain = (0.75 + 0.25 * (grain - grain.mean()) / grain.std()).clamp(0.3, 1.0);
  const auto consolidated = [&](int lung) {
    const auto rows = (labels == lung).any(1).nonzero().flatten();
    const int64_t first = rows.min().item<int64_t>(), last = rows.max().item<int64_t>();
    const auto below = torch::arange(256).view({256, 1}) >= first + (last - first) / 2;
    const auto region = ((labels == lung) & below).to(torch::kFloat).view({1, 1, 256, 256});
    const auto alpha = 0.85 * seg::gaussian_blur(region, torch::tensor({3.0f})).view({256, 256}) * grain;
    return (pixels + alpha * (heart_grey - pixels)).round().clamp(0, 255).to(torch::kByte);
  };
  const Variants variants = {
      {"right_consolidated", consolidated(1), labels},
      {"left_consolidated", consolidated(2), labels},
      {"half_frame", pad_frame(pixels.to(torch::kByte), 128), pad_frame(labels, 128)},  // 512 x 512, the chest at 0.5
  };
  const auto report = segment_and_score_variants(variants, tmp.path());
  ASSERT_FALSE(report.is_null());
  // The floors sit below what the shipped files score and far above models trained without
  // opacity augmentation (docs/models.md lists both).
  expect_lungs_above(report, GetParam().diseased_lung_floor);
}

// Bedside and intensive-care films: a tube down the middle, a central line, ECG electrodes and
// wires over both lungs, a pacemaker below the left clavicle with its lead across the left lung
// into the heart (bench/shift_variants.py: devices; the models shipped before
// --augment-devices lost the left lung above such a lead).
TEST_P(ShippedModel, ToleratesTubesWiresAndAPacemaker) {
  SEG_REQUIRE_JSRT(real);
  ScratchDir tmp;
  const auto dtype = torch::TensorOptions(torch::kDouble);
  seg::DeviceDraws devices{torch::zeros({1, 8, 8}, dtype), torch::zeros({1, 4, 4}, dtype), torch::zeros({1, 5}, dtype),
                           torch::tensor({{0.9, 0.6}}, dtype)};
  // Quadratic curves (start, control, end; normalised coordinates, y down), thick or not.
  const std::vector<std::vector<double>> curves = {
      {0.0, -1.1, 0.05, 0.0, 0.15, 1.0, 1},       // nasogastric tube
      {-0.85, -0.6, -0.4, -0.45, -0.1, -0.25, 1},  // central line from the right shoulder
      {0.5, -0.62, 0.35, -0.3, 0.1, 0.2, 1},       // pacemaker lead into the heart
      {-0.5, -0.2, -0.7, 0.4, -0.9, 1.15, 0},      // ECG wires from the electrodes off the film
      {0.55, -0.1, 0.8, 0.5, 0.6, 1.15, 0},
      {-0.45, 0.35, -0.2, 0.8, -0.3, 1.15, 0},
      {0.5, 0.4, 0.3, 0.8, 0.4, 1.15, 0},
  };
  for (size_t k = 0; k < curves.size(); ++k) {
    auto row = curves[k];
    row.push_back(1);  // present
    devices.curves[0][static_cast<int64_t>(k)] = torch::tensor(row, dtype);
  }
  devices.rings[0] = torch::tensor({{-0.5, -0.2, 0.05, 1.0}, {0.55, -0.1, 0.05, 1.0}, {-0.45, 0.35, 0.05, 1.0},
                                    {0.5, 0.4, 0.05, 1.0}}, dtype);
  devices.box[0] = torch::tensor({0.5, -0.62, 0.07, 0.045, 1.0}, dtype);
  Variants variants;
  for (const std::string case_id : {"JPCNN024", "JPCNN073"}) {
    const auto pixels = seg::io::read_image(real / "images" / (case_id + ".png")).pixels.to(torch::kFloat);
    const auto drawn = seg::apply_devices(pixels.view({1, 1, 256, 256}), devices).view({256, 256});
    variants.emplace_back(case_id, drawn.round().clamp(0, 255).to(torch::kByte),
                          seg::io::read_label_map(real / "labels" / (case_id + ".png")).pixels);
  }
  const auto report = segment_and_score_variants(variants, tmp.path());
  ASSERT_FALSE(report.is_null());
  // Models trained without --augment-devices fall below these floors (docs/models.md).
  expect_lungs_above(report, GetParam().bedside_lung_floor);
}

// A patient turned on the detector: the film turned by 12 degrees either way about its centre,
// the corners black (bench/shift_variants.py: rotated). The clavicles, thin and oblique, are
// what a turn costs most.
TEST_P(ShippedModel, ToleratesAFilmTurnedBy12Degrees) {
  SEG_REQUIRE_JSRT(real);
  ScratchDir tmp;
  Variants variants;
  for (const std::string case_id : {"JPCNN009", "JPCNN073"}) {
    const auto pixels = seg::io::read_image(real / "images" / (case_id + ".png")).pixels.to(torch::kFloat);
    const auto labels = seg::io::read_label_map(real / "labels" / (case_id + ".png")).pixels;
    for (const double degrees : {-12.0, 12.0}) {
      const double a = degrees * M_PI / 180;
      const auto theta = torch::tensor({std::cos(a), -std::sin(a), 0.0, std::sin(a), std::cos(a), 0.0}).view({1, 2, 3});
      const auto [image, truth] = seg::apply_affine(pixels.view({1, 1, 256, 256}), labels.view({1, 256, 256}), theta);
      variants.emplace_back(case_id + (degrees < 0 ? "_minus12" : "_plus12"),
                            image.view({256, 256}).round().clamp(0, 255).to(torch::kByte), truth.view({256, 256}));
    }
  }
  const auto report = segment_and_score_variants(variants, tmp.path());
  ASSERT_FALSE(report.is_null());
  // A guard against a broken model, not a proof of progress: the clavicles of the turned film
  // are the weakest structures here (figures in docs/models.md and the journal).
  expect_lungs_above(report, 0.94);
  ASSERT_EQ(report["labels"][3]["value"], 4);
  for (const auto& c : report["cases"])
    for (const int clavicle : {3, 4}) EXPECT_GT(c["dice"][clavicle].get<double>(), GetParam().turned_clavicle_floor) << c["case"];
}

// Films with a wider field of view than JSRT's: the chest at half of a 512 x 512 frame (a child
// on an adult detector, a whole torso) and off-centre in a 384 x 448 one. By default the
// second pass segments the chest cut out as JSRT frames it, at the image's own resolution;
// the one pass (--no-reframe) sees it at half the size (bench/shift_variants.py black128:
// mean Dice 0.919 once, 0.952 reframed, res-unet). A film framed as JSRT's is left as it was.
TEST_P(ShippedModel, ReframesAChestSmallOrOffCentreInTheFrame) {
  SEG_REQUIRE_JSRT(real);
  Variants variants;
  for (const std::string case_id : {"JPCNN009", "JPCNN073"}) {
    const auto pixels = seg::io::read_image(real / "images" / (case_id + ".png")).pixels;
    const auto labels = seg::io::read_label_map(real / "labels" / (case_id + ".png")).pixels;
    auto off_centre = [](const at::Tensor& t) { return torch::constant_pad_nd(t, {160, 32, 96, 32}, 0); };
    variants.emplace_back(case_id + "_half_frame", pad_frame(pixels, 128), pad_frame(labels, 128));
    variants.emplace_back(case_id + "_off_centre", off_centre(pixels), off_centre(labels));
    variants.emplace_back(case_id, pixels, labels);
  }
  ScratchDir once_dir, twice_dir;
  const auto once = segment_and_score_variants(variants, once_dir.path(), {"--no-reframe"});
  const auto twice = segment_and_score_variants(variants, twice_dir.path());
  ASSERT_FALSE(once.is_null());
  ASSERT_FALSE(twice.is_null());
  ASSERT_EQ(once["cases"].size(), twice["cases"].size());
  for (size_t i = 0; i < twice["cases"].size(); ++i) {
    const auto& a = once["cases"][i];
    const auto& b = twice["cases"][i];
    ASSERT_EQ(a["case"], b["case"]);
    const std::string name = b["case"].get<std::string>();
    auto mean_dice = [](const nlohmann::json& c) {  // over the five structures
      double sum = 0;
      for (int k = 0; k < 5; ++k) sum += c["dice"][k].get<double>();
      return sum / 5;
    };
    const double mean_once = mean_dice(a), mean_twice = mean_dice(b);
    if (name.find('_') == std::string::npos) {
      EXPECT_EQ(mean_twice, mean_once) << name;  // framed as JSRT's: left as it was
      continue;
    }
    // The second pass must gain on every such film, not only on average.
    EXPECT_GT(mean_twice, mean_once + GetParam().reframe_gain) << name;
    EXPECT_GT(mean_twice, GetParam().reframed_floor) << name;
  }
}

// Other lung data sets (and SCR's own lung masks, which published lung figures are scored on)
// draw each lung whole, its apex behind the clavicle too, where JSRT's label maps paint the
// clavicle over it. With --whole the lungs match those outlines; as the label maps draw them
// they fall short by the clavicle's share (on the test split the res-unet's lungs score
// 0.9545/0.9482 against the whole outlines as drawn, 0.9824/0.9803 whole).
TEST_P(ShippedModel, WholeLungsMatchTheLungFieldsOtherDataSetsDraw) {
  SEG_REQUIRE_JSRT(real);
  ScratchDir tmp;
  const std::vector<std::string> cases{"JPCNN009", "JPCNN050", "JPCNN073"};
  std::vector<std::string> inputs;
  for (const auto& c : cases) inputs.push_back((real / "images" / (c + ".png")).string());
  for (const char* mode : {"plain", "whole"}) {
    std::vector<std::string> args{"--model", model(), "-o", (tmp / mode).string(), "--threads", "1"};
    args.insert(args.end(), inputs.begin(), inputs.end());
    if (std::string(mode) == "whole") args.push_back("--whole");
    const auto r = run_tool_in_process(seg::tools::segment, args);
    ASSERT_EQ(r.code, 0) << r.err;
  }
  const std::string landmarks = seg::read_file(real / "landmarks_1024.csv");
  for (const auto& c : cases)
    for (const auto& [value, structure] : std::vector<std::pair<int, std::string>>{{1, "right_lung"}, {2, "left_lung"}}) {
      const auto outline = scr_outline_filled(landmarks, c, structure, 256);
      ASSERT_GT(outline.sum().item<int64_t>(), 1000) << c << " " << structure;
      // The lung against its outline, both as label maps of one structure (label 1).
      const auto lung_dice = [&](const char* mode) {
        const auto lung = seg::io::read_label_map(tmp / mode / (c + ".png")).pixels == value;
        return seg::dice_per_label(lung.to(torch::kLong), outline.to(torch::kLong), 2)[0].item<double>();
      };
      const double plain = lung_dice("plain"), whole = lung_dice("whole");
      EXPECT_GT(whole, GetParam().whole_lung_floor) << c << " " << structure;
      EXPECT_GT(whole - plain, 0.01) << c << " " << structure << ": " << plain << " -> " << whole;
    }
}
