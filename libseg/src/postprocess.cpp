#include <seg/error.h>
#include <seg/postprocess.h>

#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <algorithm>
#include <vector>

namespace seg {
namespace {

constexpr std::array<std::array<int, 2>, 8> kNeighbours8{
    {{-1, -1}, {-1, 0}, {-1, 1}, {0, -1}, {0, 1}, {1, -1}, {1, 0}, {1, 1}}};
constexpr std::array<std::array<int, 2>, 4> kNeighbours4{{{-1, 0}, {0, -1}, {0, 1}, {1, 0}}};

// The pixels of every structure (value != 0) that lie outside its main piece.
// Pieces of a structure v are 8-connected through pixels of v itself or of structures with
// fewer pixels in this image: those drawn over v, as the clavicles over the lungs, split v
// without making its far side a stray piece. The main piece is the one with the most pixels
// of v (the first met in row-major order on ties).
std::vector<uint8_t> stray_pixels(const uint8_t* labels, int64_t height, int64_t width) {
  const int64_t plane = height * width;
  std::array<int64_t, 256> area{};
  for (int64_t p = 0; p < plane; ++p) ++area[labels[p]];
  std::vector<uint8_t> stray(static_cast<size_t>(plane), 0);
  std::vector<int32_t> component(static_cast<size_t>(plane));
  std::vector<int64_t> stack, own;  // own[c]: pixels of v in piece c
  for (int v = 1; v < 256; ++v) {
    if (area[static_cast<size_t>(v)] == 0) continue;
    auto joins = [&](uint8_t u) {
      return u == v || (u != 0 && area[u] < area[static_cast<size_t>(v)]);
    };
    std::fill(component.begin(), component.end(), -1);
    own.clear();
    for (int64_t start = 0; start < plane; ++start) {
      if (labels[start] != v || component[static_cast<size_t>(start)] >= 0) continue;
      const auto id = static_cast<int32_t>(own.size());
      int64_t count = 0;
      component[static_cast<size_t>(start)] = id;
      stack.push_back(start);
      while (!stack.empty()) {
        const int64_t p = stack.back();
        stack.pop_back();
        if (labels[p] == v) ++count;
        const int64_t y = p / width, x = p % width;
        for (const auto& d : kNeighbours8) {
          const int64_t ny = y + d[0], nx = x + d[1];
          if (ny < 0 || ny >= height || nx < 0 || nx >= width) continue;
          const int64_t q = ny * width + nx;
          if (component[static_cast<size_t>(q)] >= 0 || !joins(labels[q])) continue;
          component[static_cast<size_t>(q)] = id;
          stack.push_back(q);
        }
      }
      own.push_back(count);
    }
    if (own.size() < 2) continue;
    const auto main = static_cast<int32_t>(std::max_element(own.begin(), own.end()) - own.begin());
    for (int64_t p = 0; p < plane; ++p)
      if (labels[p] == v && component[static_cast<size_t>(p)] != main) stray[static_cast<size_t>(p)] = 1;
  }
  return stray;
}

// Sets every stray pixel to 0; returns how many changed.
int64_t drop_to_background(uint8_t* labels, int64_t height, int64_t width) {
  const auto stray = stray_pixels(labels, height, width);
  int64_t changed = 0;
  for (int64_t p = 0; p < height * width; ++p)
    if (stray[static_cast<size_t>(p)]) {
      labels[p] = 0;
      ++changed;
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
                                  const at::Tensor& probabilities) {
  at::Tensor out = to_byte_batch(labels, "keep_largest_component");
  const int64_t batch = out.size(0), height = out.size(1), width = out.size(2);
  at::Tensor probs;
  if (probabilities.defined()) {
    probs = probabilities.to(torch::kCPU, torch::kFloat).contiguous();
    if (probs.dim() == 3) probs = probs.unsqueeze(0);
    if (probs.dim() != 4 || probs.size(0) != batch || probs.size(1) != classes.size() ||
        probs.size(2) != height || probs.size(3) != width)
      throw Error("keep_largest_component: probabilities must be B x " + std::to_string(classes.size()) +
                  " x H x W matching the label map");
  }
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
    if (!probs.defined()) {
      drop_to_background(map, height, width);
      continue;
    }
    const float* p = probs.data_ptr<float>() + b * classes.size() * plane;
    const auto stray = stray_pixels(map, height, width);
    bool changed = false;
    for (int64_t i = 0; i < plane; ++i) {
      if (!stray[static_cast<size_t>(i)]) continue;
      const int dropped = channel_of[map[i]];
      uint8_t value = 0;
      if (dropped >= 0) {
        int best = -1;
        for (int k = 0; k < static_cast<int>(classes.size()); ++k)
          if (k != dropped && (best < 0 || p[k * plane + i] > p[best * plane + i])) best = k;
        if (best >= 0) value = static_cast<uint8_t>(classes.entries[static_cast<size_t>(best)].second);
      }
      map[i] = value;
      changed = true;
    }
    if (changed) drop_to_background(map, height, width);
  }
  if (labels.dim() == 2) out = out.squeeze(0);
  return out.to(labels.device());
}

at::Tensor fill_holes(const at::Tensor& labels) {
  at::Tensor out = to_byte_batch(labels, "fill_holes");
  const int64_t batch = out.size(0), height = out.size(1), width = out.size(2);
  const int64_t plane = height * width;
  std::vector<uint8_t> seen(static_cast<size_t>(plane));
  std::vector<int64_t> stack, region;
  for (int64_t b = 0; b < batch; ++b) {
    uint8_t* map = out.data_ptr<uint8_t>() + b * plane;
    std::fill(seen.begin(), seen.end(), 0);
    for (int64_t start = 0; start < plane; ++start) {
      if (map[start] != 0 || seen[static_cast<size_t>(start)]) continue;
      // One 4-connected background region: does it touch the border, and which values surround it?
      bool border = false;
      int surround = -1;  // the one value around it; -2 when several
      region.clear();
      seen[static_cast<size_t>(start)] = 1;
      stack.push_back(start);
      while (!stack.empty()) {
        const int64_t p = stack.back();
        stack.pop_back();
        region.push_back(p);
        const int64_t y = p / width, x = p % width;
        if (y == 0 || x == 0 || y == height - 1 || x == width - 1) border = true;
        for (const auto& d : kNeighbours4) {
          const int64_t ny = y + d[0], nx = x + d[1];
          if (ny < 0 || ny >= height || nx < 0 || nx >= width) continue;
          const int64_t q = ny * width + nx;
          if (map[q] != 0) {
            if (surround == -1) surround = map[q];
            else if (surround != map[q]) surround = -2;
          } else if (!seen[static_cast<size_t>(q)]) {
            seen[static_cast<size_t>(q)] = 1;
            stack.push_back(q);
          }
        }
      }
      if (!border && surround > 0)
        for (int64_t p : region) map[p] = static_cast<uint8_t>(surround);
    }
  }
  if (labels.dim() == 2) out = out.squeeze(0);
  return out.to(labels.device());
}

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
      auto inside = [&](int64_t x, int64_t y) {
        for (size_t i = 0; i < hull.size(); ++i) {
          const auto& a = hull[i];
          const auto& c = hull[(i + 1) % hull.size()];
          if ((c[0] - a[0]) * (y - a[1]) - (c[1] - a[1]) * (x - a[0]) < 0) return false;
        }
        return true;
      };
      for (int64_t y = 0; y < height; ++y)
        for (int64_t x = 0; x < width; ++x)
          if (given[y * width + x] == overlap.over && inside(x, y)) map[y * width + x] = static_cast<uint8_t>(overlap.under);
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
                       const at::Tensor& probabilities) {
  check_postprocessing_steps(steps, "postprocess");
  const auto has = [&](const char* step) { return std::find(steps.begin(), steps.end(), step) != steps.end(); };
  at::Tensor out = labels.to(torch::kByte);
  if (has("largest-component")) out = keep_largest_component(out, classes, probabilities);
  if (has("fill-holes")) out = fill_holes(out);
  return out;
}

}  // namespace seg
