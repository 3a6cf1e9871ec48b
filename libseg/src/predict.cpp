#include <seg/error.h>
#include <seg/film_prediction.h>
#include <seg/postprocess.h>
#include <seg/predict.h>

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <utility>
#include <vector>

namespace seg {
namespace F = torch::nn::functional;

namespace {

// What the "image" normalisation needs of one image: its 0.5 and 99.5 percentiles (linear
// interpolation between order statistics, worked out in float as torch::quantile does) and the
// mean and standard deviation (unbiased) of its pixels clipped to them.
struct ClipStatistics {
  float low, high, mean, std;
};

// The percentile q of n sorted values, given the k-th smallest of them.
template <typename KthSmallest>
float quantile(double q, int64_t n, KthSmallest kth) {
  const float rank = static_cast<float>(q) * static_cast<float>(n - 1);
  const auto below = static_cast<int64_t>(rank);
  const float weight = rank - static_cast<float>(below);
  const float a = kth(below), b = kth(std::min<int64_t>(below + 1, n - 1));
  return weight < 0.5f ? a + weight * (b - a) : b - (b - a) * (1.0f - weight);
}

constexpr double kLowPercentile = 0.005, kHighPercentile = 0.995;

// Integer images by a histogram over their range: exact order statistics in two passes
// instead of a sort.
std::optional<ClipStatistics> integer_clip_statistics(const at::Tensor& image) {
  const auto values = image.scalar_type() == at::kByte ? image.contiguous() : image.to(at::kInt).contiguous();
  const int64_t n = values.numel();
  auto count_with = [&](const auto* data) -> std::optional<ClipStatistics> {
    auto lo = data[0], hi = data[0];
    for (int64_t p = 1; p < n; ++p) {
      lo = std::min(lo, data[p]);
      hi = std::max(hi, data[p]);
    }
    const int64_t first = lo, bins = int64_t{hi} - first + 1;
    if (bins > (int64_t{1} << 24)) return std::nullopt;
    std::vector<uint32_t> counts(static_cast<size_t>(bins), 0);
    for (int64_t p = 0; p < n; ++p) ++counts[static_cast<size_t>(data[p] - first)];
    // The k-th smallest value, walking the histogram from the last answer (asked in order).
    int64_t bin = 0, before = 0;
    auto kth = [&](int64_t k) {
      if (k < before) bin = 0, before = 0;
      while (before + counts[static_cast<size_t>(bin)] <= k) before += counts[static_cast<size_t>(bin++)];
      return static_cast<float>(first + bin);
    };
    ClipStatistics s{};
    s.low = quantile(kLowPercentile, n, kth);
    s.high = quantile(kHighPercentile, n, kth);
    double sum = 0.0, squares = 0.0;
    for (int64_t b = 0; b < bins; ++b) {
      const double v = std::clamp(static_cast<double>(first + b), static_cast<double>(s.low), static_cast<double>(s.high));
      sum += static_cast<double>(counts[static_cast<size_t>(b)]) * v;
    }
    const double mean = sum / static_cast<double>(n);
    for (int64_t b = 0; b < bins; ++b) {
      const double v = std::clamp(static_cast<double>(first + b), static_cast<double>(s.low), static_cast<double>(s.high));
      squares += static_cast<double>(counts[static_cast<size_t>(b)]) * (v - mean) * (v - mean);
    }
    s.mean = static_cast<float>(mean);
    s.std = static_cast<float>(n > 1 ? std::sqrt(squares / static_cast<double>(n - 1)) : 0.0);
    return s;
  };
  if (values.scalar_type() == at::kByte) return count_with(values.data_ptr<uint8_t>());
  return count_with(values.data_ptr<int32_t>());
}

// Any image: order statistics by selection.
ClipStatistics float_clip_statistics(const at::Tensor& image) {
  const auto values = image.to(at::kFloat).contiguous();
  const int64_t n = values.numel();
  std::vector<float> order(values.data_ptr<float>(), values.data_ptr<float>() + n);
  auto kth = [&](int64_t k) {
    std::nth_element(order.begin(), order.begin() + k, order.end());
    return order[static_cast<size_t>(k)];
  };
  ClipStatistics s{};
  s.low = quantile(kLowPercentile, n, kth);
  s.high = quantile(kHighPercentile, n, kth);
  double sum = 0.0, squares = 0.0;
  const float* data = values.data_ptr<float>();
  for (int64_t p = 0; p < n; ++p) sum += std::clamp(data[p], s.low, s.high);
  const double mean = sum / static_cast<double>(n);
  for (int64_t p = 0; p < n; ++p) {
    const double d = static_cast<double>(std::clamp(data[p], s.low, s.high)) - mean;
    squares += d * d;
  }
  s.mean = static_cast<float>(mean);
  s.std = static_cast<float>(n > 1 ? std::sqrt(squares / static_cast<double>(n - 1)) : 0.0);
  return s;
}

}  // namespace

namespace {

// The "image" normalisation of one image (any shape, on the CPU): the clip bounds and the
// clipped pixels' mean and standard deviation.
ClipStatistics clip_statistics(const at::Tensor& image) {
  const bool integral = !image.is_floating_point() && !image.is_complex() && image.scalar_type() != at::kBool;
  std::optional<ClipStatistics> s;
  if (integral) s = integer_clip_statistics(image);
  return s ? *s : float_clip_statistics(image);
}

}  // namespace

at::Tensor normalize_images(const at::Tensor& raw, const Normalization& normalization) {
  if (raw.dim() != 3 && !(raw.dim() == 4 && raw.size(1) == 1))
    throw Error("normalize_images: expected B x H x W or B x 1 x H x W images");
  if (normalization.mode != "image") {
    at::Tensor x = raw.to(torch::kFloat);
    if (x.dim() == 3) x = x.unsqueeze(1);
    return (x - normalization.mean) / normalization.std;
  }
  // Percentile clipping keeps burnt-in text, markers and collimator edges from setting the scale.
  const auto images = raw.reshape({raw.size(0), -1});
  const auto cpu = images.cpu();
  auto out = torch::empty(images.sizes(), images.options().dtype(torch::kFloat));
  for (int64_t b = 0; b < images.size(0); ++b) {
    const auto s = clip_statistics(cpu[b]);
    out[b].copy_(images[b]).clamp_(s.low, s.high).sub_(s.mean).div_(std::max(s.std, 1e-6f));
  }
  return out.view({raw.size(0), 1, raw.size(-2), raw.size(-1)});
}

namespace {

// Area averaging (as resize_batch's, adaptive average pooling) of one H x W image of type T
// clipped to [low, high], to height x width: one pass over the image.
template <typename T>
at::Tensor clipped_area_average(const T* pixels, int64_t in_h, int64_t in_w, float low, float high, int64_t height,
                                int64_t width) {
  auto out = torch::empty({height, width}, torch::kFloat);
  float* o = out.data_ptr<float>();
  std::vector<int64_t> column_start(static_cast<size_t>(width)), column_end(static_cast<size_t>(width));
  for (int64_t j = 0; j < width; ++j) {
    column_start[static_cast<size_t>(j)] = j * in_w / width;
    column_end[static_cast<size_t>(j)] = ((j + 1) * in_w + width - 1) / width;
  }
  std::vector<float> sums(static_cast<size_t>(width)), clipped(static_cast<size_t>(in_w));
  for (int64_t i = 0; i < height; ++i) {
    const int64_t row_start = i * in_h / height, row_end = ((i + 1) * in_h + height - 1) / height;
    std::fill(sums.begin(), sums.end(), 0.0f);
    for (int64_t y = row_start; y < row_end; ++y) {
      const T* row = pixels + y * in_w;
      for (int64_t x = 0; x < in_w; ++x) clipped[static_cast<size_t>(x)] = std::clamp(static_cast<float>(row[x]), low, high);
      for (int64_t j = 0; j < width; ++j) {
        float sum = 0.0f;
        for (int64_t x = column_start[static_cast<size_t>(j)]; x < column_end[static_cast<size_t>(j)]; ++x)
          sum += clipped[static_cast<size_t>(x)];
        sums[static_cast<size_t>(j)] += sum;
      }
    }
    for (int64_t j = 0; j < width; ++j)
      o[i * width + j] = sums[static_cast<size_t>(j)] /
                         static_cast<float>((row_end - row_start) *
                                            (column_end[static_cast<size_t>(j)] - column_start[static_cast<size_t>(j)]));
  }
  return out;
}

// One image (H x W, any numeric type) normalised and resampled to height x width, as
// resize_batch(normalize_images(image), height, width), on `device`. Shrinking a CPU image
// (a film at the detector's size to the network's input) takes one pass over it for the
// statistics and one for the averaging, without the image in float at full size.
at::Tensor normalized_and_resized(const at::Tensor& image, const Normalization& normalization, int64_t height,
                                  int64_t width, const at::Device& device) {
  const int64_t in_h = image.size(0), in_w = image.size(1);
  const bool shrinking = in_h >= height && in_w >= width && (in_h != height || in_w != width);
  if (!shrinking || !image.device().is_cpu())
    return resize_batch(normalize_images(image.unsqueeze(0).to(device), normalization), height, width);
  float low = -std::numeric_limits<float>::infinity(), high = std::numeric_limits<float>::infinity();
  float mean = static_cast<float>(normalization.mean), std = static_cast<float>(normalization.std);
  if (normalization.mode == "image") {
    const auto s = clip_statistics(image);
    low = s.low, high = s.high, mean = s.mean, std = std::max(s.std, 1e-6f);
  }
  at::Tensor averaged;
  if (image.scalar_type() == at::kByte) {
    const auto c = image.contiguous();
    averaged = clipped_area_average(c.data_ptr<uint8_t>(), in_h, in_w, low, high, height, width);
  } else if (image.scalar_type() == at::kInt) {
    const auto c = image.contiguous();
    averaged = clipped_area_average(c.data_ptr<int32_t>(), in_h, in_w, low, high, height, width);
  } else {
    const auto c = image.to(at::kFloat).contiguous();
    averaged = clipped_area_average(c.data_ptr<float>(), in_h, in_w, low, high, height, width);
  }
  return averaged.sub_(mean).div_(std).view({1, 1, height, width}).to(device);
}

}  // namespace

at::Tensor resize_batch(const at::Tensor& images, int64_t height, int64_t width) {
  if (images.size(2) == height && images.size(3) == width) return images;
  auto options = F::InterpolateFuncOptions().size(std::vector<int64_t>{height, width});
  if (images.size(2) >= height && images.size(3) >= width)
    return F::interpolate(images, options.mode(torch::kArea));
  return F::interpolate(images, options.mode(torch::kBilinear).align_corners(false));
}

at::Tensor upsample_logits(const at::Tensor& logits, int64_t height, int64_t width) {
  if (logits.size(2) == height && logits.size(3) == width) return logits;
  return F::interpolate(logits, F::InterpolateFuncOptions()
                                    .size(std::vector<int64_t>{height, width})
                                    .mode(torch::kBilinear)
                                    .align_corners(false));
}

at::Tensor logits_to_labels(const at::Tensor& logits, const ClassTable& classes) {
  auto channel = logits.argmax(1);
  std::vector<int64_t> values;
  bool identity = true;
  for (size_t k = 0; k < classes.entries.size(); ++k) {
    values.push_back(classes.entries[k].second);
    identity = identity && classes.entries[k].second == static_cast<int>(k);
  }
  if (identity) return channel.to(torch::kByte);
  auto lut = torch::tensor(values, torch::kLong).to(logits.device());
  return lut.index_select(0, channel.flatten()).view_as(channel).to(torch::kByte);
}

const std::vector<TtaWarp>& tta_warps() {
  static const std::vector<TtaWarp> warps{{1.0, 0.0, 0.0},  {0.9, 0.0, 0.0},  {1.1, 0.0, 0.0}, {1.0, -2.0, 0.0},
                                          {1.0, 2.0, 0.0},  {1.0, 0.0, -2.0}, {1.0, 0.0, 2.0}};
  return warps;
}

std::array<int64_t, 2> fitted_size(int64_t height, int64_t width, int64_t input_height, int64_t input_width) {
  const double scale = std::min(static_cast<double>(input_height) / static_cast<double>(height),
                                static_cast<double>(input_width) / static_cast<double>(width));
  auto side = [&](int64_t n, int64_t limit) {
    return std::clamp<int64_t>(std::llround(static_cast<double>(n) * scale), 1, limit);
  };
  return {side(height, input_height), side(width, input_width)};
}

namespace {

// A batch of 2 x 3 affine matrices for affine_grid: x_src = ax * x + bx, y_src = ay * y + by
// in normalised coordinates (align_corners = false).
at::Tensor affine_theta(double ax, double bx, double ay, double by, int64_t batch, const at::TensorOptions& options) {
  return torch::tensor({ax, 0.0, bx, 0.0, ay, by}, options.dtype(torch::kFloat)).view({1, 2, 3}).expand({batch, 2, 3});
}

at::Tensor sample(const at::Tensor& input, const at::Tensor& theta, int64_t height, int64_t width,
                  torch::nn::functional::GridSampleFuncOptions::padding_mode_t padding) {
  auto grid = F::affine_grid(theta, {input.size(0), input.size(1), height, width}, false);
  return F::grid_sample(input, grid,
                        F::GridSampleFuncOptions().mode(torch::kBilinear).padding_mode(padding).align_corners(false));
}

// A batch of images of one size as a model's network input (B x 1 x in_h x in_w: normalised,
// resampled, padded as PredictOptions says), and where the images' grid lies in it: image
// point u (normalised, align_corners = false) at x_in = cx_a * u + cx_b, y likewise.
struct NetworkInput {
  at::Tensor x;
  double cx_a = 1.0, cx_b = 0.0, cy_a = 1.0, cy_b = 0.0;
  bool padded = false;
};

NetworkInput network_input(const Model& model, const at::Tensor& raw_images, const at::Device& device,
                           const PredictOptions& options) {
  const int64_t height = raw_images.size(-2), width = raw_images.size(-1);
  const int64_t in_h = model.info.input_size.at(0), in_w = model.info.input_size.at(1);
  NetworkInput in;
  const auto fit = options.pad ? fitted_size(height, width, in_h, in_w) : std::array<int64_t, 2>{in_h, in_w};
  in.padded = fit[0] != in_h || fit[1] != in_w;
  const auto images = raw_images.dim() == 4 ? raw_images.squeeze(1) : raw_images;
  std::vector<at::Tensor> resized;
  for (int64_t b = 0; b < images.size(0); ++b)
    resized.push_back(normalized_and_resized(images[b], model.info.normalization, fit[0], fit[1], device));
  in.x = torch::cat(resized);
  const int64_t top = (in_h - fit[0]) / 2, left = (in_w - fit[1]) / 2;
  if (in.padded) {
    // Edge replication continues the film's own borders (collimation, air, arms); a constant
    // draws a hard new edge. On JSRT test images cut to 256 x 180 it scored best: mean Dice
    // 0.840 (edge) against 0.827 (zero, the normalised mean) and 0.726 (the image's minimum).
    in.x = F::pad(in.x, F::PadFuncOptions({left, in_w - fit[1] - left, top, in_h - fit[0] - top}).mode(torch::kReplicate));
  }
  in.cx_a = static_cast<double>(fit[1]) / static_cast<double>(in_w);
  in.cx_b = static_cast<double>(2 * left + fit[1]) / static_cast<double>(in_w) - 1.0;
  in.cy_a = static_cast<double>(fit[0]) / static_cast<double>(in_h);
  in.cy_b = static_cast<double>(2 * top + fit[0]) / static_cast<double>(in_h) - 1.0;
  return in;
}

// Warp `warp` of the test-time warps in the network input's normalised coordinates: the warped
// input at p shows the input at q = (p - d) / s.
std::array<double, 3> warp_in_input(const TtaWarp& warp, const Model& model) {
  return {warp.scale, 2.0 * warp.dx / static_cast<double>(model.info.input_size.at(1)),
          2.0 * warp.dy / static_cast<double>(model.info.input_size.at(0))};
}

// One model on one batch: logits (no tta) or averaged probabilities (tta), B x C x H x W.
at::Tensor predict_one(const Model& model, const at::Tensor& raw_images, const at::Device& device,
                       const PredictOptions& options) {
  torch::NoGradGuard no_grad;
  model.net->to(device);
  model.net->eval();
  const int64_t height = raw_images.size(-2), width = raw_images.size(-1);
  const int64_t in_h = model.info.input_size.at(0), in_w = model.info.input_size.at(1);
  const auto in = network_input(model, raw_images, device, options);
  const auto& x = in.x;
  const int64_t batch = x.size(0);
  if (!options.tta) {
    auto logits = model.net->forward(x);
    if (!in.padded) return upsample_logits(logits, height, width);
    return sample(logits, affine_theta(in.cx_a, in.cx_b, in.cy_a, in.cy_b, batch, logits.options()), height, width,
                  torch::kBorder);
  }
  at::Tensor sum, weight;
  for (const auto& warp : tta_warps()) {
    const auto [s, dx, dy] = warp_in_input(warp, model);
    auto warped = sample(x, affine_theta(1.0 / s, -dx / s, 1.0 / s, -dy / s, batch, x.options()), in_h, in_w,
                         torch::kBorder);
    auto logits = model.net->forward(warped);
    // Back: image point u -> input point q -> warped point p = s q + d.
    auto theta = affine_theta(s * in.cx_a, s * in.cx_b + dx, s * in.cy_a, s * in.cy_b + dy, batch, logits.options());
    auto probs = torch::softmax(sample(logits, theta, height, width, torch::kBorder), 1);
    // How much of each image pixel this warp saw (0 outside its field of view).
    auto seen = sample(torch::ones({batch, 1, logits.size(2), logits.size(3)}, logits.options()), theta, height, width,
                       torch::kZeros);
    probs.mul_(seen);
    if (!sum.defined()) {
      sum = probs;
      weight = seen;
    } else {
      sum.add_(probs);
      weight.add_(seen);
    }
  }
  return sum.div_(weight.clamp_min(1e-6));
}

}  // namespace

at::Tensor predict_logits(const Model& model, const at::Tensor& raw_images, const at::Device& device,
                          const PredictOptions& options) {
  auto result = predict_one(model, raw_images, device, options);
  return options.tta ? result.clamp_min(1e-30).log() : result;
}

namespace {

// The second pass runs where it shows the structures at least 1.1 times larger than the first
// (below, on JSRT's own test films, it moved single cases either way and the split's mean not
// at all), and at most 8 times (beyond, what the first pass found is no chest but a speck).
constexpr std::pair<double, double> kReframeMagnification{1.1, 8.0};

// The structures of an image of height x width are looked for on every stride-th pixel, about
// the network's grid: a 4096-pixel film's largest pieces at full size would cost more than the
// network.
int64_t structure_stride(int64_t height, int64_t width, const ModelInfo& info) {
  return std::max<int64_t>(1, std::min(height / info.input_size.at(0), width / info.input_size.at(1)));
}

// The box of the structures in a label map taken on every stride-th pixel of an image of
// height x width (after keeping each structure's largest piece), in the image's pixels.
std::optional<Crop> structure_box_on_grid(const at::Tensor& labels, int64_t stride, int64_t height, int64_t width,
                                          const ClassTable& classes) {
  const auto box = structure_box(keep_largest_component(labels.cpu(), classes));
  if (!box) return std::nullopt;
  return Crop{box->top * stride, std::min(box->bottom * stride, height), box->left * stride,
              std::min(box->right * stride, width)};
}

// The part of an image of height x width that the second pass segments, given the first
// pass's box of its structures: framed as the model's training images and grown to its input's
// aspect ratio; nothing where that would magnify too little or too much.
std::optional<Crop> reframing_crop(const Crop& first_box, const ModelInfo& info, int64_t height, int64_t width) {
  const auto in_h = static_cast<double>(info.input_size.at(0)), in_w = static_cast<double>(info.input_size.at(1));
  // How many times larger the network sees an image part than the whole image (pad mode).
  auto scale = [&](int64_t h, int64_t w) { return std::min(in_h / static_cast<double>(h), in_w / static_cast<double>(w)); };
  const Crop crop = grown_to_aspect(framed_crop(first_box, *info.framing, height, width), in_h / in_w, height, width);
  const double magnification = scale(crop.height(), crop.width()) / scale(height, width);
  if (magnification < kReframeMagnification.first || magnification > kReframeMagnification.second) return std::nullopt;
  return crop;
}

void check_ensemble(const std::vector<Model>& models, const PredictOptions& options) {
  if (models.empty()) throw UsageError("predict: no model given");
  for (size_t m = 1; m < models.size(); ++m)
    if (models[m].info.classes.entries != models.front().info.classes.entries)
      throw Error("ensemble: model " + std::to_string(m + 1) +
                  " has another class table than model 1; ensemble only models trained on the same classes");
  if (options.reframe && !models.front().info.framing)
    throw Error("reframe: the model records no framing (written before 2026-12-05); add it with seg-convert "
                "MODEL -o OUT.pth --framing-from DATA");
}

// The boxes of each image's structures in probabilities B x C x H x W.
std::vector<std::optional<Crop>> structure_boxes(const at::Tensor& probs, const ModelInfo& info) {
  const int64_t h = probs.size(2), w = probs.size(3), stride = structure_stride(h, w, info);
  const auto found = logits_to_labels(probs.slice(2, 0, h, stride).slice(3, 0, w, stride), info.classes);
  std::vector<std::optional<Crop>> boxes;
  for (int64_t b = 0; b < found.size(0); ++b) boxes.push_back(structure_box_on_grid(found[b], stride, h, w, info.classes));
  return boxes;
}

at::Tensor ensemble_probabilities(const std::vector<Model>& models, const at::Tensor& raw_images,
                                  const at::Device& device, const PredictOptions& options) {
  at::Tensor sum;
  for (size_t m = 0; m < models.size(); ++m) {
    auto result = predict_one(models[m], raw_images, device, options);
    if (!options.tta) result = torch::softmax(result, 1);
    if (!sum.defined()) sum = result;
    else sum.add_(result);
  }
  if (models.size() > 1) sum.div_(static_cast<double>(models.size()));
  return sum;
}

}  // namespace

at::Tensor predict_probabilities(const std::vector<Model>& models, const at::Tensor& raw_images,
                                 const at::Device& device, const PredictOptions& options, int64_t* reframed) {
  check_ensemble(models, options);
  auto probs = ensemble_probabilities(models, raw_images, device, options);
  if (!options.reframe) return probs;
  const auto& info = models.front().info;
  const int64_t height = raw_images.size(-2), width = raw_images.size(-1);
  const auto first_boxes = structure_boxes(probs, info);
  for (int64_t b = 0; b < raw_images.size(0); ++b) {
    if (!first_boxes[b]) continue;
    const auto crop = reframing_crop(*first_boxes[b], info, height, width);
    if (!crop) continue;
    const auto part = raw_images.narrow(0, b, 1).narrow(-2, crop->top, crop->height()).narrow(-1, crop->left, crop->width());
    const auto second = ensemble_probabilities(models, part.contiguous(), device, options);
    if (!crop_holds_structures(*crop, structure_boxes(second, info).front(), *first_boxes[b], *info.framing, height, width))
      continue;
    probs.narrow(0, b, 1).narrow(2, crop->top, crop->height()).narrow(3, crop->left, crop->width()).copy_(second);
    if (reframed) ++*reframed;
  }
  return probs;
}

namespace {

// Where one axis of an image of `size` pixels falls on a network output of `grid` pixels when
// image point u (normalised) lies at a * u + b in the output's normalised coordinates.
AxisMap axis_map(double a, double b, int64_t size, int64_t grid) {
  const auto n = static_cast<double>(size), g = static_cast<double>(grid);
  return {a * g / n, ((a * (1.0 / n - 1.0) + b + 1.0) * g - 1.0) / 2.0};
}

// On the CPU the network sees one film at a time: no slower than a batch there (the
// convolutions parallelise within an image) and its activations stay one film's, whatever the
// batch; on a GPU the batch goes through in one pass.
at::Tensor forward_each(const Model& model, const at::Tensor& x) {
  if (!x.is_cpu() || x.size(0) <= 1) return model.net->forward(x);
  std::vector<at::Tensor> outputs;
  for (int64_t i = 0; i < x.size(0); ++i) outputs.push_back(model.net->forward(x.narrow(0, i, 1)));
  return torch::cat(outputs);
}

// Every model's outputs over every film, one forward pass per model (and warp) for all films.
std::vector<FilmPrediction> predict_once(const std::vector<Model>& models, const std::vector<at::Tensor>& films,
                                         const at::Device& device, const PredictOptions& options) {
  torch::NoGradGuard no_grad;
  std::vector<std::vector<PredictionTerm>> terms(films.size());
  for (size_t m = 0; m < models.size(); ++m) {
    const Model& model = models[m];
    std::vector<NetworkInput> inputs;
    std::vector<at::Tensor> batch;
    for (const auto& film : films) {
      inputs.push_back(network_input(model, film.unsqueeze(0), device, options));
      batch.push_back(inputs.back().x);
      inputs.back().x = at::Tensor();
    }
    const auto x = torch::cat(batch);
    batch.clear();
    // The outputs of one forward pass: film i's image point u lies at (s * c_a + ...) on them.
    auto add_terms = [&](const at::Tensor& logits, double s, double dx, double dy) {
      const auto on_cpu = logits.to(torch::kCPU, torch::kFloat);
      for (size_t i = 0; i < films.size(); ++i) {
        const auto& in = inputs[i];
        terms[i].push_back({on_cpu[static_cast<int64_t>(i)].contiguous(),
                            axis_map(s * in.cy_a, s * in.cy_b + dy, films[i].size(-2), logits.size(2)),
                            axis_map(s * in.cx_a, s * in.cx_b + dx, films[i].size(-1), logits.size(3)),
                            static_cast<int>(m)});
      }
    };
    if (!options.tta) {
      add_terms(forward_each(model, x), 1.0, 0.0, 0.0);
      continue;
    }
    const int64_t in_h = model.info.input_size.at(0), in_w = model.info.input_size.at(1);
    for (const auto& warp : tta_warps()) {
      const auto [s, dx, dy] = warp_in_input(warp, model);
      const auto warped = sample(x, affine_theta(1.0 / s, -dx / s, 1.0 / s, -dy / s, x.size(0), x.options()), in_h, in_w,
                                 torch::kBorder);
      add_terms(forward_each(model, warped), s, dx, dy);
    }
  }
  std::vector<FilmPrediction> predictions;
  for (size_t i = 0; i < films.size(); ++i)
    predictions.emplace_back(films[i].size(-2), films[i].size(-1), models.front().info.classes, std::move(terms[i]),
                             static_cast<int>(models.size()), options.tta);
  return predictions;
}

// The box of the structures of a film's prediction (see structure_boxes).
std::optional<Crop> structure_box_of(const FilmPrediction& prediction, const ModelInfo& info) {
  const int64_t h = prediction.height(), w = prediction.width(), stride = structure_stride(h, w, info);
  auto grid = [&](int64_t n) {
    std::vector<int64_t> positions;
    for (int64_t i = 0; i < n; i += stride) positions.push_back(i);
    return positions;
  };
  return structure_box_on_grid(prediction.labels_at(grid(h), grid(w)), stride, h, w, info.classes);
}

}  // namespace

std::vector<FilmPrediction> predict_films(const std::vector<Model>& models, const std::vector<at::Tensor>& films,
                                          const at::Device& device, const PredictOptions& options) {
  check_ensemble(models, options);
  for (const auto& film : films)
    if (film.dim() != 2 || film.numel() == 0) throw Error("predict_films: each film must be a non-empty H x W image");
  if (films.empty()) return {};
  auto predictions = predict_once(models, films, device, options);
  if (!options.reframe) return predictions;
  const auto& info = models.front().info;
  std::vector<size_t> reframing;
  std::vector<Crop> first_boxes, crops;
  std::vector<at::Tensor> parts;
  for (size_t i = 0; i < films.size(); ++i) {
    const auto box = structure_box_of(predictions[i], info);
    if (!box) continue;
    const auto crop = reframing_crop(*box, info, films[i].size(0), films[i].size(1));
    if (!crop) continue;
    reframing.push_back(i);
    first_boxes.push_back(*box);
    crops.push_back(*crop);
    parts.push_back(films[i].narrow(0, crop->top, crop->height()).narrow(1, crop->left, crop->width()).contiguous());
  }
  if (parts.empty()) return predictions;
  PredictOptions once = options;
  once.reframe = false;
  auto seconds = predict_once(models, parts, device, once);
  for (size_t k = 0; k < reframing.size(); ++k) {
    auto& first = predictions[reframing[k]];
    if (crop_holds_structures(crops[k], structure_box_of(seconds[k], info), first_boxes[k], *info.framing,
                              first.height(), first.width()))
      first.replace(crops[k], std::move(seconds[k]));
  }
  return predictions;
}

at::Device parse_device(const std::string& name) {
  if (name == "auto") return torch::cuda::is_available() ? at::Device(torch::kCUDA) : at::Device(torch::kCPU);
  if (name == "cpu") return at::Device(torch::kCPU);
  if (name.rfind("cuda", 0) == 0) {
    if (!torch::cuda::is_available())
      throw UsageError("--device " + name + ": no CUDA device is available here (use --device cpu)");
    try {
      return at::Device(name);
    } catch (const std::exception&) {
      throw UsageError("--device " + name + ": not a device name (cpu, cuda, cuda:N, auto)");
    }
  }
  throw UsageError("--device " + name + ": not a device name (cpu, cuda, cuda:N, auto)");
}

}  // namespace seg
