// The films a segmentation run reads (seg/io/film_inputs.h) and the files it writes for each
// (seg/viz/film_outputs.h), called without a process.
#include <seg/dataset.h>
#include <seg/error.h>
#include <seg/io/film_inputs.h>
#include <seg/io/image_io.h>
#include <seg/output.h>
#include <seg/segmenter.h>
#include <seg/viz/film_outputs.h>
#include <torch/torch.h>

#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "small_model.h"
#include "test_support.h"

namespace fs = std::filesystem;
using seg::io::FilmInput;

namespace {

void write_film(const fs::path& path, int64_t seed) {
  torch::manual_seed(static_cast<uint64_t>(seed));
  seg::io::write_image(path, {torch::randint(0, 255, {24, 20}, torch::kByte), {}, "uint8"});
}

std::vector<std::string> case_ids(const std::vector<FilmInput>& films) {
  std::vector<std::string> ids;
  for (const auto& film : films) ids.push_back(film.case_id);
  return ids;
}

}  // namespace

TEST(FilmInputs, AFolderGivesItsImageFilesInNameOrderAndAFileItself) {
  const seg::testing::ScratchDir dir("films");
  fs::create_directories(dir / "in");
  write_film(dir / "in" / "b.png", 1);
  write_film(dir / "in" / "a.png", 2);
  std::ofstream(dir / "in" / "notes.txt") << "not a film";
  write_film(dir / "c.png", 3);
  std::vector<FilmInput> films;
  seg::io::add_films(films, dir / "in");
  seg::io::add_films(films, dir / "c.png");
  EXPECT_EQ(case_ids(films), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(films[2].path, dir / "c.png");
  EXPECT_EQ(films[0].read().pixels.sizes(), (std::vector<int64_t>{24, 20}));
  EXPECT_THROW(seg::io::add_films(films, dir / "missing.png"), seg::Error);
  fs::create_directories(dir / "empty");
  EXPECT_THROW(seg::io::add_films(films, dir / "empty"), seg::Error);
}

TEST(FilmInputs, ADataSetSplitNamesItsFilesAndAnUnknownSplitListsTheOthers) {
  const seg::testing::ScratchDir dir("films");
  fs::create_directories(dir / "images");
  for (const char* c : {"p", "q", "r"}) write_film(dir / "images" / (std::string(c) + ".png"), c[0]);
  std::ofstream(dir / "dataset.json") << R"({"images": "images/{case}.png", "classes": {"background": 0},
    "split": {"train": ["p", "q"], "test": ["r"]}})";
  const auto test = seg::io::data_set_films(dir.path(), "test");
  ASSERT_EQ(case_ids(test), (std::vector<std::string>{"r"}));
  EXPECT_EQ(test[0].path, dir / "images" / "r.png");
  try {
    seg::io::data_set_films(dir.path(), "val");
    ADD_FAILURE() << "an unknown split is refused";
  } catch (const seg::UnknownSplit& e) {
    EXPECT_NE(std::string(e.what()).find("(it has: test, train)"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find("--"), std::string::npos) << "no option names in a library message";
  }
}

TEST(FilmInputs, CaseIdsMustBeValidNamesAndUnique) {
  std::vector<FilmInput> films{{"a", "x/a.png", std::nullopt}, {"b", "y/b.png", std::nullopt}};
  EXPECT_NO_THROW(seg::io::check_case_ids(films));
  films.push_back({"a", "z/a.png", std::nullopt});
  try {
    seg::io::check_case_ids(films);
    ADD_FAILURE() << "a repeated case ID is refused";
  } catch (const seg::Error& e) {
    EXPECT_NE(std::string(e.what()).find("z/a.png"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("x/a.png"), std::string::npos) << e.what();
  }
  EXPECT_THROW(seg::io::check_case_ids({{"..", "w/...png", std::nullopt}}), seg::Error);
}

TEST(FilmInputs, ShardsSplitACohortWithoutOverlap) {
  std::vector<FilmInput> films;
  for (int i = 0; i < 7; ++i) films.push_back({std::to_string(i), {}, std::nullopt});
  std::vector<std::string> all;
  for (int64_t k = 0; k < 3; ++k)
    for (const auto& id : case_ids(seg::io::shard_of(films, k, 3))) all.push_back(id);
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all, case_ids(films));
  EXPECT_EQ(case_ids(seg::io::shard_of(films, 1, 3)), (std::vector<std::string>{"1", "4"}));
}

TEST(FilmOutputs, PlanNamesEveryFileWithTheLabelMapLast) {
  const seg::testing::ScratchDir dir("films");
  const seg::OutputFolder folder(dir / "out", {}, seg::Existing::refuse, "");
  const auto classes = seg::ClassTable::numbered(3);
  seg::viz::FilmOutputRequest request{"dcm", true, true, true, {}};
  const auto planned = seg::viz::plan_film_outputs(folder, "c1", "c1.dcm", classes, request);
  ASSERT_EQ(planned.masks.size(), 2u) << "no mask for the background";
  EXPECT_EQ(planned.masks[0], dir / "out" / "masks" / "c1_label_1.nii.gz") << "NIfTI masks beside a DICOM SEG";
  EXPECT_EQ(planned.probabilities.size(), 3u);
  EXPECT_EQ(planned.overlay, dir / "out" / "overlays" / "c1.png");
  EXPECT_EQ(planned.all().back(), dir / "out" / "c1.dcm");
  EXPECT_EQ(planned.all().size(), 2u + 3u + 1u + 1u);
  EXPECT_EQ(seg::viz::film_output_subfolders(request), (std::vector<std::string>{"overlays", "probabilities", "masks"}));
  EXPECT_THROW(seg::viz::plan_film_outputs(folder, "../c1", "c1.dcm", classes, request), seg::Error);
}

TEST(FilmOutputs, WritesTheLabelMapMasksAndOverlayOfAFilm) {
  const seg::testing::ScratchDir dir("films");
  const std::vector<seg::Model> models{seg::testing::small_model(5)};
  seg::SegmenterOptions options;
  options.masks = true;
  const seg::Segmenter segmenter(models, options, torch::kCPU, "model");
  const seg::Image film{torch::rand({40, 36}) * 200, {}, "float32"};
  const auto result = segmenter.segment(film.pixels.unsqueeze(0));
  const seg::OutputFolder folder(dir / "out", {}, seg::Existing::refuse, "");
  const seg::viz::FilmOutputRequest request{"png", true, false, true, {}};
  folder.create(seg::viz::film_output_subfolders(request));
  const auto planned = seg::viz::plan_film_outputs(folder, "f", {}, segmenter.classes(), request);
  seg::viz::write_film_outputs(segmenter, result, 0, film, "f", planned, request);
  EXPECT_EQ(seg::testing::list_files(dir / "out"),
            (std::vector<std::string>{"f.png", "masks/f_label_1.png", "masks/f_label_2.png", "overlays/f.png"}));
  const auto labels = seg::io::read_image(planned.label_map).pixels;
  EXPECT_TRUE(torch::equal(labels, result.labels[0])) << "the label map as segmented";
  const auto mask = seg::io::read_image(planned.masks[0]).pixels;
  EXPECT_TRUE(torch::equal(mask > 0, result.labels[0] == 1)) << "the first structure's mask, 0/255";
}
