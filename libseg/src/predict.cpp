#include <seg/error.h>
#include <seg/predict.h>

#include <torch/torch.h>

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

at::Tensor predict_logits(const Model& model, const at::Tensor& raw_images, const at::Device& device) {
  torch::NoGradGuard no_grad;
  model.net->to(device);
  model.net->eval();
  const int64_t height = raw_images.size(-2), width = raw_images.size(-1);
  auto x = normalize_images(raw_images.to(device), model.info.normalization);
  x = resize_batch(x, model.info.input_size[0], model.info.input_size[1]);
  auto logits = model.net->forward(x);
  return upsample_logits(logits, height, width);
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
