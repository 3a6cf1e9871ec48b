#include <seg/error.h>
#include <seg/io/image_io.h>
#include <seg/viz/overlay.h>
#include <torch/torch.h>

#include <gtest/gtest.h>

#include <set>

#include "test_support.h"

namespace viz = seg::viz;

namespace {
bool pixel_is(const viz::Picture& p, int64_t r, int64_t c, const std::array<uint8_t, 3>& bgr) {
  for (int k = 0; k < 3; ++k)
    if (p[r][c][k].item<int>() != bgr[static_cast<size_t>(k)]) return false;
  return true;
}
}  // namespace

TEST(Viz, LabelColoursAreFixedAndDistinct) {
  std::set<std::array<uint8_t, 3>> seen;
  for (int v = 0; v < 40; ++v) seen.insert(viz::label_colour(v));
  EXPECT_EQ(seen.size(), 40u);
  EXPECT_EQ(viz::label_colour(0), (std::array<uint8_t, 3>{0, 0, 0}));
  EXPECT_EQ(viz::label_colour(3), viz::label_colour(3));
}

TEST(Viz, OverlayTintsLabelsKeepsBackgroundGreyAndHasALegend) {
  seg::Image image;
  image.pixels = torch::arange(64 * 64, torch::kFloat).reshape({64, 64}) / 16;
  auto labels = torch::zeros({64, 64}, torch::kByte);
  labels.slice(0, 20, 40).slice(1, 20, 40).fill_(3);
  auto picture = viz::render_overlay(image, labels, seg::ClassTable::numbered(4), 0.5, "case");
  ASSERT_EQ(picture.dim(), 3);
  // 64 px is enlarged 8x; title band 28 px; legend 170 px to the right.
  EXPECT_EQ(picture.size(0), 28 + 512);
  EXPECT_EQ(picture.size(1), 512 + 170);
  auto background = picture[28 + 8][8];
  EXPECT_EQ(background[0].item<int>(), background[1].item<int>());  // grey: B = G = R
  EXPECT_EQ(background[1].item<int>(), background[2].item<int>());
  auto inside = picture[28 + 30 * 8][30 * 8];  // blended towards red (label 3 is BGR 50,50,230)
  EXPECT_GT(inside[2].item<int>(), inside[0].item<int>() + 40);
  EXPECT_TRUE(pixel_is(picture, 28 + 20 * 8, 30 * 8, viz::label_colour(3)));  // outline opaque
  EXPECT_TRUE(pixel_is(picture, 28 + 10 + 7, 512 + 8 + 7, viz::label_colour(3)));  // legend swatch
  EXPECT_THROW(viz::render_overlay(image, torch::zeros({8, 8}, torch::kByte), seg::ClassTable::numbered(2)), seg::Error);
}

TEST(Viz, MontageTilesAndPads) {
  auto a = torch::full({10, 20, 3}, 255, torch::kByte);
  auto b = torch::zeros({30, 5, 3}, torch::kByte);
  auto m = viz::montage({a, b, a}, 2);
  EXPECT_EQ(m.size(0), 2 * 30 + 4);
  EXPECT_EQ(m.size(1), 2 * 20 + 4);
  EXPECT_EQ(m[0][0][0].item<int>(), 255);
  EXPECT_EQ(m[34][0][0].item<int>(), 255);  // third tile starts the second row
}

TEST(Viz, LinePlotDrawsSeriesInTheirColours) {
  viz::Series loss{"train loss", {0, 1, 2, 3}, {1.0, 0.6, 0.4, 0.3}};
  viz::Series dice{"test dice", {0, 1, 2, 3}, {0.2, 0.5, 0.7, 0.8}};
  auto plot = viz::line_plot({loss, dice}, "training", "epoch", "value", 400, 300);
  EXPECT_EQ(plot.sizes(), (std::vector<int64_t>{300, 400, 3}));
  for (int k = 1; k <= 2; ++k) {
    const auto colour = viz::label_colour(k);
    auto matches = (plot.select(2, 0) == colour[0]) & (plot.select(2, 1) == colour[1]) & (plot.select(2, 2) == colour[2]);
    EXPECT_GT(matches.sum().item<int64_t>(), 50) << "series " << k;
  }
  EXPECT_THROW(viz::line_plot({viz::Series{"bad", {1, 2}, {1}}}, "", "", ""), seg::Error);
}

TEST(Viz, WritePngIsReadableAndAtomic) {
  seg::testing::ScratchDir tmp;
  auto picture = torch::zeros({6, 9, 3}, torch::kByte);
  picture.select(2, 2).fill_(200);
  viz::write_png(tmp / "p.png", picture);
  seg::io::ReadOptions to_gray;
  to_gray.to_gray = true;
  auto back = seg::io::read_image(tmp / "p.png", to_gray);
  EXPECT_EQ(back.height(), 6);
  EXPECT_EQ(back.width(), 9);
  EXPECT_EQ(seg::testing::list_files(tmp.path()), std::vector<std::string>{"p.png"});
}
