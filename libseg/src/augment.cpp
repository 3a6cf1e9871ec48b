// What the augmentations share: the one generator, uploads of CPU draws, the warp that
// samples images and labels, and per-sample Gaussian blurs.
#include <seg/augment.h>
#include <seg/error.h>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace seg {
namespace {
// at::grid_sampler's interpolation and padding codes.
constexpr int64_t kBilinear = 0, kNearest = 1, kZerosPadding = 0, kBorderPadding = 1;
constexpr bool kAlignCorners = false;  // F.affine_grid / F.grid_sample defaults

// F.affine_grid(theta, (B, C, H, W), align_corners=False) in double precision, computed by
// broadcasting (a double batched matmul is several times slower on the CPU):
// grid[b, i, j] = theta[b] @ (x_j, y_i, 1) with pixel centres x_j = (2j + 1) / W - 1.
at::Tensor affine_grid_double(const at::Tensor& theta, int64_t height, int64_t width) {
  const auto t = theta.to(at::kDouble);
  const auto opts = t.options();
  const auto xs = ((at::arange(width, opts) * 2 + (1 - width)) / width).view({1, 1, width});
  const auto ys = ((at::arange(height, opts) * 2 + (1 - height)) / height).view({1, height, 1});
  auto row = [&](int64_t r) {
    auto coefficient = [&](int64_t c) { return t.select(1, r).select(1, c).view({-1, 1, 1}); };
    return coefficient(0) * xs + coefficient(1) * ys + coefficient(2);
  };
  return at::stack({row(0), row(1)}, -1);  // B x H x W x 2, (x, y) as grid_sample takes it
}
}  // namespace

at::Generator make_seeded_generator(uint64_t seed) {
  return at::make_generator<at::CPUGeneratorImpl>(seed);
}

at::Tensor upload(const at::Tensor& host, const at::Device& device, std::optional<at::ScalarType> dtype) {
  const at::Tensor converted = dtype ? host.to(*dtype) : host;
  if (!device.is_cuda() || !converted.device().is_cpu()) return converted.to(device);
  return converted.pin_memory().to(device, /*non_blocking=*/true);
}


std::pair<at::Tensor, at::Tensor> apply_affine(const at::Tensor& images, const at::Tensor& labels,
                                               const at::Tensor& theta, const at::Tensor& displacement,
                                               Padding padding) {
  if (!images.defined() || images.dim() != 4)
    throw Error("apply_affine", "images must be B x C x H x W");
  if (!at::isFloatingType(images.scalar_type()))
    throw Error("apply_affine", "images must be floating point (convert before augmenting)");
  const int64_t batch = images.size(0), height = images.size(2), width = images.size(3);
  if (theta.dim() != 3 || theta.size(0) != batch || theta.size(1) != 2 || theta.size(2) != 3)
    throw Error("apply_affine", "theta must be " + std::to_string(batch) + " x 2 x 3, got " +
                                    c10::str(theta.sizes()));
  if (labels.defined() &&
      (labels.dim() != 3 || labels.size(0) != batch || labels.size(1) != height ||
       labels.size(2) != width))
    throw Error("apply_affine", "labels must be B x H x W matching the images, got " +
                                    c10::str(labels.sizes()));
  if (labels.defined() && at::isFloatingType(labels.scalar_type()))
    throw Error("apply_affine", "labels must be an integer tensor");
  // Sampling positions in double precision: in float, the identity lands up to 1e-5 pixel
  // off the pixel centres and blurs the image by that much; in double it returns the input.
  if (displacement.defined() &&
      (displacement.dim() != 4 || displacement.size(0) != batch || displacement.size(1) != height ||
       displacement.size(2) != width || displacement.size(3) != 2))
    throw Error("apply_affine", "displacement must be B x H x W x 2 matching the images, got " +
                                    c10::str(displacement.sizes()));
  auto grid = affine_grid_double(upload(theta, images.device()), height, width);
  if (displacement.defined()) grid = grid + displacement.to(grid.device(), at::kDouble);
  auto source = images.to(at::kDouble);
  // Zero padding about each image's minimum pads with that minimum.
  const auto floor = padding == Padding::minimum ? source.amin({1, 2, 3}, true) : at::Tensor();
  if (floor.defined()) source = source - floor;
  auto warped_images = at::grid_sampler(source, grid, kBilinear, padding == Padding::border ? kBorderPadding : kZerosPadding,
                                        kAlignCorners);
  if (floor.defined()) warped_images = warped_images + floor;
  warped_images = warped_images.to(images.scalar_type());
  at::Tensor warped_labels;
  if (labels.defined()) {
    // Nearest sampling copies values, so float holds every label (< 2^24) exactly, and a float
    // grid is precise enough to pick the nearest pixel.
    auto as_float = labels.unsqueeze(1).to(at::kFloat);
    warped_labels = at::grid_sampler(as_float, grid.to(at::kFloat), kNearest, kZerosPadding,
                                     kAlignCorners)
                        .squeeze(1)
                        .to(labels.scalar_type());
  }
  return {warped_images, warped_labels};
}

at::Tensor gaussian_blur(const at::Tensor& images, const at::Tensor& sigmas) {
  namespace F = torch::nn::functional;
  if (!images.defined() || images.dim() != 4) throw Error("gaussian_blur", "images must be B x C x H x W");
  const int64_t batch = images.size(0), channels = images.size(1), height = images.size(2), width = images.size(3);
  if (sigmas.device().type() != at::kCPU || sigmas.numel() != batch)
    throw Error("gaussian_blur", "sigmas must be one per image, on the CPU");
  // The radius is read on the CPU: no device sync. Reflection needs it narrower than the image.
  const int64_t radius = std::min<int64_t>({static_cast<int64_t>(std::ceil(3.0 * sigmas.max().item<double>())),
                                            height - 1, width - 1});
  const auto sigma = upload(sigmas, images.device(), images.scalar_type()).view({batch, 1}).clamp_min(1e-3);
  if (radius < 1) return images;
  const auto offsets = torch::arange(-radius, radius + 1, images.options()).view({1, -1});
  // Each kernel ends at 3 of its own sigmas, whatever the batch's largest: a sample is
  // blurred the same in any batch (N ranks, each with a slice, equal one process).
  auto kernel = torch::exp(-0.5 * (offsets / sigma).pow(2)) * (offsets.abs() <= (3.0 * sigma).ceil());
  kernel = (kernel / kernel.sum(1, true)).repeat_interleave(channels, 0);  // (B C) x K
  const int64_t taps = 2 * radius + 1, groups = batch * channels;
  // One group per image and channel: each sample convolved with its own kernel in one call.
  auto x = F::pad(images.reshape({1, groups, height, width}),
                  F::PadFuncOptions({radius, radius, radius, radius}).mode(torch::kReflect));
  x = F::conv2d(x, kernel.view({groups, 1, 1, taps}), F::Conv2dFuncOptions().groups(groups));
  x = F::conv2d(x, kernel.view({groups, 1, taps, 1}), F::Conv2dFuncOptions().groups(groups));
  return x.view_as(images);
}

DrawsWithNoise DrawsWithNoise::narrow(int64_t start, int64_t length) const {
  return {per_sample.narrow(0, start, length), noise.narrow(0, start, length)};
}

}  // namespace seg
