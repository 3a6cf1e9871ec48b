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

at::Tensor random_affine_theta(int64_t batch, double scale, at::Generator& gen,
                               const at::Device& device, double zoom, double rotation, double aspect) {
  if (batch < 0) throw Error("random_affine_theta", "negative batch size");
  if (!(rotation >= 0 && rotation <= 180)) throw Error("random_affine_theta", "rotation must be 0 to 180 degrees");
  if (!(aspect > 0)) throw Error("random_affine_theta", "aspect (width / height) must be positive");
  if (gen.device().type() != at::kCPU)
    throw Error("random_affine_theta", "needs a CPU generator (draws are made on the CPU)");
  auto noise = at::randn({batch, 2, 3}, gen, at::TensorOptions().dtype(at::kFloat));
  auto identity = at::eye(2, 3, at::TensorOptions().dtype(at::kFloat)).unsqueeze(0);
  auto theta = identity + scale * noise;
  if (zoom > 0) {
    // Log-uniform, so widening and narrowing by the same factor are equally likely.
    const auto u = at::rand({batch, 1, 1}, gen, at::TensorOptions().dtype(at::kFloat)) * 2 - 1;
    const auto factor = at::exp(u * std::log1p(zoom));
    theta.narrow(2, 0, 2).mul_(factor);
  }
  if (rotation > 0) {
    // Normalised coordinates are pixels scaled by 2 / width and 2 / height, so a turn of the
    // pixels by a reads [[cos a, -sin a / aspect], [sin a * aspect, cos a]] in them.
    const auto u = at::rand({batch}, gen, at::TensorOptions().dtype(at::kDouble)) * 2 - 1;
    const auto angle = u * (rotation * M_PI / 180);
    const auto c = at::cos(angle), s = at::sin(angle);
    const auto turn = at::stack({at::stack({c, -s / aspect}, 1), at::stack({s * aspect, c}, 1)}, 1);
    // theta maps output to input positions: turn the output grid, then apply the rest.
    const auto linear = at::matmul(theta.narrow(2, 0, 2).to(at::kDouble), turn);
    theta = at::cat({linear.to(at::kFloat), theta.narrow(2, 2, 1)}, 2);
  }
  return upload(theta, device);
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

std::pair<at::Tensor, at::Tensor> random_affine(const at::Tensor& images, const at::Tensor& labels,
                                                double scale, at::Generator& gen) {
  if (!images.defined() || images.dim() != 4)
    throw Error("random_affine", "images must be B x C x H x W");
  auto theta = random_affine_theta(images.size(0), scale, gen, images.device());
  return apply_affine(images, labels, theta);
}

}  // namespace seg

namespace seg {

at::Tensor random_elastic_draws(int64_t batch, double strength, at::Generator& gen) {
  return at::randn({batch, 2, 4, 4}, gen, at::kFloat) * strength;
}

at::Tensor elastic_displacement(const at::Tensor& draws, int64_t height, int64_t width, const at::Device& device) {
  namespace F = torch::nn::functional;
  return F::interpolate(upload(draws, device), F::InterpolateFuncOptions()
                                              .size(std::vector<int64_t>{height, width})
                                              .mode(torch::kBicubic)
                                              .align_corners(true))
      .permute({0, 2, 3, 1})
      .contiguous();
}

at::Tensor random_intensity_draws(int64_t batch, double strength, at::Generator& gen) {
  // Drawn on the CPU from the one generator, so a seed gives the same draws on any device.
  return at::randn({3, batch, 1, 1, 1}, gen, at::kFloat) * strength;
}

at::Tensor apply_intensity(const at::Tensor& images, const at::Tensor& draws_on_cpu) {
  const int64_t batch = images.size(0);
  const auto draws = upload(draws_on_cpu, images.device());
  const auto flat = images.flatten(1);
  const auto low = std::get<0>(flat.min(1)).view({batch, 1, 1, 1});
  const auto high = std::get<0>(flat.max(1)).view({batch, 1, 1, 1});
  const auto range = (high - low).clamp_min(1e-6);
  auto x = ((images - low) / range).clamp(0, 1).pow(draws[0].exp()) * range + low;
  const auto mean = x.mean({1, 2, 3}, true);
  return (x - mean) * (1 + draws[1]) + mean + draws[2];
}

at::Tensor random_intensity(const at::Tensor& images, double strength, at::Generator& gen) {
  if (strength <= 0) return images;
  return apply_intensity(images, random_intensity_draws(images.size(0), strength, gen));
}

}  // namespace seg

namespace seg {

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

DrawsWithNoise random_texture_draws(int64_t batch, int64_t height, int64_t width, double strength, at::Generator& gen) {
  const auto u = at::rand({batch, 3}, gen, at::kFloat);
  const auto sigma = 0.5 + 1.5 * u.select(1, 0);
  const auto amount = strength * (-1.0 + 3.5 * u.select(1, 1));
  const auto deviation = strength * 0.25 * u.select(1, 2);
  return {torch::stack({sigma, amount, deviation}, 1), at::randn({batch, 1, height, width}, gen, at::kFloat)};
}

at::Tensor apply_texture(const at::Tensor& images, const DrawsWithNoise& draws) {
  const int64_t batch = images.size(0);
  const auto per_sample = upload(draws.per_sample, images.device());
  const auto amount = per_sample.select(1, 1).view({batch, 1, 1, 1});
  const auto deviation = per_sample.select(1, 2).view({batch, 1, 1, 1});
  const auto detail = images - gaussian_blur(images, draws.per_sample.select(1, 0));
  return images + amount * detail + deviation * upload(draws.noise, images.device());
}

at::Tensor random_texture(const at::Tensor& images, double strength, at::Generator& gen) {
  if (strength <= 0) return images;
  return apply_texture(images, random_texture_draws(images.size(0), images.size(2), images.size(3), strength, gen));
}

DrawsWithNoise random_opacity_draws(int64_t batch, double strength, at::Generator& gen) {
  constexpr int64_t blobs = 6, grain = 12;
  const auto u = at::rand({batch, blobs, 6}, gen, at::kFloat);
  const auto centre_x = -0.45 + 0.9 * u.select(2, 0), centre_y = -0.45 + 0.8 * u.select(2, 1);
  const auto sigma_x = 0.05 + 0.25 * u.select(2, 2), sigma_y = 0.05 + 0.25 * u.select(2, 3);
  const auto present = (u.select(2, 4) < 0.5).to(at::kFloat);
  const auto opacity = (strength * (0.5 + 0.5 * u.select(2, 5))).clamp_max(1.0) * present;
  return {torch::stack({centre_x, centre_y, sigma_x, sigma_y, opacity}, 2),
          at::randn({batch, 1, grain, grain}, gen, at::kFloat)};
}

at::Tensor apply_opacity(const at::Tensor& images, const DrawsWithNoise& draws) {
  namespace F = torch::nn::functional;
  const int64_t batch = images.size(0), height = images.size(2), width = images.size(3);
  const auto blobs = upload(draws.per_sample, images.device(), images.scalar_type());
  const auto column = [&](int64_t k) { return blobs.select(2, k).view({batch, -1, 1, 1}); };
  // Pixel centres in normalised coordinates (align_corners = false, as the affine warp).
  const auto xs = ((torch::arange(width, images.options()) * 2 + 1) / static_cast<double>(width) - 1).view({1, 1, 1, width});
  const auto ys = ((torch::arange(height, images.options()) * 2 + 1) / static_cast<double>(height) - 1).view({1, 1, height, 1});
  const auto g = torch::exp(-0.5 * (((xs - column(0)) / column(2)).pow(2) + ((ys - column(1)) / column(3)).pow(2)));
  // Flat-topped (an opacity is dense inside, soft at its edge) and nothing below g = 1/4, so a
  // blob ends 1.67 of its sigmas from its centre.
  const auto field = std::get<0>(((2 * g - 0.5).clamp(0, 1) * column(4)).max(1, true));  // B x 1 x H x W
  const auto grain = F::interpolate(upload(draws.noise, images.device(), images.scalar_type()),
                                    F::InterpolateFuncOptions().size(std::vector<int64_t>{height, width})
                                        .mode(torch::kBilinear).align_corners(false));
  const auto alpha = field * (0.75 + 0.25 * grain).clamp(0.3, 1.0);
  const auto target = images.mean({1, 2, 3}, true) + images.std({1, 2, 3}, /*unbiased=*/false, true);
  return images + alpha * (target - images);
}

at::Tensor random_opacity(const at::Tensor& images, double strength, at::Generator& gen) {
  if (strength <= 0) return images;
  return apply_opacity(images, random_opacity_draws(images.size(0), strength, gen));
}

at::Tensor equalize_histogram(const at::Tensor& images) {
  const auto flat = images.flatten(1);
  const auto sorted = std::get<0>(flat.sort(1));
  // With right = true every value counts itself and its equals: flat regions stay flat.
  const auto rank = torch::searchsorted(sorted, flat.contiguous(), /*out_int32=*/false, /*right=*/true).to(images.scalar_type());
  const auto cdf = rank / static_cast<double>(flat.size(1));
  const auto mean = flat.mean(1, true), deviation = flat.std(1, /*unbiased=*/false, true);
  const auto cdf_mean = cdf.mean(1, true), cdf_deviation = cdf.std(1, false, true).clamp_min(1e-12);
  return (mean + deviation * (cdf - cdf_mean) / cdf_deviation).view_as(images);
}

at::Tensor random_processing_draws(int64_t batch, int64_t width, double strength, at::Generator& gen) {
  const auto u = at::rand({batch, 3}, gen, at::kFloat);
  const auto blend = (strength * u.select(1, 0)).clamp_max(1.0);
  const auto sigma = static_cast<double>(width) * (0.03 + 0.09 * u.select(1, 1));
  const auto amount = strength * 1.5 * u.select(1, 2);
  return torch::stack({blend, sigma, amount}, 1);
}

at::Tensor apply_processing(const at::Tensor& images, const at::Tensor& draws) {
  const int64_t batch = images.size(0);
  const auto on_device = upload(draws, images.device(), images.scalar_type());
  const auto blend = on_device.select(1, 0).view({batch, 1, 1, 1});
  const auto amount = on_device.select(1, 2).view({batch, 1, 1, 1});
  const auto mean = images.mean({1, 2, 3}, true), deviation = images.std({1, 2, 3}, /*unbiased=*/false, true);
  auto x = images + blend * (equalize_histogram(images) - images);
  x = x + amount * (x - gaussian_blur(x, draws.select(1, 1).contiguous()));
  // Processing changes the look, not the exposure: each sample keeps its mean and deviation.
  const auto new_mean = x.mean({1, 2, 3}, true), new_deviation = x.std({1, 2, 3}, false, true).clamp_min(1e-6);
  return (x - new_mean) / new_deviation * deviation + mean;
}

at::Tensor random_processing(const at::Tensor& images, double strength, at::Generator& gen) {
  if (strength <= 0) return images;
  return apply_processing(images, random_processing_draws(images.size(0), images.size(3), strength, gen));
}

DeviceDraws DeviceDraws::narrow(int64_t start, int64_t length) const {
  return {curves.narrow(0, start, length), rings.narrow(0, start, length), box.narrow(0, start, length),
          opacity.narrow(0, start, length)};
}

DeviceDraws random_device_draws(int64_t batch, double probability, at::Generator& gen) {
  const auto u = [&](std::vector<int64_t> shape, double low, double high) {
    return low + (high - low) * at::rand(shape, gen, at::kDouble);
  };
  const auto shown = (at::rand({batch, 1}, gen, at::kDouble) < probability).to(at::kDouble);
  const auto present = [&](int64_t count, double p) { return (at::rand({batch, count}, gen, at::kDouble) < p) * shown; };
  const auto side = torch::where(at::rand({batch}, gen, at::kDouble) < 0.5, -1.0, 1.0);
  const auto pacemaker = present(1, 0.3).squeeze(1);
  const auto box_x = u({batch}, 0.3, 0.65), box_y = u({batch}, -0.8, -0.5);
  const auto electrodes = torch::stack({u({batch, 4}, -0.85, 0.85), u({batch, 4}, -0.8, 0.6), u({batch, 4}, 0.035, 0.06),
                                        present(4, 0.6)}, 2);
  // Curve ends (x0, y0, x2, y2); each control point is the middle pushed by up to `bend`.
  struct End { at::Tensor x0, y0, x2, y2; double bend; bool thick; at::Tensor present; };
  // Electrode k's wire: the first two run off the bottom, the others off either side.
  const auto wire = [&](int64_t k) {
    const auto electrode = electrodes.select(1, k);
    const auto bottom = torch::full({batch}, 1.15, at::kDouble);
    return k < 2 ? End{electrode.select(1, 0), electrode.select(1, 1), u({batch}, -1.2, 1.2), bottom, 0.6, false,
                       electrode.select(1, 3)}
                 : End{electrode.select(1, 0), electrode.select(1, 1), (k == 2 ? side : -side) * 1.15,
                       u({batch}, -0.5, 1.0), 0.6, false, electrode.select(1, 3)};
  };
  // (A braced list is evaluated in order, so the draws come in the same order everywhere.)
  const std::vector<End> ends = {
      {u({batch}, -0.08, 0.08), torch::full({batch}, -1.1, at::kDouble), u({batch}, -0.05, 0.3), u({batch}, 0.5, 1.1),
       0.2, true, present(1, 0.8).squeeze(1)},                                                          // tube
      {side * u({batch}, 0.6, 0.95), u({batch}, -0.8, -0.4), u({batch}, -0.2, 0.0), u({batch}, -0.4, 0.0), 0.2, true,
       present(1, 0.5).squeeze(1)},                                                                     // central line
      wire(0), wire(1), wire(2), wire(3),                                                               // ECG wires
      {box_x, box_y, u({batch}, 0.0, 0.25), u({batch}, 0.0, 0.4), 0.25, true, pacemaker},              // pacemaker lead
      {u({batch}, -1.0, 1.0), u({batch}, -1.0, 1.0), u({batch}, -1.0, 1.0), u({batch}, -1.0, 1.0), 0.6, false,
       present(1, 0.3).squeeze(1)},                                                                     // a stray wire
  };
  std::vector<at::Tensor> curves;
  for (const auto& e : ends) {
    const auto cx = (e.x0 + e.x2) / 2 + u({batch}, -e.bend, e.bend), cy = (e.y0 + e.y2) / 2 + u({batch}, -e.bend, e.bend);
    curves.push_back(torch::stack({e.x0, e.y0, cx, cy, e.x2, e.y2, torch::full({batch}, e.thick ? 1.0 : 0.0, at::kDouble),
                                   e.present}, 1));
  }
  const auto box = torch::stack({box_x, box_y, u({batch}, 0.05, 0.09), u({batch}, 0.035, 0.06), pacemaker}, 1);
  const auto opacity = torch::stack({u({batch}, 0.6, 1.0), u({batch}, 0.3, 0.8)}, 1);
  return {torch::stack(curves, 1), electrodes, box, opacity};
}

namespace {
// The pixels the devices cover, B x 2 x H x W (thick, thin; 1 where covered), drawn on the CPU
// in double precision, so a seed covers the same pixels on the CPU and on CUDA. A uint8 canvas
// goes up as a quarter of a float one; the device widens, softens and blends.
at::Tensor device_canvas(const DeviceDraws& draws, int64_t height, int64_t width) {
  const int64_t batch = draws.curves.size(0);
  const auto as_double = [](const at::Tensor& t) { return t.to(at::kCPU, at::kDouble).contiguous(); };
  const auto curves = as_double(draws.curves), rings = as_double(draws.rings), box = as_double(draws.box);
  const auto c = curves.accessor<double, 3>();
  const auto r = rings.accessor<double, 3>();
  const auto b = box.accessor<double, 2>();
  auto canvas = torch::zeros({batch, 2, height, width}, at::kByte);
  auto pixels = canvas.accessor<uint8_t, 4>();
  // Normalised coordinates to pixels (pixel centres at (2j + 1) / W - 1, as the affine warp).
  const auto column = [&](double x) { return (x + 1) * width / 2 - 0.5; };
  const auto row = [&](double y) { return (y + 1) * height / 2 - 0.5; };
  constexpr int64_t kThick = 0, kThin = 1;
  for (int64_t s = 0; s < batch; ++s) {
    const auto mark = [&](int64_t channel, double px, double py) {
      const auto i = std::lround(py), j = std::lround(px);
      if (i >= 0 && i < height && j >= 0 && j < width) pixels[s][channel][i][j] = 1;
    };
    for (int64_t k = 0; k < c.size(1); ++k) {
      if (c[s][k][7] == 0) continue;
      const double x0 = column(c[s][k][0]), y0 = row(c[s][k][1]), x1 = column(c[s][k][2]), y1 = row(c[s][k][3]);
      const double x2 = column(c[s][k][4]), y2 = row(c[s][k][5]);
      // The control polygon bounds the curve's length: steps under 2/3 px leave no gaps.
      const auto steps = static_cast<int64_t>(std::ceil(1.5 * (std::hypot(x1 - x0, y1 - y0) + std::hypot(x2 - x1, y2 - y1)))) + 1;
      for (int64_t t = 0; t <= steps; ++t) {
        const double v = static_cast<double>(t) / steps, a = (1 - v) * (1 - v), m = 2 * (1 - v) * v, e = v * v;
        mark(c[s][k][6] != 0 ? kThick : kThin, a * x0 + m * x1 + e * x2, a * y0 + m * y1 + e * y2);
      }
    }
    for (int64_t k = 0; k < r.size(1); ++k) {
      if (r[s][k][3] == 0) continue;
      const double cx = column(r[s][k][0]), cy = row(r[s][k][1]), radius = r[s][k][2] * width / 2;
      const auto steps = static_cast<int64_t>(std::ceil(1.5 * 2 * M_PI * radius)) + 4;
      for (int64_t t = 0; t < steps; ++t) {
        const double angle = 2 * M_PI * t / steps;
        mark(kThin, cx + radius * std::cos(angle), cy + radius * std::sin(angle));
      }
      mark(kThick, cx, cy);  // the press stud
    }
    if (b[s][4] != 0) {
      const double left = column(b[s][0] - b[s][2]), right = column(b[s][0] + b[s][2]);
      const double top = row(b[s][1] - b[s][3]), bottom = row(b[s][1] + b[s][3]);
      for (auto i = static_cast<int64_t>(std::ceil(top)); i <= bottom; ++i)
        for (auto j = static_cast<int64_t>(std::ceil(left)); j <= right; ++j) mark(kThick, j, i);
    }
  }
  return canvas;
}
}  // namespace

at::Tensor apply_devices(const at::Tensor& images, const DeviceDraws& draws) {
  namespace F = torch::nn::functional;
  const int64_t batch = images.size(0), height = images.size(2), width = images.size(3);
  const auto canvas = upload(device_canvas(draws, height, width), images.device()).to(images.scalar_type());
  // Widths in proportion to the image: tubes 3 px and wires 1 px at 256.
  const auto widen = [&](const at::Tensor& x, int64_t reach) {
    return reach < 1 ? x : F::max_pool2d(x, F::MaxPool2dFuncOptions(2 * reach + 1).stride(1).padding(reach));
  };
  const auto scale = static_cast<double>(std::max(height, width)) / 256.0;
  auto mask = torch::cat({widen(canvas.narrow(1, 0, 1), std::lround(scale)),
                          widen(canvas.narrow(1, 1, 1), std::lround(scale / 2 - 0.01))}, 1);
  // Soft edges, as a film downsampled to this size shows them.
  mask = (gaussian_blur(mask, torch::full({batch}, 0.5 * scale, at::kDouble)) * 1.25).clamp_max(1.0);
  const auto opacity = upload(draws.opacity, images.device(), images.scalar_type()).view({batch, 2, 1, 1});
  const auto alpha = std::get<0>((mask * opacity).max(1, true));
  const auto brightest = images.amax({1, 2, 3}, true);
  return images + alpha * (brightest - images);
}

at::Tensor random_devices(const at::Tensor& images, double probability, at::Generator& gen) {
  if (probability <= 0) return images;
  return apply_devices(images, random_device_draws(images.size(0), probability, gen));
}

}  // namespace seg
