// What seg-inspect reports of data sets and image files (io/inspection.h), without the tool.
#include <seg/dataset.h>
#include <seg/error.h>
#include <seg/io/dataset_io.h>
#include <seg/io/image_io.h>
#include <seg/io/inspection.h>
#include <torch/torch.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>

#include "fixtures.h"
#include "test_support.h"

using seg::testing::contains;
using seg::testing::error_of;
using seg::testing::ScratchDir;
namespace io = seg::io;

namespace {

// Three cases of 4 x 5: images filled with 10, 20 and 30; labels all background but for two
// pixels of 1 (case a), three of 2 (case b) and one of 3 (case c). Splits train {a, b} and
// test {c}; four classes, so label_3 is in the table.
seg::Dataset counted_dataset() {
  seg::Dataset d;
  d.name = "counted";
  d.source = "memory";
  d.images = torch::stack({torch::full({4, 5}, 10, torch::kByte), torch::full({4, 5}, 20, torch::kByte),
                           torch::full({4, 5}, 30, torch::kByte)});
  d.labels = torch::zeros({3, 4, 5}, torch::kByte);
  d.labels[0][0][0] = 1;
  d.labels[0][1][1] = 1;
  d.labels[1][2].slice(0, 0, 3).fill_(2);
  d.labels[2][3][4] = 3;
  d.cases = {"a", "b", "c"};
  d.classes = seg::ClassTable::numbered(4);
  d.splits["train"] = {"a", "b"};
  d.splits["test"] = {"c"};
  return d;
}

// The histogram's counts at the values that have any.
std::map<int, int64_t> nonzero_counts(const io::LabelHistogram& histogram) {
  std::map<int, int64_t> counts;
  for (int v = 0; v < 256; ++v)
    if (histogram.counts[static_cast<size_t>(v)] > 0) counts[v] = histogram.counts[static_cast<size_t>(v)];
  return counts;
}

}  // namespace

// The spread of large values is kept to the last digit, over images added one by one.
TEST(Inspection, IntensitySpreadOfLargeValuesIsExact) {
  seg::io::IntensityStatistics stats;
  stats.add(torch::tensor({1e9, 1e9 + 1}, torch::kDouble));
  stats.add(torch::tensor({1e9 + 2}, torch::kDouble));
  EXPECT_DOUBLE_EQ(stats.mean(), 1e9 + 1);
  EXPECT_NEAR(stats.std(), std::sqrt(2.0 / 3.0), 1e-6);
  EXPECT_EQ(stats.count, 3);
  EXPECT_EQ(stats.min, 1e9);
  EXPECT_EQ(stats.max, 1e9 + 2);
}

TEST(Inspection, FolderReportCountsCasesSplitsSizesAndLabels) {
  ScratchDir tmp;
  io::write_dataset_folder(counted_dataset(), tmp / "set");
  const auto report = io::scan_dataset(tmp / "set");
  EXPECT_EQ(report.name, "counted");
  EXPECT_EQ(report.kind, "data set folder");
  EXPECT_EQ(report.cases, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(report.labelled, 3);
  // In the order of their first case, not by name.
  EXPECT_EQ(report.splits, (std::vector<std::pair<std::string, int64_t>>{{"train", 2}, {"test", 1}}));
  EXPECT_EQ(report.sizes, (std::map<std::pair<int64_t, int64_t>, int64_t>{{{4, 5}, 3}}));
  EXPECT_EQ(report.pixel_types, (std::map<std::string, int64_t>{{"uint8", 3}}));
  EXPECT_EQ(nonzero_counts(report.histogram), (std::map<int, int64_t>{{0, 54}, {1, 2}, {2, 3}, {3, 1}}));
  EXPECT_DOUBLE_EQ(report.intensity.min, 10);
  EXPECT_DOUBLE_EQ(report.intensity.max, 30);
  EXPECT_DOUBLE_EQ(report.intensity.mean(), 20);
  EXPECT_NEAR(report.intensity.std(), std::sqrt(200.0 / 3), 1e-9);
  EXPECT_TRUE(report.warnings.empty()) << report.warnings.front();

  // The tensor pack of the same data says the same.
  seg::save_tensor_pack(counted_dataset(), tmp / "set.pth");
  const auto packed = io::scan_dataset(tmp / "set.pth");
  EXPECT_EQ(packed.kind, "tensor pack");
  EXPECT_EQ(packed.splits, report.splits);
  EXPECT_EQ(packed.histogram.counts, report.histogram.counts);
  EXPECT_EQ(packed.sizes, report.sizes);
}

TEST(Inspection, FolderReportWarnsAboutWhatIsOdd) {
  ScratchDir tmp;
  io::write_dataset_folder(counted_dataset(), tmp / "set");
  // Case b loses its label map; case c's becomes 6 x 6 with a value outside the table, and its
  // image 6 x 6 too.
  std::filesystem::remove(tmp / "set" / "labels" / "b.png");
  const auto other = seg::testing::image_of(torch::full({6, 6}, 9, torch::kByte), "uint8");
  io::write_label_map(tmp / "set" / "labels" / "c.png", other);
  io::write_image(tmp / "set" / "images" / "c.png", other);
  const auto report = io::scan_dataset(tmp / "set" / "dataset.json");
  EXPECT_EQ(report.labelled, 2);
  EXPECT_EQ(nonzero_counts(report.histogram), (std::map<int, int64_t>{{0, 18}, {1, 2}, {9, 36}}));
  ASSERT_EQ(report.warnings.size(), 6u) << nlohmann::json(report.warnings).dump(1);
  EXPECT_EQ(report.warnings[0], (tmp / "set" / "images" / "c.png").string() +
                                    " is 6 x 6 (height x width), not the stated size 4 x 5; the tools resample it to that size");
  EXPECT_EQ(report.warnings[1], "1 cases have no label map (first: b, expected " + (tmp / "set" / "labels" / "b.png").string() + ")");
  EXPECT_EQ(report.warnings[2], "label value 9 (36 pixels) is not in the class table");
  EXPECT_EQ(report.warnings[3], "class label_2 (2) has no pixels in any label map");
  EXPECT_EQ(report.warnings[4], "class label_3 (3) has no pixels in any label map");
  EXPECT_TRUE(contains(report.warnings[5], "image sizes differ (height x width): 4 x 5 (2 cases), 6 x 6 (1 case); ")) << report.warnings[5];
}

TEST(Inspection, ReportAsTextAndJson) {
  ScratchDir tmp;
  seg::save_tensor_pack(counted_dataset(), tmp / "set.pth");
  const auto report = io::scan_dataset(tmp / "set.pth");
  const std::string text = io::dataset_report_text(report);
  for (const std::string& line : std::vector<std::string>{"counted (tensor pack " + (tmp / "set.pth").string() + ")\n",
                                 "cases: 3 (3 with label maps)\n", "splits: train 2 test 1\n",
                                 "classes: 4 (0 background, 1 label_1, 2 label_2, 3 label_3)\n",
                                 "image size: 4 x 5 (height x width), 3 cases\n", "pixel type: uint8, 3 cases\n",
                                 "intensity: min 10, max 30, mean 20, std 8.16497\n",
                                 "    2  label_2                    3    5.00 %\n", "warnings: none\n"})
    EXPECT_TRUE(contains(text, line)) << line << "\n" << text;

  const auto j = nlohmann::json::parse(io::dataset_report_json(report));
  EXPECT_EQ(j["cases"], 3);
  EXPECT_EQ(j["splits"]["test"], 1);
  EXPECT_EQ(j["image_sizes"][0]["width"], 5);
  EXPECT_EQ(j["labels"][3]["value"], 3);
  EXPECT_EQ(j["labels"][3]["pixels"], 1);
  EXPECT_DOUBLE_EQ(j["labels"][0]["fraction"].get<double>(), 54.0 / 60);
  EXPECT_TRUE(j["warnings"].empty());
}

TEST(Inspection, ImageReportShowsAHistogramOnlyForLabelLikeImages) {
  const auto few = seg::testing::image_of(torch::tensor({{0, 1, 1}, {2, 2, 2}}, torch::kShort), "int16");
  auto report = io::describe_image("few.nii.gz", few, false);
  ASSERT_TRUE(report.histogram.has_value());
  EXPECT_EQ(nonzero_counts(*report.histogram), (std::map<int, int64_t>{{0, 1}, {1, 2}, {2, 3}}));
  const std::string text = io::image_report_text(report);
  EXPECT_TRUE(contains(text, "few.nii.gz (image)\nsize: 2 x 3 (height x width)\npixel type: int16\n")) << text;
  EXPECT_TRUE(contains(text, "spacing: none")) << text;
  EXPECT_TRUE(contains(text, "    2  label_2                    3   50.00 %\n")) << text;

  // Many values, or floating point: an image, no histogram; unless read as a label map.
  const auto many = seg::testing::image_of(torch::arange(40, torch::kByte).view({5, 8}), "uint8");
  EXPECT_FALSE(io::describe_image("many.png", many, false).histogram.has_value());
  EXPECT_TRUE(io::describe_image("many.png", many, true).histogram.has_value());
  auto spaced = seg::testing::image_of(torch::full({2, 2}, 0.5, torch::kFloat), "float32");
  spaced.geometry.has_spacing = true;
  spaced.geometry.spacing = {0.25, 0.5};
  report = io::describe_image("f.nii.gz", spaced, false);
  EXPECT_FALSE(report.histogram.has_value());
  EXPECT_TRUE(contains(io::image_report_text(report), "spacing: 0.25 x 0.5 mm\n")) << io::image_report_text(report);
  const auto j = nlohmann::json::parse(io::image_report_json(report));
  EXPECT_EQ(j["kind"], "image");
  EXPECT_DOUBLE_EQ(j["spacing"][1].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(j["intensity"]["mean"].get<double>(), 0.5);
  EXPECT_FALSE(j.contains("labels"));
}

TEST(Inspection, OneCaseForDrawing) {
  ScratchDir tmp;
  const auto d = counted_dataset();
  io::write_dataset_folder(d, tmp / "set");
  seg::save_tensor_pack(d, tmp / "set.pth");
  for (const auto& source : {tmp / "set", tmp / "set.pth"}) {
    const auto first = io::read_dataset_case(source, "");
    EXPECT_EQ(first.id, "a");
    const auto c = io::read_dataset_case(source, "c");
    EXPECT_TRUE(torch::equal(c.image.pixels, d.images[2])) << source;
    EXPECT_TRUE(torch::equal(c.labels, d.labels[2])) << source;
    EXPECT_EQ(c.classes.entries, d.classes.entries);
    EXPECT_TRUE(contains(error_of([&] { io::read_dataset_case(source, "nope"); }), "has no case nope")) << source;
  }
}
