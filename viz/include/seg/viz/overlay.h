#pragma once
// Pictures a person looks at: label overlays with a legend, montages, line plots.
#include <seg/dataset.h>
#include <seg/image.h>

#include <filesystem>
#include <string>
#include <vector>

namespace seg::viz {

// An 8-bit BGR picture (H x W x 3, kByte); kept as a tensor so callers need no OpenCV.
using Picture = at::Tensor;

// The fixed colour of a label value (BGR), the same in every picture the suite draws.
std::array<uint8_t, 3> label_colour(int value);

// Grey image (contrast-stretched to its 1st..99th percentile) with each non-zero label
// blended over it at `alpha`, its outline drawn opaque, and a legend of the class names
// present in `classes`. labels: H x W integer, same size as image (else seg::Error).
Picture render_overlay(const Image& image, const at::Tensor& labels, const ClassTable& classes,
                       double alpha = 0.45, const std::string& title = "");

// Pictures tiled in rows of `columns` (padded to the largest).
Picture montage(const std::vector<Picture>& pictures, int columns);

// One or more named series against x, with axes and a legend.
struct Series {
  std::string name;
  std::vector<double> x, y;
};
Picture line_plot(const std::vector<Series>& series, const std::string& title,
                  const std::string& x_label, const std::string& y_label, int width = 800,
                  int height = 500);

// Writes a picture as PNG, atomically.
void write_png(const std::filesystem::path& path, const Picture& picture);

}  // namespace seg::viz
