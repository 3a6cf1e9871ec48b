#include <seg/augment_pipeline.h>
#include <seg/error.h>

#include <ATen/ATen.h>

#include <cmath>
#include <sstream>

namespace seg {

const Augmentation* find_augmentation(const std::string& name) {
  for (const auto& a : augmentations())
    if (a.name == name) return &a;
  return nullptr;
}

std::string strength_range(const Augmentation& a) {
  std::ostringstream text;
  text << a.min_strength << (std::isinf(a.max_strength) ? " or more" : "");
  if (!std::isinf(a.max_strength)) text << " to " << a.max_strength;
  return text.str();
}

double AugmentOptions::strength(const std::string& name) const {
  const auto* a = find_augmentation(name);
  if (!a) throw Error("augmentation", "no augmentation is called \"" + name + "\"");
  const auto it = strengths.find(name);
  return it == strengths.end() ? a->default_strength : it->second;
}

bool AugmentOptions::operator==(const AugmentOptions& other) const {
  for (const auto& a : augmentations())
    if (strength(a.name) != other.strength(a.name)) return false;
  return true;
}

BatchDraws BatchDraws::slice(int64_t start, int64_t length) const {
  BatchDraws part;
  part.padding = padding;
  for (const auto& step : draws) {
    Draws narrowed;
    for (const auto& t : step) narrowed.push_back(t.narrow(0, start, length));
    part.draws.push_back(std::move(narrowed));
  }
  return part;
}

AugmentPipeline::AugmentPipeline(const AugmentOptions& options) : options_(options) {
  bool warping = false;
  for (const auto& a : augmentations()) warping = warping || (a.geometric && options_.strength(a.name) > 0);
  for (const auto& a : augmentations())
    if (options_.strength(a.name) > 0 || (a.base_of_warp && warping)) steps_.push_back(&a);
}

bool AugmentPipeline::warps() const {
  return !steps_.empty() && steps_.front()->geometric;
}

double AugmentPipeline::strength(const Augmentation& a) const { return options_.strength(a.name); }

BatchDraws AugmentPipeline::draw(const DrawShape& shape, at::Generator& gen) const {
  BatchDraws out;
  bool widened = false, padding_drawn = false;
  // A wider or turned field of view shows what lay beyond the image: one of the three paddings,
  // drawn per step once the warp is drawn, so that the network learns every border as background.
  auto draw_padding = [&] {
    if (widened && !padding_drawn)
      out.padding = static_cast<Padding>(at::randint(3, {1}, gen, at::TensorOptions().dtype(at::kLong)).item<int64_t>());
    padding_drawn = true;
  };
  for (const auto* step : steps_) {
    if (!step->geometric) draw_padding();
    widened = widened || step->widens_view;
    out.draws.push_back(step->draw(shape, strength(*step), gen));
  }
  draw_padding();
  return out;
}

Warp AugmentPipeline::warp(const BatchDraws& draws, int64_t height, int64_t width, const at::Device& device) const {
  Warp warp;
  warp.padding = draws.padding;
  warp.height = height;
  warp.width = width;
  warp.device = device;
  for (size_t k = 0; k < steps_.size() && steps_[k]->geometric; ++k) steps_[k]->warp(warp, draws.draws.at(k), strength(*steps_[k]));
  return warp;
}

std::pair<at::Tensor, at::Tensor> AugmentPipeline::apply_warp(const at::Tensor& images, const at::Tensor& labels,
                                                              const BatchDraws& draws) const {
  if (!warps()) return {images, labels};
  const Warp w = warp(draws, images.size(2), images.size(3), images.device());
  return apply_affine(images, labels, w.theta, w.displacement, w.padding);
}

at::Tensor AugmentPipeline::apply_to_images(const at::Tensor& images, const BatchDraws& draws) const {
  at::Tensor x = images;
  for (size_t k = 0; k < steps_.size(); ++k)
    if (!steps_[k]->geometric) x = steps_[k]->apply(x, draws.draws.at(k), strength(*steps_[k]));
  return x;
}

std::pair<at::Tensor, at::Tensor> AugmentPipeline::apply(const at::Tensor& images, const at::Tensor& labels,
                                                         const BatchDraws& draws) const {
  auto [x, y] = apply_warp(images, labels, draws);
  return {apply_to_images(x, draws), y};
}

}  // namespace seg
