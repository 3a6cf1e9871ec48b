#include <seg/error.h>
#include <seg/metrics.h>

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

namespace seg {
namespace {

void check_label_maps(const at::Tensor& pred, const at::Tensor& truth, const char* what) {
  if (!pred.defined() || !truth.defined())
    throw Error(what, "prediction or truth is an undefined tensor");
  if (pred.sizes() != truth.sizes())
    throw Error(what, "prediction " + c10::str(pred.sizes()) + " and truth " +
                          c10::str(truth.sizes()) + " differ in shape");
  if (at::isFloatingType(pred.scalar_type()) || at::isFloatingType(truth.scalar_type()))
    throw Error(what, "label maps must be integer tensors (take argmax of scores first)");
}

// Per label l in 1..max_label-1 and per row of the B x N views: |P|, |T|, |P&T| as int64,
// each B x (max_label-1).
struct OverlapCounts {
  at::Tensor pred, truth, both;
};

OverlapCounts overlap_counts(const at::Tensor& pred_rows, const at::Tensor& truth_rows,
                             int64_t max_label) {
  const int64_t num_labels = std::max<int64_t>(max_label - 1, 0);
  auto opts = pred_rows.options().dtype(at::kLong);
  OverlapCounts c{at::zeros({pred_rows.size(0), num_labels}, opts),
                  at::zeros({pred_rows.size(0), num_labels}, opts),
                  at::zeros({pred_rows.size(0), num_labels}, opts)};
  for (int64_t label = 1; label < max_label; ++label) {
    auto p = pred_rows.eq(label);
    auto t = truth_rows.eq(label);
    c.pred.select(1, label - 1).copy_(p.sum(1, false, at::kLong));
    c.truth.select(1, label - 1).copy_(t.sum(1, false, at::kLong));
    c.both.select(1, label - 1).copy_(p.logical_and(t).sum(1, false, at::kLong));
  }
  return c;
}

at::Tensor dice_from(const OverlapCounts& c) {
  auto both = c.both.to(at::kDouble), sum = (c.pred + c.truth).to(at::kDouble);
  return ((2.0 * both + kDiceSmoothing) / (sum + kDiceSmoothing)).to(at::kFloat);
}

at::Tensor jaccard_from(const OverlapCounts& c) {
  auto both = c.both.to(at::kDouble);
  auto either = (c.pred + c.truth - c.both).to(at::kDouble);
  return ((both + kDiceSmoothing) / (either + kDiceSmoothing)).to(at::kFloat);
}

// The B x N views of a batch (per case) or the 1 x N view of everything (per label).
std::pair<at::Tensor, at::Tensor> as_rows(const at::Tensor& pred, const at::Tensor& truth,
                                          bool per_case, const char* what) {
  check_label_maps(pred, truth, what);
  if (per_case) {
    if (pred.dim() < 2) throw Error(what, "expects a batch B x H x W, got " + c10::str(pred.sizes()));
    return {pred.reshape({pred.size(0), -1}), truth.reshape({truth.size(0), -1})};
  }
  return {pred.reshape({1, -1}), truth.reshape({1, -1})};
}

// numpy.percentile's default ("linear") on sorted values.
double percentile_of_sorted(const std::vector<double>& sorted, double q) {
  const double position = q / 100.0 * static_cast<double>(sorted.size() - 1);
  const auto lower = static_cast<size_t>(std::floor(position));
  const size_t upper = std::min(lower + 1, sorted.size() - 1);
  const double fraction = position - static_cast<double>(lower);
  return sorted[lower] + fraction * (sorted[upper] - sorted[lower]);
}

// Pixels of a mask with a 4-neighbour outside it or on the image border.
at::Tensor surface_of(const at::Tensor& mask) {
  auto padded = at::constant_pad_nd(mask, {1, 1, 1, 1}, 0);
  const int64_t h = mask.size(0), w = mask.size(1);
  auto interior = padded.slice(0, 0, h).slice(1, 1, w + 1)       // up
                      .logical_and(padded.slice(0, 2, h + 2).slice(1, 1, w + 1))  // down
                      .logical_and(padded.slice(0, 1, h + 1).slice(1, 0, w))      // left
                      .logical_and(padded.slice(0, 1, h + 1).slice(1, 2, w + 2));  // right
  return mask.logical_and(interior.logical_not());
}

// 1D lower envelope of parabolas (Felzenszwalb & Huttenlocher 2012), positions i * step.
// f: squared distances so far (+inf where none); d: output. Sites with f = inf are skipped,
// so a line with no site stays +inf.
void distance_transform_1d(const double* f, double* d, int64_t n, int64_t stride, double step,
                           std::vector<int64_t>& sites, std::vector<double>& bounds) {
  sites.clear();
  bounds.clear();
  const double inf = std::numeric_limits<double>::infinity();
  auto meet = [&](int64_t q, int64_t v) {  // where the parabolas rooted at q and v cross
    const double xq = static_cast<double>(q) * step, xv = static_cast<double>(v) * step;
    return ((f[q * stride] + xq * xq) - (f[v * stride] + xv * xv)) / (2.0 * (xq - xv));
  };
  for (int64_t q = 0; q < n; ++q) {
    if (std::isinf(f[q * stride])) continue;
    while (!sites.empty()) {
      const double s = meet(q, sites.back());
      if (s > bounds.back()) {
        bounds.push_back(s);
        break;
      }
      sites.pop_back();
      bounds.pop_back();
    }
    if (sites.empty()) bounds.push_back(-inf);
    sites.push_back(q);
  }
  if (sites.empty()) {
    for (int64_t q = 0; q < n; ++q) d[q * stride] = inf;
    return;
  }
  bounds.push_back(inf);
  // bounds[k] is where sites[k] starts to be the lowest; bounds[k+1] where it stops.
  size_t k = 0;
  for (int64_t q = 0; q < n; ++q) {
    const double x = static_cast<double>(q) * step;
    while (bounds[k + 1] < x) ++k;
    const double dx = x - static_cast<double>(sites[k]) * step;
    d[q * stride] = dx * dx + f[sites[k] * stride];
  }
}

}  // namespace

at::Tensor dice_per_label(const at::Tensor& pred, const at::Tensor& truth, int64_t max_label) {
  auto [p, t] = as_rows(pred, truth, false, "dice_per_label");
  return dice_from(overlap_counts(p, t, max_label)).squeeze(0);
}

at::Tensor dice_per_case(const at::Tensor& pred, const at::Tensor& truth, int64_t max_label) {
  auto [p, t] = as_rows(pred, truth, true, "dice_per_case");
  return dice_from(overlap_counts(p, t, max_label));
}

at::Tensor jaccard_per_label(const at::Tensor& pred, const at::Tensor& truth, int64_t max_label) {
  auto [p, t] = as_rows(pred, truth, false, "jaccard_per_label");
  return jaccard_from(overlap_counts(p, t, max_label)).squeeze(0);
}

at::Tensor volume_difference_per_label(const at::Tensor& pred, const at::Tensor& truth, int64_t max_label) {
  auto [p, t] = as_rows(pred, truth, false, "volume_difference_per_label");
  const auto c = overlap_counts(p, t, max_label);
  const auto predicted = c.pred.to(at::kDouble), expected = c.truth.to(at::kDouble);
  const auto relative = (predicted - expected) / expected;  // x / 0 = inf, 0 / 0 = nan
  return at::where(c.pred.eq(0).logical_and(c.truth.eq(0)), at::zeros_like(relative), relative)
      .to(at::kFloat)
      .squeeze(0);
}

at::Tensor jaccard_per_case(const at::Tensor& pred, const at::Tensor& truth, int64_t max_label) {
  auto [p, t] = as_rows(pred, truth, true, "jaccard_per_case");
  return jaccard_from(overlap_counts(p, t, max_label));
}

at::Tensor squared_distance_transform(const at::Tensor& features,
                                      std::array<double, 2> spacing_yx) {
  if (features.dim() != 2)
    throw Error("squared_distance_transform", "expects an H x W mask, got " + c10::str(features.sizes()));
  const int64_t h = features.size(0), w = features.size(1);
  const double inf = std::numeric_limits<double>::infinity();
  auto f = at::full({h, w}, inf, at::TensorOptions().dtype(at::kDouble));
  f.masked_fill_(features.to(at::kCPU).to(at::kBool), 0.0);
  auto d = at::empty_like(f);
  std::vector<int64_t> sites;
  std::vector<double> bounds;
  // Columns first (step spacing_y), then rows (step spacing_x) over the column result.
  double* fp = f.data_ptr<double>();
  double* dp = d.data_ptr<double>();
  for (int64_t col = 0; col < w; ++col)
    distance_transform_1d(fp + col, dp + col, h, w, spacing_yx[0], sites, bounds);
  for (int64_t row = 0; row < h; ++row)
    distance_transform_1d(dp + row * w, fp + row * w, w, 1, spacing_yx[1], sites, bounds);
  return f;
}

SurfaceDistance surface_distance(const at::Tensor& pred_mask, const at::Tensor& truth_mask,
                                 std::array<double, 2> spacing_yx) {
  if (pred_mask.dim() != 2 || pred_mask.sizes() != truth_mask.sizes())
    throw Error("surface_distance", "expects two H x W masks of one size, got " +
                                        c10::str(pred_mask.sizes()) + " and " +
                                        c10::str(truth_mask.sizes()));
  if (!(spacing_yx[0] > 0) || !(spacing_yx[1] > 0))
    throw Error("surface_distance", "spacing must be positive");
  auto pred = pred_mask.to(at::kCPU).ne(0).contiguous();
  auto truth = truth_mask.to(at::kCPU).ne(0).contiguous();
  const bool pred_empty = !pred.any().item<bool>(), truth_empty = !truth.any().item<bool>();
  if (pred_empty && truth_empty) return {0.0, 0.0};
  if (pred_empty || truth_empty) {
    const double inf = std::numeric_limits<double>::infinity();
    return {inf, inf};
  }
  auto pred_surface = surface_of(pred), truth_surface = surface_of(truth);
  // Distance from each surface pixel of one mask to the other mask's surface, both ways.
  auto to_truth = squared_distance_transform(truth_surface, spacing_yx).masked_select(pred_surface);
  auto to_pred = squared_distance_transform(pred_surface, spacing_yx).masked_select(truth_surface);
  auto pooled = at::cat({to_truth, to_pred}).sqrt().contiguous();
  std::vector<double> distances(pooled.data_ptr<double>(), pooled.data_ptr<double>() + pooled.numel());
  std::sort(distances.begin(), distances.end());
  double sum = 0.0;
  for (double v : distances) sum += v;
  return {percentile_of_sorted(distances, 95.0), sum / static_cast<double>(distances.size())};
}

std::vector<SurfaceDistance> surface_distance_per_label(const at::Tensor& pred,
                                                        const at::Tensor& truth,
                                                        int64_t max_label,
                                                        std::array<double, 2> spacing_yx) {
  check_label_maps(pred, truth, "surface_distance_per_label");
  auto p = pred.to(at::kCPU), t = truth.to(at::kCPU);
  std::vector<SurfaceDistance> out;
  for (int64_t label = 1; label < max_label; ++label)
    out.push_back(surface_distance(p.eq(label), t.eq(label), spacing_yx));
  return out;
}

}  // namespace seg
