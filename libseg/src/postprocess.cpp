#include <seg/error.h>
#include <seg/postprocess.h>

#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>
#include <vector>

namespace seg {
namespace {

// A label map's rows as runs of equal values; the runs of row y are
// runs[row_begin[y] .. row_begin[y + 1]). Clean-up works on runs, not pixels: a 2048 x 2048
// map has some ten thousand of them.
struct Run {
  int32_t start, end;  // columns [start, end)
  uint8_t value;
};

struct RunMap {
  int64_t height = 0, width = 0;
  std::vector<Run> runs;
  std::vector<size_t> row_begin;
};

RunMap runs_of(const uint8_t* labels, int64_t height, int64_t width) {
  RunMap map;
  map.height = height;
  map.width = width;
  map.row_begin.reserve(static_cast<size_t>(height) + 1);
  for (int64_t y = 0; y < height; ++y) {
    map.row_begin.push_back(map.runs.size());
    const uint8_t* row = labels + y * width;
    for (int64_t x = 0; x < width;) {
      const uint8_t value = row[x];
      const int64_t start = x;
      while (x < width && row[x] == value) ++x;
      map.runs.push_back({static_cast<int32_t>(start), static_cast<int32_t>(x), value});
    }
  }
  map.row_begin.push_back(map.runs.size());
  return map;
}

// Union-find over indices 0..n-1.
class DisjointSets {
 public:
  explicit DisjointSets(size_t n) : parent_(n) {
    for (size_t i = 0; i < n; ++i) parent_[i] = static_cast<uint32_t>(i);
  }
  uint32_t find(uint32_t i) {
    while (parent_[i] != i) i = parent_[i] = parent_[parent_[i]];
    return i;
  }
  void join(uint32_t a, uint32_t b) {
    a = find(a);
    b = find(b);
    if (a != b) parent_[std::max(a, b)] = std::min(a, b);
  }

 private:
  std::vector<uint32_t> parent_;
};

// Calls touch(i, j) for every pair of spans i of row `lower` and j of the row above that are
// neighbours: overlapping columns (4-connectivity), or also touching at a corner (8).
// Spans of a row are sorted and apart; `spans` holds [start, end) pairs.
template <typename Spans, typename Touch>
void for_each_neighbour_pair(const Spans& spans, size_t upper_begin, size_t upper_end, size_t lower_begin,
                             size_t lower_end, bool corners, Touch touch) {
  const int32_t reach = corners ? 1 : 0;
  size_t i = lower_begin, j = upper_begin;
  while (i < lower_end && j < upper_end) {
    const auto& a = spans[i];
    const auto& b = spans[j];
    if (a.start < b.end + reach && b.start < a.end + reach) touch(i, j);
    if (a.end < b.end) ++i;
    else if (b.end < a.end) ++j;
    else ++i, ++j;
  }
}

// The runs of every structure (value != 0) that lie outside its main piece, as indices into
// map.runs. Pieces of a structure v are 8-connected through pixels of v itself or of
// structures with fewer pixels in this image: those drawn over v, as the clavicles over the
// lungs, split v without making its far side a stray piece. The main piece is the one with
// the most pixels of v (the first met in row-major order on ties).
std::vector<size_t> stray_runs(const RunMap& map) {
  std::array<int64_t, 256> area{};
  for (const auto& run : map.runs) area[run.value] += run.end - run.start;
  struct Span {
    int32_t start, end;
    size_t first_run, last_run;  // the runs it joins, [first_run, last_run]
    int64_t own, first_own;      // pixels of v; row-major index of its first pixel of v (-1: none)
  };
  std::vector<Span> spans;
  std::vector<size_t> span_row_begin, stray;
  for (int v = 1; v < 256; ++v) {
    if (area[static_cast<size_t>(v)] == 0) continue;
    auto joins = [&](uint8_t u) { return u == v || (u != 0 && area[u] < area[static_cast<size_t>(v)]); };
    // Each row's maximal spans of joining runs.
    spans.clear();
    span_row_begin.clear();
    for (int64_t y = 0; y < map.height; ++y) {
      span_row_begin.push_back(spans.size());
      const size_t end = map.row_begin[static_cast<size_t>(y) + 1];
      for (size_t r = map.row_begin[static_cast<size_t>(y)]; r < end; ++r) {
        if (!joins(map.runs[r].value)) continue;
        Span span{map.runs[r].start, map.runs[r].end, r, r, 0, -1};
        for (; r < end && joins(map.runs[r].value); ++r) {
          const auto& run = map.runs[r];
          span.end = run.end;
          span.last_run = r;
          if (run.value == v) {
            if (span.own == 0) span.first_own = y * map.width + run.start;
            span.own += run.end - run.start;
          }
        }
        spans.push_back(span);
      }
    }
    span_row_begin.push_back(spans.size());
    DisjointSets pieces(spans.size());
    for (int64_t y = 1; y < map.height; ++y)
      for_each_neighbour_pair(spans, span_row_begin[static_cast<size_t>(y) - 1], span_row_begin[static_cast<size_t>(y)],
                              span_row_begin[static_cast<size_t>(y)], span_row_begin[static_cast<size_t>(y) + 1], true,
                              [&](size_t i, size_t j) { pieces.join(static_cast<uint32_t>(i), static_cast<uint32_t>(j)); });
    // Each piece's pixels of v and where it is first met; the main piece.
    std::vector<int64_t> own(spans.size(), 0), first(spans.size(), -1);
    for (size_t s = 0; s < spans.size(); ++s) {
      if (spans[s].own == 0) continue;
      const uint32_t root = pieces.find(static_cast<uint32_t>(s));
      own[root] += spans[s].own;
      if (first[root] < 0 || spans[s].first_own < first[root]) first[root] = spans[s].first_own;
    }
    int64_t main = -1, owning = 0;
    for (size_t s = 0; s < spans.size(); ++s) {
      if (own[s] == 0) continue;
      ++owning;
      if (main < 0 || own[s] > own[static_cast<size_t>(main)] ||
          (own[s] == own[static_cast<size_t>(main)] && first[s] < first[static_cast<size_t>(main)]))
        main = static_cast<int64_t>(s);
    }
    if (owning < 2) continue;
    for (size_t s = 0; s < spans.size(); ++s) {
      if (spans[s].own == 0 || pieces.find(static_cast<uint32_t>(s)) == static_cast<uint32_t>(main)) continue;
      for (size_t r = spans[s].first_run; r <= spans[s].last_run; ++r)
        if (map.runs[r].value == v) stray.push_back(r);
    }
  }
  return stray;
}

// Row of run r (runs are stored row by row).
int64_t row_of(const RunMap& map, size_t r) {
  return static_cast<int64_t>(std::upper_bound(map.row_begin.begin(), map.row_begin.end(), r) - map.row_begin.begin()) - 1;
}

// Sets every stray pixel to 0; returns how many changed.
int64_t drop_to_background(uint8_t* labels, int64_t height, int64_t width) {
  const auto map = runs_of(labels, height, width);
  int64_t changed = 0;
  for (size_t r : stray_runs(map)) {
    const auto& run = map.runs[r];
    std::fill(labels + row_of(map, r) * width + run.start, labels + row_of(map, r) * width + run.end, uint8_t{0});
    changed += run.end - run.start;
  }
  return changed;
}

// The image as a CPU kByte B x H x W tensor (a copy we may write to).
at::Tensor to_byte_batch(const at::Tensor& labels, const char* what) {
  if (labels.dim() != 2 && labels.dim() != 3)
    throw Error(std::string(what) + ": expected an H x W or B x H x W label map");
  if (labels.is_floating_point() || labels.is_complex())
    throw Error(std::string(what) + ": expected an integer label map, got floating point");
  at::Tensor x = labels.to(torch::kCPU);
  if (x.numel() > 0 && (x.min().item<int64_t>() < 0 || x.max().item<int64_t>() > 255))
    throw Error(std::string(what) + ": label values must lie in 0..255");
  x = x.to(torch::kByte).clone().contiguous();
  return x.dim() == 2 ? x.unsqueeze(0) : x;
}

// The convex hull (counter-clockwise, no collinear corners) of the pixels of `value`, as
// (column, row) points: each row's leftmost and rightmost pixel span it. Andrew's monotone chain.
std::vector<std::array<int64_t, 2>> convex_hull_of(const uint8_t* labels, int64_t height, int64_t width, int value) {
  std::vector<std::array<int64_t, 2>> points;
  for (int64_t y = 0; y < height; ++y) {
    const uint8_t* row = labels + y * width;
    int64_t left = -1, right = -1;
    for (int64_t x = 0; x < width; ++x)
      if (row[x] == value) {
        if (left < 0) left = x;
        right = x;
      }
    if (left < 0) continue;
    points.push_back({left, y});
    if (right != left) points.push_back({right, y});
  }
  std::sort(points.begin(), points.end());
  if (points.size() < 3) return points;
  auto cross = [](const auto& o, const auto& a, const auto& b) {
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);
  };
  std::vector<std::array<int64_t, 2>> hull(2 * points.size());
  size_t k = 0;
  for (size_t i = 0; i < points.size(); ++i) {  // lower chain
    while (k >= 2 && cross(hull[k - 2], hull[k - 1], points[i]) <= 0) --k;
    hull[k++] = points[i];
  }
  for (size_t i = points.size() - 1, lower = k + 1; i-- > 0;) {  // upper chain
    while (k >= lower && cross(hull[k - 2], hull[k - 1], points[i]) <= 0) --k;
    hull[k++] = points[i];
  }
  hull.resize(k - 1);  // the last point is the first
  return hull;
}

}  // namespace

at::Tensor keep_largest_component(const at::Tensor& labels, const ClassTable& classes,
                                  const NextLikeliest& next_likeliest) {
  at::Tensor out = to_byte_batch(labels, "keep_largest_component");
  const int64_t batch = out.size(0), height = out.size(1), width = out.size(2);
  // Channel of each label value (-1: not in the class table).
  std::array<int, 256> channel_of;
  channel_of.fill(-1);
  for (size_t k = 0; k < classes.entries.size(); ++k) {
    const int v = classes.entries[k].second;
    if (v >= 0 && v < 256) channel_of[static_cast<size_t>(v)] = static_cast<int>(k);
  }
  const int64_t plane = height * width;
  for (int64_t b = 0; b < batch; ++b) {
    uint8_t* map = out.data_ptr<uint8_t>() + b * plane;
    if (!next_likeliest) {
      drop_to_background(map, height, width);
      continue;
    }
    const auto runs = runs_of(map, height, width);
    const auto stray = stray_runs(runs);
    for (size_t r : stray) {
      const auto& run = runs.runs[r];
      const int dropped = channel_of[run.value];
      const int64_t first = row_of(runs, r) * width;
      for (int64_t i = first + run.start; i < first + run.end; ++i) {
        const int best = dropped < 0 ? -1 : next_likeliest(b, i, dropped);
        map[i] = best < 0 ? 0 : static_cast<uint8_t>(classes.entries[static_cast<size_t>(best)].second);
      }
    }
    if (!stray.empty()) drop_to_background(map, height, width);
  }
  if (labels.dim() == 2) out = out.squeeze(0);
  return out.to(labels.device());
}

at::Tensor keep_largest_component(const at::Tensor& labels, const ClassTable& classes,
                                  const at::Tensor& probabilities) {
  if (!probabilities.defined()) return keep_largest_component(labels, classes, NextLikeliest());
  if (labels.dim() != 2 && labels.dim() != 3)
    throw Error("keep_largest_component: expected an H x W or B x H x W label map");
  const int64_t batch = labels.dim() == 3 ? labels.size(0) : 1;
  auto probs = probabilities.to(torch::kCPU, torch::kFloat).contiguous();
  if (probs.dim() == 3) probs = probs.unsqueeze(0);
  if (probs.dim() != 4 || probs.size(0) != batch || probs.size(1) != classes.size() ||
      probs.size(2) != labels.size(-2) || probs.size(3) != labels.size(-1))
    throw Error("keep_largest_component: probabilities must be B x " + std::to_string(classes.size()) +
                " x H x W matching the label map");
  const int64_t plane = probs.size(2) * probs.size(3), channels = classes.size();
  const float* p = probs.data_ptr<float>();
  return keep_largest_component(labels, classes, [&](int64_t image, int64_t pixel, int dropped) {
    const float* at = p + image * channels * plane + pixel;
    int best = -1;
    for (int k = 0; k < static_cast<int>(channels); ++k)
      if (k != dropped && (best < 0 || at[k * plane] > at[best * plane])) best = k;
    return best;
  });
}

at::Tensor fill_holes(const at::Tensor& labels) {
  at::Tensor out = to_byte_batch(labels, "fill_holes");
  const int64_t batch = out.size(0), height = out.size(1), width = out.size(2);
  for (int64_t b = 0; b < batch; ++b) {
    uint8_t* map = out.data_ptr<uint8_t>() + b * height * width;
    const auto runs = runs_of(map, height, width);
    const size_t n = runs.runs.size();
    // The 4-connected background regions, as sets of runs; for each run whether it touches the
    // image border and the one value around it (-1: none yet, -2: several).
    DisjointSets regions(n);
    std::vector<uint8_t> border(n, 0);
    std::vector<int> surround(n, -1);
    auto meets = [&](size_t r, uint8_t value) {
      if (surround[r] == -1) surround[r] = value;
      else if (surround[r] != value) surround[r] = -2;
    };
    for (int64_t y = 0; y < height; ++y) {
      const size_t first = runs.row_begin[static_cast<size_t>(y)], end = runs.row_begin[static_cast<size_t>(y) + 1];
      for (size_t r = first; r < end; ++r) {
        const auto& run = runs.runs[r];
        if (run.value != 0) continue;
        border[r] = y == 0 || y == height - 1 || run.start == 0 || run.end == width;
        if (r > first) meets(r, runs.runs[r - 1].value);
        if (r + 1 < end) meets(r, runs.runs[r + 1].value);
      }
      if (y == 0) continue;
      for_each_neighbour_pair(runs.runs, runs.row_begin[static_cast<size_t>(y) - 1], first, first, end, false,
                              [&](size_t below, size_t above) {
                                const uint8_t a = runs.runs[above].value, c = runs.runs[below].value;
                                if (a == 0 && c == 0) regions.join(static_cast<uint32_t>(above), static_cast<uint32_t>(below));
                                else if (a == 0) meets(above, c);
                                else if (c == 0) meets(below, a);
                              });
    }
    // Gather each region's verdict at its root, then fill the enclosed ones.
    for (size_t r = 0; r < n; ++r) {
      if (runs.runs[r].value != 0) continue;
      const uint32_t root = regions.find(static_cast<uint32_t>(r));
      if (root == r) continue;
      border[root] = border[root] || border[r];
      if (surround[r] == -2) surround[root] = -2;
      else if (surround[r] >= 0) meets(root, static_cast<uint8_t>(surround[r]));
    }
    for (int64_t y = 0; y < height; ++y)
      for (size_t r = runs.row_begin[static_cast<size_t>(y)]; r < runs.row_begin[static_cast<size_t>(y) + 1]; ++r) {
        if (runs.runs[r].value != 0) continue;
        const uint32_t root = regions.find(static_cast<uint32_t>(r));
        if (!border[root] && surround[root] > 0)
          std::fill(map + y * width + runs.runs[r].start, map + y * width + runs.runs[r].end,
                    static_cast<uint8_t>(surround[root]));
      }
  }
  if (labels.dim() == 2) out = out.squeeze(0);
  return out.to(labels.device());
}

namespace {

// floor(a / b) for b > 0.
int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// The columns [first, last] of row y that lie inside the counter-clockwise convex `hull`
// (its edges count as inside); first > last when none.
std::pair<int64_t, int64_t> hull_row(const std::vector<std::array<int64_t, 2>>& hull, int64_t y, int64_t width) {
  int64_t first = 0, last = width - 1;
  for (size_t i = 0; i < hull.size() && first <= last; ++i) {
    const auto& a = hull[i];
    const auto& c = hull[(i + 1) % hull.size()];
    // Inside the edge a -> c: (c.x - a.x) (y - a.y) - (c.y - a.y) (x - a.x) >= 0.
    const int64_t k = (c[0] - a[0]) * (y - a[1]), dy = c[1] - a[1];
    if (dy == 0) {
      if (k < 0) return {1, 0};
    } else if (dy > 0) {
      last = std::min(last, a[0] + floor_div(k, dy));
    } else {
      first = std::max(first, a[0] - floor_div(k, -dy));
    }
  }
  return {first, last};
}

}  // namespace

at::Tensor restore_covered(const at::Tensor& labels, const std::vector<Overlap>& overlaps) {
  at::Tensor out = to_byte_batch(labels, "restore_covered");
  const int64_t batch = out.size(0), height = out.size(1), width = out.size(2);
  const at::Tensor input = out.clone();  // the hulls come from the labels as given
  for (int64_t b = 0; b < batch; ++b) {
    const uint8_t* given = input.data_ptr<uint8_t>() + b * height * width;
    uint8_t* map = out.data_ptr<uint8_t>() + b * height * width;
    for (const auto& overlap : overlaps) {
      const auto hull = convex_hull_of(given, height, width, overlap.under);
      if (hull.size() < 3) continue;
      for (int64_t y = 0; y < height; ++y) {
        const auto [first, last] = hull_row(hull, y, width);
        for (int64_t x = first; x <= last; ++x)
          if (given[y * width + x] == overlap.over) map[y * width + x] = static_cast<uint8_t>(overlap.under);
      }
    }
  }
  if (labels.dim() == 2) out = out.squeeze(0);
  return out.to(labels.device());
}

const std::vector<std::string>& postprocessing_steps() {
  static const std::vector<std::string> steps{"largest-component", "fill-holes"};
  return steps;
}

const std::vector<std::vector<std::string>>& postprocessing_candidates() {
  static const std::vector<std::vector<std::string>> candidates{
      {}, {"largest-component"}, {"fill-holes"}, {"largest-component", "fill-holes"}};
  return candidates;
}

std::string postprocessing_candidate_name(const std::vector<std::string>& steps) {
  std::string name;
  for (const auto& step : steps) name += (name.empty() ? "" : "+") + step;
  return name.empty() ? "none" : name;
}

void check_postprocessing_steps(const std::vector<std::string>& steps, const std::string& source) {
  const auto& known = postprocessing_steps();
  for (const auto& step : steps)
    if (std::find(known.begin(), known.end(), step) == known.end())
      throw Error(source, "unknown post-processing step \"" + step + "\"; known: largest-component, fill-holes");
}

at::Tensor postprocess(const at::Tensor& labels, const std::vector<std::string>& steps, const ClassTable& classes,
                       const NextLikeliest& next_likeliest) {
  check_postprocessing_steps(steps, "postprocess");
  const auto has = [&](const char* step) { return std::find(steps.begin(), steps.end(), step) != steps.end(); };
  at::Tensor out = labels.to(torch::kByte);
  if (has("largest-component")) out = keep_largest_component(out, classes, next_likeliest);
  if (has("fill-holes")) out = fill_holes(out);
  return out;
}

at::Tensor postprocess(const at::Tensor& labels, const std::vector<std::string>& steps, const ClassTable& classes,
                       const at::Tensor& probabilities) {
  check_postprocessing_steps(steps, "postprocess");
  const auto has = [&](const char* step) { return std::find(steps.begin(), steps.end(), step) != steps.end(); };
  at::Tensor out = labels.to(torch::kByte);
  if (has("largest-component")) out = keep_largest_component(out, classes, probabilities);
  if (has("fill-holes")) out = fill_holes(out);
  return out;
}

}  // namespace seg
