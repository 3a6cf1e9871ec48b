#include <seg/error.h>
#include <seg/postprocess.h>
#include <torch/torch.h>

#include <gtest/gtest.h>

namespace {

// Rows of digits -> kByte H x W label map.
at::Tensor map_of(const std::vector<std::string>& rows) {
  auto t = torch::zeros({static_cast<int64_t>(rows.size()), static_cast<int64_t>(rows[0].size())}, torch::kByte);
  for (size_t y = 0; y < rows.size(); ++y)
    for (size_t x = 0; x < rows[y].size(); ++x) t[static_cast<int64_t>(y)][static_cast<int64_t>(x)] = rows[y][x] - '0';
  return t;
}

seg::ClassTable five_classes() { return seg::ClassTable::numbered(5); }

}  // namespace

TEST(KeepLargestComponent, DropsSmallerPiecesToBackground) {
  auto labels = map_of({
      "1110000",
      "1110020",
      "1110000",
      "0000011",
      "3300011",
  });
  auto expected = map_of({
      "1110000",
      "1110020",
      "1110000",
      "0000000",
      "3300000",
  });
  auto out = seg::keep_largest_component(labels, five_classes());
  EXPECT_EQ(out.scalar_type(), torch::kByte);
  EXPECT_TRUE(torch::equal(out, expected)) << out;
}

TEST(KeepLargestComponent, DiagonalNeighboursAreConnected) {
  // 8-connectivity: the diagonal staircase is one piece of 5, larger than the block of 4.
  auto labels = map_of({
      "1000000",
      "0100011",
      "0010011",
      "0001000",
      "0000100",
  });
  auto expected = map_of({
      "1000000",
      "0100000",
      "0010000",
      "0001000",
      "0000100",
  });
  EXPECT_TRUE(torch::equal(seg::keep_largest_component(labels, five_classes()), expected));
}

TEST(KeepLargestComponent, PiecesJoinedBySmallerStructuresStayWhole) {
  // The lung (1) is cut in two by the clavicle (4) drawn over it: one piece, kept whole.
  // The clavicle speck at the right and the lung speck at the bottom go; so does the heart (3)
  // speck inside the lung (the lung is larger than the heart, so it does not join heart pieces).
  auto labels = map_of({
      "1111100000",
      "4444444004",
      "1111100000",
      "1131100333",
      "1111100333",
      "0000000000",
      "0110000000",
  });
  auto expected = map_of({
      "1111100000",
      "4444444000",
      "1111100000",
      "1101100333",
      "1111100333",
      "0000000000",
      "0000000000",
  });
  auto out = seg::keep_largest_component(labels, five_classes());
  EXPECT_TRUE(torch::equal(out, expected)) << out;
}

TEST(KeepLargestComponent, TiesKeepTheFirstPieceAndBatchesAreIndependent) {
  auto a = map_of({"1100011", "0000000"});
  auto b = map_of({"0000000", "0220000"});
  auto out = seg::keep_largest_component(torch::stack({a, b}), five_classes());
  EXPECT_TRUE(torch::equal(out[0], map_of({"1100000", "0000000"}))) << out[0];
  EXPECT_TRUE(torch::equal(out[1], b));
  // Any integer type in, kByte out, shape kept.
  auto wide = seg::keep_largest_component(a.to(torch::kLong), five_classes());
  EXPECT_EQ(wide.scalar_type(), torch::kByte);
  EXPECT_EQ(wide.sizes(), a.sizes());
}

TEST(KeepLargestComponent, DroppedPixelsTakeTheNextMostProbableClass) {
  // A speck of 3 inside the lung (1) becomes 1, its second choice. A far speck of 3 whose
  // second choice is also 1 would become a new stray piece of 1: the second pass clears it.
  // The lone 2 is the only piece of its class and stays.
  auto labels = map_of({
      "1111000",
      "1311000",
      "1111003",
      "0000000",
      "0333002",
      "0333000",
  });
  auto probs = torch::full({5, 6, 7}, 0.1f);
  probs[0].fill_(0.3f);   // background is the usual runner-up...
  probs[1][1][1] = 0.5f;  // ...but not inside the lung
  probs[1][2][6] = 0.5f;  // nor at the far speck
  auto expected = map_of({
      "1111000",
      "1111000",
      "1111000",
      "0000000",
      "0333002",
      "0333000",
  });
  auto out = seg::keep_largest_component(labels, five_classes(), probs);
  EXPECT_TRUE(torch::equal(out, expected)) << out;
  // Without probabilities both specks become background.
  auto plain = seg::keep_largest_component(labels, five_classes());
  EXPECT_EQ(plain[1][1].item<int>(), 0);
  EXPECT_EQ(plain[2][6].item<int>(), 0);
}

TEST(KeepLargestComponent, ClassValuesAndBadInputs) {
  // Class values need not be 0..C-1: channel k is entries[k].
  seg::ClassTable classes;
  classes.entries = {{"background", 0}, {"lung", 10}, {"heart", 20}};
  auto labels = map_of({"000000", "000000"});
  labels[0][0] = 10;
  labels[0][1] = 10;
  labels[1][4] = 10;
  labels[0][4] = 20;
  auto probs = torch::zeros({3, 2, 6});
  probs[0].fill_(0.2f);
  probs[2][1][4] = 0.7f;  // the stray lung pixel is next to the heart and likelier heart
  auto out = seg::keep_largest_component(labels, classes, probs);
  EXPECT_EQ(out[1][4].item<int>(), 20);
  EXPECT_EQ(out[0][4].item<int>(), 20);
  EXPECT_EQ(out[0][0].item<int>(), 10);
  EXPECT_THROW(seg::keep_largest_component(torch::zeros({4, 4}), classes), seg::Error);           // float
  EXPECT_THROW(seg::keep_largest_component(labels, classes, torch::zeros({2, 2, 6})), seg::Error);  // channels
  EXPECT_THROW(seg::keep_largest_component(torch::full({2, 2}, 300, torch::kInt), classes), seg::Error);
}

TEST(FillHoles, FillsOnlyHolesEnclosedByOneStructure) {
  auto labels = map_of({
      "00000000000",
      "01110222200",
      "01010200200",
      "01110222200",
      "00000000000",
      "03333000000",
      "03004440000",
      "03333440000",
      "00000000000",
  });
  auto expected = map_of({
      "00000000000",
      "01110222200",
      "01110222200",
      "01110222200",
      "00000000000",
      "03333000000",
      "03004440000",  // bordered by 3 and 4: a gap between structures, kept
      "03333440000",
      "00000000000",
  });
  auto out = seg::fill_holes(labels);
  EXPECT_TRUE(torch::equal(out, expected)) << out;
  // A background region that reaches the image border is never a hole.
  auto open = map_of({"0111", "0101", "0111"});
  EXPECT_TRUE(torch::equal(seg::fill_holes(open), map_of({"0111", "0111", "0111"})));
  auto edge = map_of({"1111", "1001", "1111"});
  EXPECT_TRUE(torch::equal(seg::fill_holes(edge), map_of({"1111", "1111", "1111"})));
  auto notch = map_of({"1111", "1000", "1111"});
  EXPECT_TRUE(torch::equal(seg::fill_holes(notch), notch));
}

// The named steps run in their fixed order (the largest piece first, then its holes), whatever
// order they are given in; an unknown name is refused.
TEST(Postprocess, RunsNamedStepsInOrder) {
  // A ring of 1 with a speck of 1 outside and a hole that the speck's removal does not touch.
  auto labels = map_of({
      "1110001",
      "1010000",
      "1110000",
  });
  const auto classes = five_classes();
  EXPECT_TRUE(torch::equal(seg::postprocess(labels, {}, classes), labels));
  const auto both = map_of({
      "1110000",
      "1110000",
      "1110000",
  });
  EXPECT_TRUE(torch::equal(seg::postprocess(labels, {"largest-component", "fill-holes"}, classes), both));
  EXPECT_TRUE(torch::equal(seg::postprocess(labels, {"fill-holes", "largest-component"}, classes), both));
  EXPECT_TRUE(torch::equal(seg::postprocess(labels, {"fill-holes"}, classes), seg::fill_holes(labels)));
  EXPECT_TRUE(torch::equal(seg::postprocess(labels, {"largest-component"}, classes),
                           seg::keep_largest_component(labels, classes)));
  EXPECT_THROW(seg::postprocess(labels, {"smooth"}, classes), seg::Error);
  EXPECT_THROW(seg::check_postprocessing_steps({"largest-component", "dilate"}, "m.pth"), seg::Error);
  EXPECT_NO_THROW(seg::check_postprocessing_steps(seg::postprocessing_steps(), "m.pth"));
}

// A structure drawn over another's part (the clavicle over the lung apex) gives that part back
// where it lies within the convex hull of what is left of the structure beneath.
TEST(RestoreCovered, PaintsTheStructureBeneathWholeWithinItsHull) {
  // A rectangle of 1 crossed by a band of 4 that runs on beyond it; a 3 inside the hull stays.
  auto labels = map_of({
      "0000000000",
      "0111111000",
      "4444444444",
      "4444444444",
      "0111311000",
      "0111111000",
      "0000000000",
  });
  const auto whole = map_of({
      "0000000000",
      "0111111000",
      "4111111444",
      "4111111444",
      "0111311000",
      "0111111000",
      "0000000000",
  });
  EXPECT_TRUE(torch::equal(seg::restore_covered(labels, {{1, 4}}), whole));
  // No overlaps, an absent structure, or one with fewer than three hull corners: unchanged.
  EXPECT_TRUE(torch::equal(seg::restore_covered(labels, {}), labels));
  EXPECT_TRUE(torch::equal(seg::restore_covered(labels, {{2, 4}}), labels));
  auto line = labels.clone();
  line.masked_fill_(line == 1, 0);
  line[1][1] = 1;
  line[4][1] = 1;
  EXPECT_TRUE(torch::equal(seg::restore_covered(line, {{1, 4}}), line));
  // Each image of a batch has its own hull; the input is left as it was.
  const auto batch = torch::stack({labels, line});
  const auto before = batch.clone();
  const auto out = seg::restore_covered(batch, {{1, 4}});
  EXPECT_TRUE(torch::equal(out[0], whole));
  EXPECT_TRUE(torch::equal(out[1], line));
  EXPECT_TRUE(torch::equal(batch, before));
  EXPECT_THROW(seg::restore_covered(labels.to(torch::kFloat), {{1, 4}}), seg::Error);
}
