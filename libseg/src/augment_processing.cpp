// Processing augmentation: histogram equalisation and large-scale local contrast, as archives
// and detector software process films.
#include <seg/augment.h>
#include <seg/augment_pipeline.h>

#include <torch/torch.h>

#include <limits>

namespace seg {

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

Augmentation processing_augmentation() {
  Augmentation a;
  a.name = "processing";
  a.help = "random film processing strength: a blend towards histogram equalisation and large-scale local contrast, 1: up "
           "to fully equalised and 150 % (0: off)";
  a.max_strength = std::numeric_limits<double>::infinity();
  a.draw = [](const DrawShape& shape, double strength, at::Generator& gen) {
    return Draws{random_processing_draws(shape.batch, shape.width, strength, gen)};
  };
  a.apply = [](const at::Tensor& images, const Draws& draws, double) { return apply_processing(images, draws.at(0)); };
  return a;
}

}  // namespace seg
