// Intensity augmentation: random gamma, contrast and brightness, for other scanners' exposure.
#include <seg/augment.h>
#include <seg/augment_pipeline.h>

#include <ATen/ATen.h>

#include <limits>

namespace seg {

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

Augmentation intensity_augmentation() {
  Augmentation a;
  a.name = "intensity";
  a.help = "random gamma, contrast and brightness strength (0: off)";
  a.max_strength = std::numeric_limits<double>::infinity();
  // The draws are 3 x B; the pipeline keeps them sample first.
  a.draw = [](const DrawShape& shape, double strength, at::Generator& gen) {
    return Draws{random_intensity_draws(shape.batch, strength, gen).transpose(0, 1)};
  };
  a.apply = [](const at::Tensor& images, const Draws& draws, double) {
    return apply_intensity(images, draws.at(0).transpose(0, 1));
  };
  return a;
}

}  // namespace seg
