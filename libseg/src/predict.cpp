#include <seg/error.h>
#include <seg/postprocess.h>
#include <seg/predict.h>

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <utility>
#include <vector>

namespace seg {
namespace F = torch::nn::functional;

at::Tensor normalize_images(const at::Tensor& raw, const Normalization& normalization) {
  at::Tensor x = raw.to(torch::kFloat);
  if (x.dim() == 3) x = x.unsqueeze(1);
  if (x.dim() != 4 || x.size(1) != 1) throw Error("normalize_images: expected B x H x W or B x 1 x H x W images");
  if (normalization.mode == "image") {
    // Percentile clipping keeps burnt-in text, markers and collimator edges from setting the scale.
    auto flat = x.flatten(1);
    auto q = torch::quantile(flat, torch::tensor({0.005, 0.995}, flat.options()), 1, true);  // 2 x B x 1
    auto clipped = torch::max(torch::min(flat, q[1]), q[0]);
    auto mean = clipped.mean(1, true);
    auto std = clipped.std(1, true, true).clamp_min(1e-6);
    return ((clipped - mean) / std).view_as(x);
  }
  return (x - normalization.mean) / normalization.std;
}

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

// One model on one batch: logits (no tta) or averaged probabilities (tta), B x C x H x W.
at::Tensor predict_one(const Model& model, const at::Tensor& raw_images, const at::Device& device,
                       const PredictOptions& options) {
  torch::NoGradGuard no_grad;
  model.net->to(device);
  model.net->eval();
  const int64_t height = raw_images.size(-2), width = raw_images.size(-1);
  const int64_t in_h = model.info.input_size.at(0), in_w = model.info.input_size.at(1);
  auto x = normalize_images(raw_images.to(device), model.info.normalization);
  const auto fit = options.pad ? fitted_size(height, width, in_h, in_w) : std::array<int64_t, 2>{in_h, in_w};
  const bool padded = fit[0] != in_h || fit[1] != in_w;
  x = resize_batch(x, fit[0], fit[1]);
  const int64_t top = (in_h - fit[0]) / 2, left = (in_w - fit[1]) / 2;
  if (padded) {
    // Edge replication continues the film's own borders (collimation, air, arms); a constant
    // draws a hard new edge. On JSRT test images cut to 256 x 180 it scored best: mean Dice
    // 0.840 (edge) against 0.827 (zero, the normalised mean) and 0.726 (the image's minimum).
    x = F::pad(x, F::PadFuncOptions({left, in_w - fit[1] - left, top, in_h - fit[0] - top}).mode(torch::kReplicate));
  }
  // The image's grid in the network input's normalised coordinates: x_in = cx_a * u + cx_b.
  const double cx_a = static_cast<double>(fit[1]) / static_cast<double>(in_w);
  const double cx_b = static_cast<double>(2 * left + fit[1]) / static_cast<double>(in_w) - 1.0;
  const double cy_a = static_cast<double>(fit[0]) / static_cast<double>(in_h);
  const double cy_b = static_cast<double>(2 * top + fit[0]) / static_cast<double>(in_h) - 1.0;
  const int64_t batch = x.size(0);
  if (!options.tta) {
    auto logits = model.net->forward(x);
    if (!padded) return upsample_logits(logits, height, width);
    return sample(logits, affine_theta(cx_a, cx_b, cy_a, cy_b, batch, logits.options()), height, width, torch::kBorder);
  }
  at::Tensor sum, weight;
  for (const auto& warp : tta_warps()) {
    const double s = warp.scale;
    const double dx = 2.0 * warp.dx / static_cast<double>(in_w), dy = 2.0 * warp.dy / static_cast<double>(in_h);
    // Warped input at p shows the input at q = (p - d) / s.
    auto warped = sample(x, affine_theta(1.0 / s, -dx / s, 1.0 / s, -dy / s, batch, x.options()), in_h, in_w,
                         torch::kBorder);
    auto logits = model.net->forward(warped);
    // Back: image point u -> input point q -> warped point p = s q + d.
    auto theta = affine_theta(s * cx_a, s * cx_b + dx, s * cy_a, s * cy_b + dy, batch, logits.options());
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

// The box of each image's structures (after keeping each one's largest piece) in probabilities
// B x C x H x W, looked for on every stride-th pixel, about the network's grid: a 4096-pixel
// film's largest pieces at full size would cost more than the network.
std::vector<std::optional<Crop>> structure_boxes(const at::Tensor& probs, const ModelInfo& info) {
  const int64_t h = probs.size(2), w = probs.size(3);
  const int64_t stride = std::max<int64_t>(1, std::min(h / info.input_size.at(0), w / info.input_size.at(1)));
  const auto found = keep_largest_component(
      logits_to_labels(probs.slice(2, 0, h, stride).slice(3, 0, w, stride), info.classes).cpu(), info.classes);
  std::vector<std::optional<Crop>> boxes;
  for (int64_t b = 0; b < found.size(0); ++b) {
    const auto box = structure_box(found[b]);
    if (box)
      boxes.push_back(Crop{box->top * stride, std::min(box->bottom * stride, h), box->left * stride,
                           std::min(box->right * stride, w)});
    else
      boxes.emplace_back();
  }
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
  if (models.empty()) throw UsageError("predict_probabilities: no model given");
  for (size_t m = 1; m < models.size(); ++m)
    if (models[m].info.classes.entries != models.front().info.classes.entries)
      throw Error("ensemble: model " + std::to_string(m + 1) +
                  " has another class table than model 1; ensemble only models trained on the same classes");
  const auto& framing = models.front().info.framing;
  if (options.reframe && !framing)
    throw Error("reframe: the model records no framing (written before 2026-12-05); add it with seg-convert "
                "MODEL -o OUT.pth --framing-from DATA");
  auto probs = ensemble_probabilities(models, raw_images, device, options);
  if (!options.reframe) return probs;
  const auto& info = models.front().info;
  const int64_t height = raw_images.size(-2), width = raw_images.size(-1);
  const auto in_h = static_cast<double>(info.input_size.at(0)), in_w = static_cast<double>(info.input_size.at(1));
  // How many times larger the network sees an image part than the whole image (pad mode).
  auto scale = [&](int64_t h, int64_t w) { return std::min(in_h / static_cast<double>(h), in_w / static_cast<double>(w)); };
  const auto first_boxes = structure_boxes(probs, info);
  for (int64_t b = 0; b < raw_images.size(0); ++b) {
    if (!first_boxes[b]) continue;
    const Crop& first_box = *first_boxes[b];
    const Crop crop = grown_to_aspect(framed_crop(first_box, *framing, height, width), in_h / in_w, height, width);
    const double magnification = scale(crop.height(), crop.width()) / scale(height, width);
    if (magnification < kReframeMagnification.first || magnification > kReframeMagnification.second) continue;
    const auto part = raw_images.narrow(0, b, 1).narrow(-2, crop.top, crop.height()).narrow(-1, crop.left, crop.width());
    const auto second = ensemble_probabilities(models, part.contiguous(), device, options);
    if (!crop_holds_structures(crop, structure_boxes(second, info).front(), first_box, *framing,
                               height, width))
      continue;
    probs.narrow(0, b, 1).narrow(2, crop.top, crop.height()).narrow(3, crop.left, crop.width()).copy_(second);
    if (reframed) ++*reframed;
  }
  return probs;
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
