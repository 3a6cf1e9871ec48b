// Where the structures sit in the frame: the box, the median margins, the crop that frames alike.
#include <seg/error.h>
#include <seg/framing.h>
#include <torch/torch.h>

#include <gtest/gtest.h>

using torch::indexing::Slice;

namespace {

// An H x W map with value `value` in rows [top, bottom) and columns [left, right).
at::Tensor map_with_box(int64_t height, int64_t width, seg::Crop box, int value = 1) {
  auto labels = torch::zeros({height, width}, torch::kByte);
  labels.index_put_({Slice(box.top, box.bottom), Slice(box.left, box.right)}, value);
  return labels;
}

}  // namespace

TEST(Framing, TheBoxSpansEveryStructure) {
  auto labels = map_with_box(40, 50, {10, 20, 5, 15}, 1);
  labels.index_put_({30, 44}, 3);  // another structure, alone at the far corner
  const auto box = seg::structure_box(labels);
  ASSERT_TRUE(box.has_value());
  EXPECT_EQ(*box, (seg::Crop{10, 31, 5, 45}));
  EXPECT_EQ(box->height(), 21);
  EXPECT_EQ(box->width(), 40);
  EXPECT_FALSE(seg::structure_box(torch::zeros({8, 8}, torch::kByte)).has_value());
}

TEST(Framing, MarginsAreEachSidesMedianOverTheMapsThatHoldStructures) {
  // Boxes 20 x 40 in 100 x 100 maps; margins in box heights (top, bottom) and widths.
  //   map 0: top 10 (0.5), bottom 70 (3.5), left 30 (0.75), right 30 (0.75)
  //   map 1: top 20 (1.0), bottom 60 (3.0), left 10 (0.25), right 50 (1.25)
  //   map 2: top 40 (2.0), bottom 40 (2.0), left 0 (0), right 60 (1.5)
  //   map 3: empty, left out
  auto maps = torch::stack({map_with_box(100, 100, {10, 30, 30, 70}), map_with_box(100, 100, {20, 40, 10, 50}, 2),
                            map_with_box(100, 100, {40, 60, 0, 40}, 5), torch::zeros({100, 100}, torch::kByte)});
  const auto framing = seg::measure_framing(maps, "maps");
  EXPECT_DOUBLE_EQ(framing.top, 1.0);
  EXPECT_DOUBLE_EQ(framing.bottom, 3.0);
  EXPECT_DOUBLE_EQ(framing.left, 0.25);
  EXPECT_DOUBLE_EQ(framing.right, 1.25);
  // An even count: the mean of the middle two.
  const auto two = seg::measure_framing(maps.narrow(0, 0, 2), "maps");
  EXPECT_DOUBLE_EQ(two.top, 0.75);
  EXPECT_DOUBLE_EQ(two.right, 1.0);
  try {
    seg::measure_framing(torch::zeros({2, 8, 8}, torch::kByte), "data/empty");
    ADD_FAILURE() << "label maps without a structure were framed";
  } catch (const seg::Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("data/empty: ", 0), 0u) << e.what();  // names the data, not "framing"
  }
}

TEST(Framing, TheCropFramesTheBoxAndStaysInTheImage) {
  const seg::Framing framing{0.25, 0.5, 0.125, 0.75};
  // A 40 x 80 box: 10 rows above, 20 below, 10 columns left, 60 right.
  EXPECT_EQ(seg::framed_crop({100, 140, 200, 280}, framing, 400, 500), (seg::Crop{90, 160, 190, 340}));
  // Near the edges the crop is cut to the image, never widened past it.
  EXPECT_EQ(seg::framed_crop({4, 44, 430, 510}, framing, 60, 512), (seg::Crop{0, 60, 420, 512}));
}

TEST(Framing, TheCropGrowsToTheInputsAspectInsideTheImage) {
  // 70 x 75 towards square: 5 rows more, 2 above and 3 below.
  EXPECT_EQ(seg::grown_to_aspect({10, 80, 85, 160}, 1.0, 200, 200), (seg::Crop{8, 83, 85, 160}));
  // At the image's edge it moves inside: rows 0..75 rather than -2..73.
  EXPECT_EQ(seg::grown_to_aspect({0, 70, 85, 160}, 1.0, 200, 200), (seg::Crop{0, 75, 85, 160}));
  // Towards a tall input (height / width 2): 40 x 60 becomes 120 x 60, cut to the image's 100 rows.
  EXPECT_EQ(seg::grown_to_aspect({30, 70, 0, 60}, 2.0, 100, 300), (seg::Crop{0, 100, 0, 60}));
  // Already at the aspect ratio: unchanged.
  EXPECT_EQ(seg::grown_to_aspect({5, 25, 5, 25}, 1.0, 30, 30), (seg::Crop{5, 25, 5, 25}));
}

TEST(Framing, ASecondLookMustKeepClearOfTheCropsInnerSides) {
  // The first look's box is 70 x 80; half the framing's margins: 7 rows above and below, 4
  // columns left and right. The crop (100 x 100) lies inside a 200 x 200 image on every side.
  const seg::Framing framing{0.2, 0.2, 0.1, 0.1};
  const seg::Crop first{20, 90, 30, 110}, crop{10, 110, 20, 120};
  EXPECT_TRUE(seg::crop_holds_structures(crop, seg::Crop{7, 93, 4, 96}, first, framing, 200, 200));
  EXPECT_FALSE(seg::crop_holds_structures(crop, seg::Crop{6, 93, 4, 96}, first, framing, 200, 200));   // top
  EXPECT_FALSE(seg::crop_holds_structures(crop, seg::Crop{7, 94, 4, 96}, first, framing, 200, 200));   // bottom
  EXPECT_FALSE(seg::crop_holds_structures(crop, seg::Crop{7, 93, 3, 96}, first, framing, 200, 200));   // left
  EXPECT_FALSE(seg::crop_holds_structures(crop, seg::Crop{7, 93, 4, 97}, first, framing, 200, 200));   // right
  EXPECT_FALSE(seg::crop_holds_structures(crop, std::nullopt, first, framing, 200, 200));  // nothing found
  // Where the crop ends at the image's edge the structures may reach it: the film ends there.
  EXPECT_TRUE(seg::crop_holds_structures({0, 100, 0, 100}, seg::Crop{0, 100, 0, 100}, first, framing, 100, 100));
  EXPECT_FALSE(seg::crop_holds_structures({0, 100, 0, 100}, seg::Crop{0, 100, 0, 100}, first, framing, 100, 101));
}
