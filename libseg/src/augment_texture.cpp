// Texture augmentation: random blur, sharpening and detector noise.
#include <seg/augment.h>
#include <seg/augment_pipeline.h>

#include <torch/torch.h>

#include <limits>

namespace seg {

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

Augmentation texture_augmentation() {
  Augmentation a;
  a.name = "texture";
  a.help = "random blur/sharpening/noise strength, 1: up to 250 % unsharp masking and 12 grey levels of noise (0: off)";
  a.max_strength = std::numeric_limits<double>::infinity();
  a.draw = [](const DrawShape& shape, double strength, at::Generator& gen) {
    const auto d = random_texture_draws(shape.batch, shape.height, shape.width, strength, gen);
    return Draws{d.per_sample, d.noise};
  };
  a.apply = [](const at::Tensor& images, const Draws& draws, double) {
    return apply_texture(images, {draws.at(0), draws.at(1)});
  };
  return a;
}

}  // namespace seg
