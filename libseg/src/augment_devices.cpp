// Devices augmentation: tubes, lines, ECG electrodes and wires, a pacemaker; labels unchanged.
#include <seg/augment.h>
#include <seg/augment_pipeline.h>

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace seg {

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

Augmentation devices_augmentation() {
  Augmentation a;
  a.name = "devices";
  a.help = "probability that a sample shows radiopaque tubes, lines, ECG wires and electrodes or a pacemaker, as bedside "
           "films do (labels unchanged; 0: off)";
  a.max_strength = 1;
  a.draw = [](const DrawShape& shape, double probability, at::Generator& gen) {
    const auto d = random_device_draws(shape.batch, probability, gen);
    return Draws{d.curves, d.rings, d.box, d.opacity};
  };
  a.apply = [](const at::Tensor& images, const Draws& draws, double) {
    return apply_devices(images, {draws.at(0), draws.at(1), draws.at(2), draws.at(3)});
  };
  return a;
}

}  // namespace seg
