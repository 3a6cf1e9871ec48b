#pragma once
// A data set like a user's own, made in memory: grey films with three structures (1 a disc,
// 2 a rectangle, 3 a thin ring) at places that vary by case, in any pixel type.
#include <seg/dataset.h>
#include <torch/torch.h>

#include <cstdint>
#include <string>

namespace seg::testing {

// `cases` films of height x width named "s0", "s1", ...; the first `train` in split "train",
// the rest in "test". Background at peak / 5, the disc at 4/5, the rectangle at 1/2 and the
// ring at 19/20 of `peak`; `type` kInt stands for uint16 (how the readers widen it).
inline seg::Dataset shapes_dataset(int64_t cases, int64_t height, int64_t width, int64_t train, double peak = 4095,
                                   at::ScalarType type = torch::kInt) {
  seg::Dataset d;
  d.name = "shapes";
  d.source = "memory";
  d.classes.entries = {{"background", 0}, {"disc", 1}, {"rectangle", 2}, {"ring", 3}};
  const auto y = torch::arange(height, torch::kFloat).view({height, 1}).expand({height, width});
  const auto x = torch::arange(width, torch::kFloat).view({1, width}).expand({height, width});
  std::vector<at::Tensor> images, labels;
  for (int64_t i = 0; i < cases; ++i) {
    const double shift = static_cast<double>(i % 5) - 2;  // each case a little elsewhere
    auto label = torch::zeros({height, width}, torch::kByte);
    const auto disc = (y - (0.3 * height + shift)).pow(2) + (x - (0.3 * width + shift)).pow(2) < std::pow(0.15 * width, 2);
    const auto rectangle = (y > 0.6 * height + shift) & (y < 0.85 * height + shift) & (x > 0.2 * width) & (x < 0.5 * width);
    const auto distance = ((y - (0.35 * height - shift)).pow(2) + (x - 0.72 * width).pow(2)).sqrt();
    const auto ring = (distance > 0.15 * width) & (distance < 0.15 * width + 1.5);
    label.masked_fill_(disc, 1).masked_fill_(rectangle, 2).masked_fill_(ring, 3);
    auto image = torch::full({height, width}, peak / 5, torch::kFloat);
    image.masked_fill_(disc, peak * 4 / 5).masked_fill_(rectangle, peak / 2).masked_fill_(ring, peak * 19 / 20);
    images.push_back(image.round().to(type));
    labels.push_back(label);
    d.cases.push_back("s" + std::to_string(i));
  }
  d.images = torch::stack(images);
  d.labels = torch::stack(labels);
  d.splits["train"] = {d.cases.begin(), d.cases.begin() + train};
  if (train < cases) d.splits["test"] = {d.cases.begin() + train, d.cases.end()};
  return d;
}

}  // namespace seg::testing
