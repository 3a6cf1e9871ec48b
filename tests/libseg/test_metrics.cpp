#include <seg/error.h>
#include <seg/metrics.h>
#include <torch/torch.h>

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace {

at::Tensor label_map(std::vector<std::vector<int>> rows) {
  const int64_t h = static_cast<int64_t>(rows.size()), w = static_cast<int64_t>(rows[0].size());
  auto t = torch::zeros({h, w}, torch::kLong);
  for (int64_t r = 0; r < h; ++r)
    for (int64_t c = 0; c < w; ++c) t[r][c] = rows[r][c];
  return t;
}

at::Tensor disc(int64_t size, double centre, double radius) {
  auto ys = torch::arange(size, torch::kDouble).view({-1, 1}) - centre;
  auto xs = torch::arange(size, torch::kDouble).view({1, -1}) - centre;
  return (ys * ys + xs * xs).le(radius * radius);
}

// The reference: pooled symmetric surface-to-surface distances by brute force.
seg::SurfaceDistance brute_force_surface_distance(const at::Tensor& a, const at::Tensor& b,
                                                  std::array<double, 2> spacing) {
  auto surface = [](const at::Tensor& m) {
    std::vector<std::pair<int64_t, int64_t>> pts;
    auto acc = m.accessor<bool, 2>();
    const int64_t h = m.size(0), w = m.size(1);
    auto in = [&](int64_t r, int64_t c) { return r >= 0 && c >= 0 && r < h && c < w && acc[r][c]; };
    for (int64_t r = 0; r < h; ++r)
      for (int64_t c = 0; c < w; ++c)
        if (acc[r][c] && !(in(r - 1, c) && in(r + 1, c) && in(r, c - 1) && in(r, c + 1)))
          pts.emplace_back(r, c);
    return pts;
  };
  auto sa = surface(a), sb = surface(b);
  std::vector<double> d;
  auto directed = [&](const auto& from, const auto& to) {
    for (auto [r, c] : from) {
      double best = std::numeric_limits<double>::infinity();
      for (auto [r2, c2] : to) {
        const double dy = (r - r2) * spacing[0], dx = (c - c2) * spacing[1];
        best = std::min(best, std::sqrt(dy * dy + dx * dx));
      }
      d.push_back(best);
    }
  };
  directed(sa, sb);
  directed(sb, sa);
  std::sort(d.begin(), d.end());
  double sum = 0;
  for (double v : d) sum += v;
  const double pos = 0.95 * (d.size() - 1);
  const auto lo = static_cast<size_t>(pos);
  const double hd95 = d[lo] + (pos - lo) * (d[std::min(lo + 1, d.size() - 1)] - d[lo]);
  return {hd95, sum / d.size()};
}

}  // namespace

TEST(Dice, MatchesTheNotebookFormulaOnAHandExample) {
  // label 1: |P| = 3, |T| = 2, |P&T| = 2 -> 4/5; label 2: |P| = 1, |T| = 2, overlap 0 -> 0;
  // label 3 absent from both -> 1 (the 1e-8 terms).
  auto pred = label_map({{1, 1, 1, 0}, {0, 2, 0, 0}});
  auto truth = label_map({{1, 1, 0, 0}, {0, 0, 2, 2}});
  auto dice = seg::dice_per_label(pred, truth, 4);
  ASSERT_EQ(dice.sizes(), (c10::IntArrayRef{3}));
  EXPECT_EQ(dice.scalar_type(), torch::kFloat);
  EXPECT_NEAR(dice[0].item<double>(), 0.8, 1e-7);
  EXPECT_NEAR(dice[1].item<double>(), 1e-8 / 3, 1e-12);
  EXPECT_DOUBLE_EQ(dice[2].item<double>(), 1.0);
  // Jaccard: label 1: 2 / 3; label 2: ~0; label 3: 1.
  auto jac = seg::jaccard_per_label(pred, truth, 4);
  EXPECT_NEAR(jac[0].item<double>(), 2.0 / 3.0, 1e-7);
  EXPECT_LT(jac[1].item<double>(), 1e-8);
  EXPECT_DOUBLE_EQ(jac[2].item<double>(), 1.0);
}

TEST(VolumeDifference, IsSignedRelativeToTheTruthAndInfiniteWhereTheTruthIsEmpty) {
  // label 1: |P| = 3, |T| = 2 -> +0.5 (too large); label 2: |P| = 1, |T| = 2 -> -0.5;
  // label 3 absent from both -> 0; label 4 predicted but not in the truth -> +inf.
  auto pred = label_map({{1, 1, 1, 0}, {0, 2, 0, 4}});
  auto truth = label_map({{1, 1, 0, 0}, {0, 0, 2, 2}});
  auto rvd = seg::volume_difference_per_label(pred, truth, 5);
  ASSERT_EQ(rvd.sizes(), (c10::IntArrayRef{4}));
  EXPECT_NEAR(rvd[0].item<double>(), 0.5, 1e-7);
  EXPECT_NEAR(rvd[1].item<double>(), -0.5, 1e-7);
  EXPECT_EQ(rvd[2].item<double>(), 0.0);
  EXPECT_TRUE(std::isinf(rvd[3].item<double>()) && rvd[3].item<double>() > 0);
  // The prediction empty where the truth is not: -1, everything missed.
  EXPECT_NEAR(seg::volume_difference_per_label(torch::zeros_like(truth), truth, 2)[0].item<double>(), -1.0, 1e-7);
}

TEST(Dice, PerLabelPoolsTheBatchWhilePerCaseScoresEachCase) {
  auto a = label_map({{1, 1, 0, 0}});
  auto b = label_map({{1, 0, 0, 0}});
  auto pred = torch::stack({a, a});          // case 0: perfect; case 1: P = 2, T = 1, overlap 1
  auto truth = torch::stack({a, b});
  auto per_case = seg::dice_per_case(pred, truth, 2);
  ASSERT_EQ(per_case.sizes(), (c10::IntArrayRef{2, 1}));
  EXPECT_NEAR(per_case[0][0].item<double>(), 1.0, 1e-7);
  EXPECT_NEAR(per_case[1][0].item<double>(), 2.0 / 3.0, 1e-7);
  // Pooled: |P| = 4, |T| = 3, overlap 3 -> 6/7, not the mean of the cases (5/6).
  EXPECT_NEAR(seg::dice_per_label(pred, truth, 2)[0].item<double>(), 6.0 / 7.0, 1e-7);
  auto jac = seg::jaccard_per_case(pred, truth, 2);
  EXPECT_NEAR(jac[1][0].item<double>(), 0.5, 1e-7);
}

TEST(Dice, WorksOnAnyIntegerTypeAndRejectsBadInput) {
  auto pred = torch::randint(0, 4, {3, 16, 16}, torch::kLong);
  auto truth = torch::randint(0, 4, {3, 16, 16}, torch::kLong);
  auto expected = seg::dice_per_case(pred, truth, 4);
  EXPECT_TRUE(torch::equal(seg::dice_per_case(pred.to(torch::kByte), truth.to(torch::kByte), 4), expected));
  EXPECT_THROW(seg::dice_per_label(pred.to(torch::kFloat), truth, 4), seg::Error);
  EXPECT_THROW(seg::dice_per_label(pred, truth.slice(1, 0, 8), 4), seg::Error);
}

TEST(Dice, AgreesOnCuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device: CPU/CUDA agreement not checked";
  auto pred = torch::randint(0, 6, {4, 64, 64}, torch::kByte);
  auto truth = torch::randint(0, 6, {4, 64, 64}, torch::kByte);
  auto cpu = seg::dice_per_case(pred, truth, 6);
  auto gpu = seg::dice_per_case(pred.cuda(), truth.cuda(), 6);
  EXPECT_TRUE(gpu.is_cuda());
  EXPECT_TRUE(torch::equal(gpu.cpu(), cpu));
  EXPECT_TRUE(torch::equal(seg::dice_per_label(pred.cuda(), truth.cuda(), 6).cpu(),
                           seg::dice_per_label(pred, truth, 6)));
}

TEST(SurfaceDistance, ShiftedSquareByHand) {
  // Two 4x4 squares, the second 6 columns right of the first. From each border pixel of one
  // square the nearest border pixel of the other is in the same row on its near column:
  // top and bottom rows give 6, 5, 4, 3 each, the far column (2 inner rows) 6, 6, the near
  // column 3, 3. Both directions alike: 24 distances, mean 54 / 12 = 4.5; sorted, entries
  // 21 and 22 (0.95 * 23 = 21.85) are both 6.
  auto a = torch::zeros({10, 16}, torch::kBool);
  auto b = torch::zeros({10, 16}, torch::kBool);
  a.slice(0, 3, 7).slice(1, 2, 6).fill_(true);
  b.slice(0, 3, 7).slice(1, 8, 12).fill_(true);
  auto d = seg::surface_distance(a, b);
  EXPECT_NEAR(d.hd95, 6.0, 1e-12);
  EXPECT_NEAR(d.assd, 4.5, 1e-12);
  // Columns 0.5 mm apart halve every (purely horizontal) distance; row spacing is irrelevant.
  auto mm = seg::surface_distance(a, b, {2.0, 0.5});
  EXPECT_NEAR(mm.hd95, 3.0, 1e-12);
  EXPECT_NEAR(mm.assd, 2.25, 1e-12);
  // The same shift vertically: now the row spacing counts.
  auto mm_t = seg::surface_distance(a.t().contiguous(), b.t().contiguous(), {2.0, 0.5});
  EXPECT_NEAR(mm_t.hd95, 12.0, 1e-12);
  EXPECT_NEAR(mm_t.assd, 9.0, 1e-12);
}

TEST(SurfaceDistance, ConcentricDiscsAreTheirRadiusDifferenceApart) {
  // Radii 10 and 20 about one pixel centre: every surface pixel lies within a pixel of its
  // circle, so every distance is 10 +- 1 and the mean is close to 10.
  auto inner = disc(64, 31, 10), outer = disc(64, 31, 20);
  auto d = seg::surface_distance(inner, outer);
  EXPECT_NEAR(d.assd, 10.0, 0.6);
  EXPECT_GE(d.hd95, 10.0 - 1.0);
  EXPECT_LE(d.hd95, 10.0 + 1.0);
  EXPECT_GE(d.hd95, d.assd);
  // Identical masks are 0 apart; the order of the arguments does not matter.
  auto same = seg::surface_distance(outer, outer);
  EXPECT_EQ(same.hd95, 0.0);
  EXPECT_EQ(same.assd, 0.0);
  auto swapped = seg::surface_distance(outer, inner);
  EXPECT_DOUBLE_EQ(swapped.hd95, d.hd95);
  EXPECT_DOUBLE_EQ(swapped.assd, d.assd);
}

TEST(SurfaceDistance, MatchesBruteForceOnRandomShapesWithAnisotropicSpacing) {
  torch::manual_seed(3);
  for (int trial = 0; trial < 5; ++trial) {
    // Blobs: random noise, smoothed and thresholded, so shapes have holes and islands.
    auto noise = torch::rand({1, 1, 40, 30});
    auto smooth = torch::avg_pool2d(noise, 5, 1, 2).squeeze();
    auto a = smooth.gt(0.52), b = smooth.lt(0.47);
    ASSERT_TRUE(a.any().item<bool>() && b.any().item<bool>());
    std::array<double, 2> spacing{0.7, 1.9};
    auto fast = seg::surface_distance(a, b, spacing);
    auto slow = brute_force_surface_distance(a, b, spacing);
    EXPECT_NEAR(fast.hd95, slow.hd95, 1e-9) << "trial " << trial;
    EXPECT_NEAR(fast.assd, slow.assd, 1e-9) << "trial " << trial;
  }
}

TEST(SurfaceDistance, EmptyMasksHaveDefinedResults) {
  auto empty = torch::zeros({8, 8}, torch::kBool);
  auto some = empty.clone();
  some[2][3] = true;
  auto none = seg::surface_distance(empty, empty);
  EXPECT_EQ(none.hd95, 0.0);
  EXPECT_EQ(none.assd, 0.0);
  EXPECT_TRUE(std::isinf(seg::surface_distance(some, empty).hd95));
  EXPECT_TRUE(std::isinf(seg::surface_distance(empty, some).assd));
  // A single pixel against another 3 rows and 4 columns away: 5.
  auto other = empty.clone();
  other[5][7] = true;
  EXPECT_NEAR(seg::surface_distance(some, other).hd95, 5.0, 1e-12);
}

TEST(SurfaceDistance, PerLabelScoresEachLabel) {
  auto pred = torch::zeros({10, 16}, torch::kByte);
  auto truth = torch::zeros({10, 16}, torch::kByte);
  pred.slice(0, 3, 7).slice(1, 2, 6).fill_(1);
  truth.slice(0, 3, 7).slice(1, 8, 12).fill_(1);
  truth[0][0] = 2;  // label 2 only in the truth; label 3 nowhere
  auto d = seg::surface_distance_per_label(pred, truth, 4);
  ASSERT_EQ(d.size(), 3u);
  EXPECT_NEAR(d[0].assd, 4.5, 1e-12);
  EXPECT_TRUE(std::isinf(d[1].hd95));
  EXPECT_EQ(d[2].hd95, 0.0);
}

TEST(DistanceTransform, ExactSquaredDistances) {
  auto f = torch::zeros({5, 7}, torch::kBool);
  f[1][1] = true;
  f[4][6] = true;
  auto d = seg::squared_distance_transform(f, {1.0, 2.0});
  auto acc = d.accessor<double, 2>();
  for (int r = 0; r < 5; ++r)
    for (int c = 0; c < 7; ++c) {
      const double d1 = std::pow(r - 1, 2) + std::pow(2.0 * (c - 1), 2);
      const double d2 = std::pow(r - 4, 2) + std::pow(2.0 * (c - 6), 2);
      EXPECT_DOUBLE_EQ(acc[r][c], std::min(d1, d2)) << r << "," << c;
    }
  EXPECT_TRUE(std::isinf(seg::squared_distance_transform(torch::zeros({3, 3}, torch::kBool))[1][1].item<double>()));
}
