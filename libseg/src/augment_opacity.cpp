// Opacity augmentation: soft patchy opacities, as of diseased lungs; labels unchanged.
#include <seg/augment.h>
#include <seg/augment_pipeline.h>

#include <torch/torch.h>

#include <limits>

namespace seg {

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

Augmentation opacity_augmentation() {
  Augmentation a;
  a.name = "opacity";
  a.help = "random soft opacities in the middle of the film, as of diseased lungs (labels unchanged): strength, 1: blobs up to "
           "fully soft-tissue grey (0: off)";
  a.max_strength = std::numeric_limits<double>::infinity();
  a.draw = [](const DrawShape& shape, double strength, at::Generator& gen) {
    const auto d = random_opacity_draws(shape.batch, strength, gen);
    return Draws{d.per_sample, d.noise};
  };
  a.apply = [](const at::Tensor& images, const Draws& draws, double) {
    return apply_opacity(images, {draws.at(0), draws.at(1)});
  };
  return a;
}

}  // namespace seg
