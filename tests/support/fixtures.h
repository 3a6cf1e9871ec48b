#pragma once
// Small helpers and generated fixtures that several test files share.
#include <seg/dataset.h>
#include <seg/error.h>
#include <seg/image.h>
#include <torch/torch.h>

#include <string>
#include <vector>

namespace seg::testing {

inline bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// The message of the seg::Error that `f` throws, or "" when it throws none.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const seg::Error& e) {
    return e.what();
  }
  return "";
}

// An image of `pixels` (made contiguous) with the stored pixel type's name, default geometry.
inline seg::Image image_of(const at::Tensor& pixels, const std::string& pixel_type) {
  seg::Image image;
  image.pixels = pixels.contiguous();
  image.pixel_type = pixel_type;
  return image;
}

// A random uint8 data set in memory: cases "a", "b", ... of height x width, labels
// 0..classes-1, the first `train` cases in split "train", the rest in "test".
inline seg::Dataset random_dataset(const std::string& name, int64_t cases, int64_t height, int64_t width,
                                   int classes, int64_t train) {
  seg::Dataset d;
  d.name = name;
  d.source = "memory";
  d.images = torch::randint(0, 256, {cases, height, width}, torch::kByte);
  d.labels = torch::randint(0, classes, {cases, height, width}, torch::kByte);
  for (int64_t i = 0; i < cases; ++i) d.cases.push_back(std::string(1, static_cast<char>('a' + i)));
  d.classes = seg::ClassTable::numbered(classes);
  d.splits["train"] = {d.cases.begin(), d.cases.begin() + train};
  if (train < cases) d.splits["test"] = {d.cases.begin() + train, d.cases.end()};
  return d;
}

}  // namespace seg::testing
