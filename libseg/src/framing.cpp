#include <seg/error.h>
#include <seg/framing.h>

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <tuple>
#include <utility>
#include <vector>

namespace seg {

bool Crop::operator==(const Crop& other) const {
  return top == other.top && bottom == other.bottom && left == other.left && right == other.right;
}

std::optional<Crop> structure_box(const at::Tensor& labels) {
  TORCH_CHECK(labels.dim() == 2, "structure_box: expected an H x W label map");
  const auto present = labels.ne(0);
  const auto rows = present.any(1).nonzero(), columns = present.any(0).nonzero();
  if (rows.numel() == 0) return std::nullopt;
  return Crop{rows.min().item<int64_t>(), rows.max().item<int64_t>() + 1, columns.min().item<int64_t>(),
              columns.max().item<int64_t>() + 1};
}

Framing measure_framing(const at::Tensor& labels, const std::string& source) {
  TORCH_CHECK(labels.dim() == 3, "measure_framing: expected N x H x W label maps");
  const auto maps = labels.cpu();
  const int64_t height = maps.size(1), width = maps.size(2);
  std::vector<double> top, bottom, left, right;
  for (int64_t i = 0; i < maps.size(0); ++i) {
    const auto box = structure_box(maps[i]);
    if (!box) continue;
    const auto h = static_cast<double>(box->height()), w = static_cast<double>(box->width());
    top.push_back(static_cast<double>(box->top) / h);
    bottom.push_back(static_cast<double>(height - box->bottom) / h);
    left.push_back(static_cast<double>(box->left) / w);
    right.push_back(static_cast<double>(width - box->right) / w);
  }
  if (top.empty()) throw Error(source, "no label map of its train split holds a structure (every pixel is 0); check that the label files are the data's and their values those of its class table (seg-inspect DATA)");
  auto median = [](std::vector<double> v) {
    const size_t mid = v.size() / 2;
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid), v.end());
    const double upper = v[mid];
    if (v.size() % 2 == 1) return upper;
    return 0.5 * (upper + *std::max_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid)));
  };
  return {median(top), median(bottom), median(left), median(right)};
}

Crop framed_crop(const Crop& box, const Framing& framing, int64_t height, int64_t width) {
  const auto h = static_cast<double>(box.height()), w = static_cast<double>(box.width());
  auto at = [](double v, int64_t limit) { return std::clamp<int64_t>(std::llround(v), 0, limit); };
  return {at(static_cast<double>(box.top) - framing.top * h, height),
          at(static_cast<double>(box.bottom) + framing.bottom * h, height),
          at(static_cast<double>(box.left) - framing.left * w, width),
          at(static_cast<double>(box.right) + framing.right * w, width)};
}

namespace {

// [first, first + length) grown to `target` (at most `limit`), evenly, then moved into [0, limit).
std::pair<int64_t, int64_t> grown(int64_t first, int64_t length, int64_t target, int64_t limit) {
  const int64_t size = std::min(std::max(length, target), limit);
  const int64_t start = std::clamp<int64_t>(first - (size - length) / 2, 0, limit - size);
  return {start, start + size};
}

}  // namespace

Crop grown_to_aspect(const Crop& crop, double aspect, int64_t height, int64_t width) {
  Crop out = crop;
  const auto rows = std::llround(static_cast<double>(crop.width()) * aspect);
  const auto columns = std::llround(static_cast<double>(crop.height()) / aspect);
  std::tie(out.top, out.bottom) = grown(crop.top, crop.height(), rows, height);
  std::tie(out.left, out.right) = grown(crop.left, crop.width(), columns, width);
  return out;
}

bool crop_holds_structures(const Crop& crop, const std::optional<Crop>& second, const Crop& first,
                           const Framing& framing, int64_t height, int64_t width) {
  if (!second) return false;
  const auto h = static_cast<double>(first.height()), w = static_cast<double>(first.width());
  auto clear = [](bool at_image_edge, int64_t gap, double margin) {
    return at_image_edge || static_cast<double>(gap) >= 0.5 * margin;
  };
  return clear(crop.top == 0, second->top, framing.top * h) &&
         clear(crop.bottom == height, crop.height() - second->bottom, framing.bottom * h) &&
         clear(crop.left == 0, second->left, framing.left * w) &&
         clear(crop.right == width, crop.width() - second->right, framing.right * w);
}

}  // namespace seg
