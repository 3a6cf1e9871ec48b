#include <seg/error.h>
#include <seg/postprocess.h>
#include <torch/torch.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>
#include <vector>

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

namespace {

// Pixel-by-pixel flood fills: the clean-up's definitions written the plain way, to hold the
// run-based implementation to (it works on runs of equal labels, not pixels).
struct Oracle {
  int64_t height, width;
  std::vector<uint8_t> map;

  explicit Oracle(const at::Tensor& labels)
      : height(labels.size(0)), width(labels.size(1)), map(static_cast<size_t>(labels.numel())) {
    std::memcpy(map.data(), labels.contiguous().data_ptr<uint8_t>(), map.size());
  }
  at::Tensor tensor() const {
    return torch::from_blob(const_cast<uint8_t*>(map.data()), {height, width}, torch::kByte).clone();
  }
  // Every pixel of every structure outside its main piece (see keep_largest_component).
  std::vector<uint8_t> strays() const {
    std::array<int64_t, 256> area{};
    for (uint8_t v : map) ++area[v];
    std::vector<uint8_t> stray(map.size(), 0);
    for (int v = 1; v < 256; ++v) {
      if (area[static_cast<size_t>(v)] == 0) continue;
      auto joins = [&](uint8_t u) { return u == v || (u != 0 && area[u] < area[static_cast<size_t>(v)]); };
      std::vector<int> piece(map.size(), -1);
      std::vector<int64_t> own;
      for (int64_t start = 0; start < height * width; ++start) {
        if (map[static_cast<size_t>(start)] != v || piece[static_cast<size_t>(start)] >= 0) continue;
        std::vector<int64_t> stack{start};
        piece[static_cast<size_t>(start)] = static_cast<int>(own.size());
        own.push_back(0);
        while (!stack.empty()) {
          const int64_t p = stack.back();
          stack.pop_back();
          if (map[static_cast<size_t>(p)] == v) ++own.back();
          for (int64_t dy = -1; dy <= 1; ++dy)
            for (int64_t dx = -1; dx <= 1; ++dx) {
              const int64_t y = p / width + dy, x = p % width + dx;
              if (y < 0 || y >= height || x < 0 || x >= width) continue;
              const auto q = static_cast<size_t>(y * width + x);
              if (piece[q] >= 0 || !joins(map[q])) continue;
              piece[q] = piece[static_cast<size_t>(start)];
              stack.push_back(y * width + x);
            }
        }
      }
      const auto main = std::max_element(own.begin(), own.end()) - own.begin();
      for (size_t p = 0; p < map.size(); ++p)
        if (map[p] == v && piece[p] != main) stray[p] = 1;
    }
    return stray;
  }
  // keep_largest_component without probabilities: stray pixels become background.
  void keep_largest() {
    const auto stray = strays();
    for (size_t p = 0; p < map.size(); ++p)
      if (stray[p]) map[p] = 0;
  }
  // keep_largest_component with channel = value and next_likeliest(pixel) chosen by `next`:
  // then whatever the reassignment left apart goes to background.
  template <typename Next>
  void keep_largest(Next next) {
    bool changed = false;
    const auto stray = strays();
    for (size_t p = 0; p < map.size(); ++p)
      if (stray[p]) map[p] = next(static_cast<int64_t>(p), map[p]), changed = true;
    if (!changed) return;
    const auto again = strays();
    for (size_t p = 0; p < map.size(); ++p)
      if (again[p]) map[p] = 0;
  }
  // restore_covered: `over` pixels inside the convex hull of the `under` pixels become `under`;
  // inside means on the inner side of (or on) every edge of the hull (Andrew's monotone chain).
  void restore(int under, int over) {
    std::vector<std::array<int64_t, 2>> points, hull;
    for (int64_t y = 0; y < height; ++y)
      for (int64_t x = 0; x < width; ++x)
        if (map[static_cast<size_t>(y * width + x)] == under) points.push_back({x, y});
    if (points.size() < 3) return;
    std::sort(points.begin(), points.end());
    auto cross = [](const auto& o, const auto& a, const auto& b) {
      return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);
    };
    for (int pass = 0; pass < 2; ++pass) {
      const size_t base = hull.size();
      for (const auto& p : points) {
        while (hull.size() >= base + 2 && cross(hull[hull.size() - 2], hull.back(), p) <= 0) hull.pop_back();
        hull.push_back(p);
      }
      hull.pop_back();
      std::reverse(points.begin(), points.end());
    }
    if (hull.size() < 3) return;
    const auto given = map;
    for (int64_t y = 0; y < height; ++y)
      for (int64_t x = 0; x < width; ++x) {
        bool inside = true;
        for (size_t i = 0; i < hull.size(); ++i)
          inside = inside && cross(hull[i], hull[(i + 1) % hull.size()], std::array<int64_t, 2>{x, y}) >= 0;
        if (inside && given[static_cast<size_t>(y * width + x)] == over) map[static_cast<size_t>(y * width + x)] = static_cast<uint8_t>(under);
      }
  }
  void fill_holes() {
    std::vector<uint8_t> seen(map.size(), 0);
    for (int64_t start = 0; start < height * width; ++start) {
      if (map[static_cast<size_t>(start)] != 0 || seen[static_cast<size_t>(start)]) continue;
      bool border = false;
      int surround = -1;
      std::vector<int64_t> stack{start}, region;
      seen[static_cast<size_t>(start)] = 1;
      while (!stack.empty()) {
        const int64_t p = stack.back();
        stack.pop_back();
        region.push_back(p);
        const int64_t y = p / width, x = p % width;
        border = border || y == 0 || x == 0 || y == height - 1 || x == width - 1;
        for (auto [dy, dx] : {std::pair<int64_t, int64_t>{-1, 0}, {1, 0}, {0, -1}, {0, 1}}) {
          if (y + dy < 0 || y + dy >= height || x + dx < 0 || x + dx >= width) continue;
          const auto q = static_cast<size_t>((y + dy) * width + x + dx);
          if (map[q] != 0) surround = surround == -1 || surround == map[q] ? map[q] : -2;
          else if (!seen[q]) seen[q] = 1, stack.push_back(static_cast<int64_t>(q));
        }
      }
      if (!border && surround > 0)
        for (int64_t p : region) map[static_cast<size_t>(p)] = static_cast<uint8_t>(surround);
    }
  }
};

// Blobs of 5 structures over a noisy background, so that pieces, holes, ties and structures
// joined through smaller ones all occur.
at::Tensor blobs(int64_t height, int64_t width, uint64_t seed) {
  torch::manual_seed(seed);
  auto map = torch::zeros({height, width}, torch::kByte);
  for (int b = 0; b < 12; ++b) {
    const int64_t y = torch::randint(0, height, {1}).item<int64_t>(), x = torch::randint(0, width, {1}).item<int64_t>();
    const int64_t h = 1 + torch::randint(0, std::max<int64_t>(1, height / 2), {1}).item<int64_t>();
    const int64_t w = 1 + torch::randint(0, std::max<int64_t>(1, width / 2), {1}).item<int64_t>();
    map.narrow(0, y, std::min(h, height - y)).narrow(1, x, std::min(w, width - x)).fill_(1 + b % 5);
  }
  const auto noise = torch::rand({height, width}) < 0.08;
  return torch::where(noise, torch::randint(0, 6, {height, width}, torch::kByte), map);
}

struct MapSize {
  const char* label;
  int64_t height, width;
};
void PrintTo(const MapSize& c, std::ostream* os) { *os << c.label; }

class CleanUpAgainstFloodFills : public ::testing::TestWithParam<MapSize> {};

}  // namespace

// The run-based clean-up gives what pixel flood fills give, on maps of many shapes.
TEST_P(CleanUpAgainstFloodFills, SameMaps) {
  const auto [label, height, width] = GetParam();
  const auto classes = seg::ClassTable::numbered(6);
  for (uint64_t seed = 0; seed < 20; ++seed) {
    const auto labels = blobs(height, width, seed);
    Oracle dropped(labels), filled(labels), reassigned(labels), restored(labels);
    dropped.keep_largest();
    EXPECT_TRUE(torch::equal(seg::keep_largest_component(labels, classes), dropped.tensor())) << label << " seed " << seed;
    filled.fill_holes();
    EXPECT_TRUE(torch::equal(seg::fill_holes(labels), filled.tensor())) << label << " seed " << seed;
    // Reassigned to a class that depends on the pixel and the dropped class.
    auto next = [](int64_t pixel, int dropped) { return static_cast<int>((pixel * 7 + dropped) % 6 == dropped ? 0 : (pixel * 7 + dropped) % 6); };
    reassigned.keep_largest([&](int64_t pixel, uint8_t value) { return static_cast<uint8_t>(next(pixel, value)); });
    const auto out = seg::keep_largest_component(labels, classes, [&](int64_t, int64_t pixel, int dropped) { return next(pixel, dropped); });
    EXPECT_TRUE(torch::equal(out, reassigned.tensor())) << label << " seed " << seed;
    restored.restore(1, 4);
    restored.restore(2, 5);
    EXPECT_TRUE(torch::equal(seg::restore_covered(labels, {{1, 4}, {2, 5}}), restored.tensor())) << label << " seed " << seed;
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, CleanUpAgainstFloodFills,
                         ::testing::Values(MapSize{"OnePixel", 1, 1}, MapSize{"OneRow", 1, 40}, MapSize{"OneColumn", 40, 1},
                                           MapSize{"Small", 7, 13}, MapSize{"Square", 64, 64}, MapSize{"Wide", 37, 100}),
                         [](const auto& info) { return std::string(info.param.label); });
