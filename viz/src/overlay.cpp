// Pictures: label overlays with a legend, montages, line plots; drawn with OpenCV.
#include <seg/error.h>
#include <seg/fs.h>
#include <seg/viz/overlay.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <sstream>

namespace seg::viz {
namespace fs = std::filesystem;

namespace {

const cv::Scalar kText(235, 235, 235);
const cv::Scalar kPanel(40, 40, 40);
constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;

cv::Mat mat_of_picture(const Picture& picture) {
  if (!picture.defined() || picture.dim() != 3 || picture.size(2) != 3 || picture.scalar_type() != at::kByte)
    throw Error("picture", "must be an H x W x 3 uint8 tensor");
  const auto t = picture.contiguous();
  return cv::Mat(static_cast<int>(t.size(0)), static_cast<int>(t.size(1)), CV_8UC3, t.data_ptr()).clone();
}

Picture picture_of_mat(const cv::Mat& mat) {
  cv::Mat bgr = mat.isContinuous() ? mat : mat.clone();
  return torch::from_blob(bgr.data, {bgr.rows, bgr.cols, 3}, torch::kByte).clone();
}

cv::Scalar scalar_of(const std::array<uint8_t, 3>& bgr) { return cv::Scalar(bgr[0], bgr[1], bgr[2]); }

// Grey levels stretched so the 1st..99th percentile fills 0..255 (radiographs are dull).
cv::Mat stretched_grey(const at::Tensor& pixels) {
  auto values = pixels.to(torch::kFloat);
  if (values.dim() == 3) values = values.mean(2);
  const auto sorted = std::get<0>(values.flatten().sort());
  const int64_t n = sorted.numel();
  const float low = sorted[n / 100].item<float>();
  const float high = sorted[std::min(n - 1, n * 99 / 100)].item<float>();
  const float scale = high > low ? 255.0f / (high - low) : 0.0f;
  auto grey = ((values - low) * scale).clamp(0, 255).round().to(torch::kByte).contiguous();
  cv::Mat mat(static_cast<int>(grey.size(0)), static_cast<int>(grey.size(1)), CV_8UC1, grey.data_ptr());
  cv::Mat bgr;
  cv::cvtColor(mat, bgr, cv::COLOR_GRAY2BGR);
  return bgr;
}

std::string number_text(double value) {
  std::ostringstream s;
  s << std::setprecision(4) << value;
  return s.str();
}

// Tick spacing of 1, 2 or 5 times a power of ten, giving about `count` ticks over the range.
double nice_step(double range, int count) {
  const double raw = range / std::max(1, count);
  const double power = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (raw <= m * power) return m * power;
  return 10 * power;
}

}  // namespace

std::array<uint8_t, 3> label_colour(int value) {
  // BGR; 1..5 follow the JSRT structures (lungs blue/green, heart red, clavicles yellow/magenta).
  static const std::array<std::array<uint8_t, 3>, 16> table{{
      {0, 0, 0},       {230, 120, 30},  {60, 200, 60},   {50, 50, 230},   {0, 215, 255},   {220, 60, 220},
      {200, 200, 0},   {0, 128, 255},   {150, 80, 200},  {120, 220, 180}, {80, 160, 160},  {255, 180, 120},
      {100, 100, 255}, {180, 255, 100}, {200, 160, 255}, {130, 130, 130},
  }};
  if (value >= 0 && value < static_cast<int>(table.size())) return table[static_cast<size_t>(value)];
  // Beyond the table: a stable colour from the value's bits.
  const auto v = static_cast<uint32_t>(value) * 2654435761u;
  return {static_cast<uint8_t>(64 + (v & 0xBF)), static_cast<uint8_t>(64 + ((v >> 8) & 0xBF)),
          static_cast<uint8_t>(64 + ((v >> 16) & 0xBF))};
}

Picture render_overlay(const Image& image, const at::Tensor& labels, const ClassTable& classes, double alpha,
                       const std::string& title) {
  if (!labels.defined() || labels.dim() != 2 || labels.size(0) != image.height() || labels.size(1) != image.width())
    throw Error("overlay", "label map and image differ in size; resample one to the other");
  const auto label_bytes = labels.to(torch::kInt).clamp(0, 255).to(torch::kByte).contiguous();
  cv::Mat label_mat(static_cast<int>(labels.size(0)), static_cast<int>(labels.size(1)), CV_8UC1, label_bytes.data_ptr());
  cv::Mat picture = stretched_grey(image.pixels);

  // Small images are enlarged so that outlines and legend text stay legible.
  const int factor = std::max(1, 512 / std::max(picture.rows, picture.cols));
  if (factor > 1) {
    cv::resize(picture, picture, cv::Size(), factor, factor, cv::INTER_LINEAR);
    cv::resize(label_mat, label_mat, cv::Size(), factor, factor, cv::INTER_NEAREST);
  }

  std::vector<int> present;
  for (int value = 1; value < 256; ++value) {
    cv::Mat mask = label_mat == value;
    if (cv::countNonZero(mask) == 0) continue;
    present.push_back(value);
    const cv::Scalar colour = scalar_of(label_colour(value));
    cv::Mat tinted(picture.size(), CV_8UC3, colour);
    cv::Mat blended;
    cv::addWeighted(picture, 1.0 - alpha, tinted, alpha, 0.0, blended);
    blended.copyTo(picture, mask);
    std::vector<std::vector<cv::Point>> contours;
    cv::findContours(mask, contours, cv::RETR_LIST, cv::CHAIN_APPROX_NONE);
    cv::drawContours(picture, contours, -1, colour, 1);
  }

  // Legend to the right, title above.
  const int legend_width = 170;
  const int title_height = title.empty() ? 0 : 28;
  const int legend_height = 12 + 20 * static_cast<int>(present.size());
  cv::Mat canvas(std::max(picture.rows, legend_height) + title_height, picture.cols + legend_width, CV_8UC3, kPanel);
  picture.copyTo(canvas(cv::Rect(0, title_height, picture.cols, picture.rows)));
  if (!title.empty()) cv::putText(canvas, title, {6, 19}, kFont, 0.55, kText, 1, cv::LINE_AA);
  int y = title_height + 10;
  for (int value : present) {
    const cv::Point corner(picture.cols + 8, y);
    cv::rectangle(canvas, cv::Rect(corner.x, corner.y, 14, 14), scalar_of(label_colour(value)), cv::FILLED);
    cv::putText(canvas, std::to_string(value) + " " + classes.name_of(value), {corner.x + 20, corner.y + 12}, kFont,
                0.45, kText, 1, cv::LINE_AA);
    y += 20;
  }
  return picture_of_mat(canvas);
}

Picture montage(const std::vector<Picture>& pictures, int columns) {
  if (pictures.empty()) throw Error("montage", "no pictures to tile");
  columns = std::max(1, std::min(columns, static_cast<int>(pictures.size())));
  int cell_h = 0, cell_w = 0;
  for (const auto& p : pictures) {
    cell_h = std::max(cell_h, static_cast<int>(p.size(0)));
    cell_w = std::max(cell_w, static_cast<int>(p.size(1)));
  }
  const int rows = (static_cast<int>(pictures.size()) + columns - 1) / columns;
  const int gap = 4;
  cv::Mat canvas(rows * cell_h + (rows - 1) * gap, columns * cell_w + (columns - 1) * gap, CV_8UC3, kPanel);
  for (size_t i = 0; i < pictures.size(); ++i) {
    cv::Mat tile = mat_of_picture(pictures[i]);
    const int r = static_cast<int>(i) / columns, c = static_cast<int>(i) % columns;
    tile.copyTo(canvas(cv::Rect(c * (cell_w + gap), r * (cell_h + gap), tile.cols, tile.rows)));
  }
  return picture_of_mat(canvas);
}

Picture line_plot(const std::vector<Series>& series, const std::string& title, const std::string& x_label,
                  const std::string& y_label, int width, int height) {
  if (width < 200 || height < 150) throw Error("plot", "a plot needs at least 200 x 150 pixels");
  double x_min = INFINITY, x_max = -INFINITY, y_min = INFINITY, y_max = -INFINITY;
  for (const auto& s : series) {
    if (s.x.size() != s.y.size()) throw Error("plot", "series \"" + s.name + "\" has " + std::to_string(s.x.size()) +
                                                          " x values but " + std::to_string(s.y.size()) + " y values");
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      x_min = std::min(x_min, s.x[i]);
      x_max = std::max(x_max, s.x[i]);
      y_min = std::min(y_min, s.y[i]);
      y_max = std::max(y_max, s.y[i]);
    }
  }
  if (!std::isfinite(x_min)) x_min = 0, x_max = 1, y_min = 0, y_max = 1;  // nothing to draw: empty axes
  if (x_max == x_min) x_min -= 0.5, x_max += 0.5;
  if (y_max == y_min) y_min -= 0.5, y_max += 0.5;
  const double y_pad = 0.05 * (y_max - y_min);
  y_min -= y_pad;
  y_max += y_pad;

  cv::Mat canvas(height, width, CV_8UC3, cv::Scalar(255, 255, 255));
  const cv::Scalar ink(40, 40, 40), grid(225, 225, 225);
  const int left = 70, right = width - 20, top = 40, bottom = height - 50;
  auto to_px = [&](double x, double y) {
    return cv::Point(left + static_cast<int>(std::lround((x - x_min) / (x_max - x_min) * (right - left))),
                     bottom - static_cast<int>(std::lround((y - y_min) / (y_max - y_min) * (bottom - top))));
  };
  // Grid and ticks.
  const double x_step = nice_step(x_max - x_min, 8), y_step = nice_step(y_max - y_min, 6);
  for (double x = std::ceil(x_min / x_step) * x_step; x <= x_max + 1e-9 * x_step; x += x_step) {
    const int px = to_px(x, y_min).x;
    cv::line(canvas, {px, top}, {px, bottom}, grid);
    cv::line(canvas, {px, bottom}, {px, bottom + 5}, ink);
    const std::string text = number_text(std::abs(x) < 1e-12 * x_step ? 0.0 : x);
    const int w = cv::getTextSize(text, kFont, 0.4, 1, nullptr).width;
    cv::putText(canvas, text, {px - w / 2, bottom + 18}, kFont, 0.4, ink, 1, cv::LINE_AA);
  }
  for (double y = std::ceil(y_min / y_step) * y_step; y <= y_max + 1e-9 * y_step; y += y_step) {
    const int py = to_px(x_min, y).y;
    cv::line(canvas, {left, py}, {right, py}, grid);
    cv::line(canvas, {left - 5, py}, {left, py}, ink);
    const std::string text = number_text(std::abs(y) < 1e-12 * y_step ? 0.0 : y);
    const int w = cv::getTextSize(text, kFont, 0.4, 1, nullptr).width;
    cv::putText(canvas, text, {left - 8 - w, py + 4}, kFont, 0.4, ink, 1, cv::LINE_AA);
  }
  cv::rectangle(canvas, {left, top}, {right, bottom}, ink);
  // Labels and title.
  const int title_w = cv::getTextSize(title, kFont, 0.6, 1, nullptr).width;
  cv::putText(canvas, title, {(width - title_w) / 2, 25}, kFont, 0.6, ink, 1, cv::LINE_AA);
  const int x_label_w = cv::getTextSize(x_label, kFont, 0.5, 1, nullptr).width;
  cv::putText(canvas, x_label, {(left + right - x_label_w) / 2, height - 12}, kFont, 0.5, ink, 1, cv::LINE_AA);
  if (!y_label.empty()) {
    // Vertical text: draw on a strip and rotate it.
    const auto size = cv::getTextSize(y_label, kFont, 0.5, 1, nullptr);
    cv::Mat strip(size.height + 8, size.width + 4, CV_8UC3, cv::Scalar(255, 255, 255));
    cv::putText(strip, y_label, {2, size.height + 2}, kFont, 0.5, ink, 1, cv::LINE_AA);
    cv::rotate(strip, strip, cv::ROTATE_90_COUNTERCLOCKWISE);
    const int y0 = std::max(0, (top + bottom - strip.rows) / 2);
    if (y0 + strip.rows <= height && strip.cols + 4 <= left) strip.copyTo(canvas(cv::Rect(4, y0, strip.cols, strip.rows)));
  }
  // Series, then the legend in the top-right corner.
  for (size_t k = 0; k < series.size(); ++k) {
    const cv::Scalar colour = scalar_of(label_colour(static_cast<int>(k) + 1));
    const auto& s = series[k];
    std::vector<cv::Point> points;
    for (size_t i = 0; i < s.x.size(); ++i)
      if (std::isfinite(s.x[i]) && std::isfinite(s.y[i])) points.push_back(to_px(s.x[i], s.y[i]));
    if (points.size() == 1) cv::circle(canvas, points[0], 3, colour, cv::FILLED, cv::LINE_AA);
    if (points.size() > 1) cv::polylines(canvas, points, false, colour, 2, cv::LINE_AA);
  }
  int legend_y = top + 10;
  for (size_t k = 0; k < series.size(); ++k) {
    const cv::Scalar colour = scalar_of(label_colour(static_cast<int>(k) + 1));
    const int w = cv::getTextSize(series[k].name, kFont, 0.45, 1, nullptr).width;
    const int x0 = right - w - 40;
    cv::line(canvas, {x0, legend_y}, {x0 + 24, legend_y}, colour, 2, cv::LINE_AA);
    cv::putText(canvas, series[k].name, {x0 + 30, legend_y + 5}, kFont, 0.45, ink, 1, cv::LINE_AA);
    legend_y += 18;
  }
  return picture_of_mat(canvas);
}

void write_png(const fs::path& path, const Picture& picture) {
  const cv::Mat mat = mat_of_picture(picture);
  std::vector<uchar> bytes;
  if (!cv::imencode(".png", mat, bytes)) throw Error(path.string(), "cannot encode the picture as PNG");
  write_file_atomically(path, std::string(bytes.begin(), bytes.end()));
}

}  // namespace seg::viz
