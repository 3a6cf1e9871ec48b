#include <seg/error.h>
#include <seg/film_prediction.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <utility>

namespace seg {
namespace {

constexpr uint8_t kMixed = 255;  // the network pixels around a point disagree

// Where one film pixel along one axis falls on a term's grid of n pixels: bilinear neighbours
// and weights with the coordinate held to the grid, and the weight that lies on the grid when
// it is not held (what a grid of ones sampled with zero padding gives).
struct AxisSample {
  int32_t first, second;
  float w_first, w_second, seen;
};

AxisSample sample_axis(const AxisMap& map, int64_t position, int64_t n) {
  const double at = map.scale * static_cast<double>(position) + map.offset;
  const double below = std::floor(at), fraction = at - below;
  const auto k = static_cast<int64_t>(below);
  AxisSample s{};
  s.seen = static_cast<float>((k >= 0 && k < n ? 1.0 - fraction : 0.0) + (k + 1 >= 0 && k + 1 < n ? fraction : 0.0));
  const double held = std::clamp(at, 0.0, static_cast<double>(n - 1));
  const auto first = static_cast<int64_t>(std::floor(held));
  s.first = static_cast<int32_t>(first);
  s.second = static_cast<int32_t>(std::min(first + 1, n - 1));
  s.w_second = static_cast<float>(held - static_cast<double>(first));
  s.w_first = 1.0f - s.w_second;
  return s;
}

void softmax_in_place(float* v, int64_t n) {
  const float top = *std::max_element(v, v + n);
  float sum = 0.0f;
  for (int64_t k = 0; k < n; ++k) sum += (v[k] = std::exp(v[k] - top));
  for (int64_t k = 0; k < n; ++k) v[k] /= sum;
}

// The first channel with the largest score, leaving out `excluded` (-1: none).
int argmax_except(const float* scores, int64_t n, int excluded) {
  int best = -1;
  for (int k = 0; k < static_cast<int>(n); ++k)
    if (k != excluded && (best < 0 || scores[k] > scores[best])) best = k;
  return best;
}

}  // namespace

// Per requested row (and column), one AxisSample for each term, term-minor.
struct FilmPrediction::Sampling {
  std::vector<AxisSample> rows, columns;
};

FilmPrediction::FilmPrediction(int64_t height, int64_t width, const ClassTable& classes,
                               std::vector<PredictionTerm> terms, int models, bool weighted)
    : height_(height), width_(width), terms_(std::move(terms)), models_(models), weighted_(weighted) {
  if (terms_.empty() || models_ < 1) throw Error("FilmPrediction: no network output given");
  for (const auto& [name, value] : classes.entries) values_.push_back(static_cast<uint8_t>(value));
  for (auto& term : terms_) {
    term.logits = term.logits.to(at::kCPU, at::kFloat).contiguous();
    if (term.logits.dim() != 3 || term.logits.size(0) != classes.size())
      throw Error("FilmPrediction: logits must be C x h x w with one channel per class");
    if (term.model < 0 || term.model >= models_) throw Error("FilmPrediction: a term names no model");
    // Each grid pixel's channel, then where it and its right, lower and lower-right
    // neighbours (held to the grid) all agree.
    const int64_t channels = term.logits.size(0), h = term.logits.size(1), w = term.logits.size(2), plane = h * w;
    const float* logits = term.logits.data_ptr<float>();
    std::vector<uint8_t> channel(static_cast<size_t>(plane));
    for (int64_t p = 0; p < plane; ++p) {
      int best = 0;
      for (int k = 1; k < static_cast<int>(channels); ++k)
        if (logits[k * plane + p] > logits[best * plane + p]) best = k;
      channel[static_cast<size_t>(p)] = static_cast<uint8_t>(best);
    }
    std::vector<uint8_t> agreed(static_cast<size_t>(plane));
    for (int64_t y = 0; y < h; ++y) {
      const int64_t below = std::min(y + 1, h - 1);
      for (int64_t x = 0; x < w; ++x) {
        const int64_t right = std::min(x + 1, w - 1);
        const uint8_t c = channel[static_cast<size_t>(y * w + x)];
        const bool same = c == channel[static_cast<size_t>(y * w + right)] &&
                          c == channel[static_cast<size_t>(below * w + x)] &&
                          c == channel[static_cast<size_t>(below * w + right)];
        agreed[static_cast<size_t>(y * w + x)] = same ? c : kMixed;
      }
    }
    agreed_.push_back(std::move(agreed));
  }
}

FilmPrediction::Sampling FilmPrediction::sampling(const std::vector<int64_t>& rows,
                                                  const std::vector<int64_t>& columns) const {
  Sampling s;
  s.rows.reserve(rows.size() * terms_.size());
  s.columns.reserve(columns.size() * terms_.size());
  for (int64_t y : rows)
    for (const auto& term : terms_) s.rows.push_back(sample_axis(term.rows, y, term.logits.size(1)));
  for (int64_t x : columns)
    for (const auto& term : terms_) s.columns.push_back(sample_axis(term.columns, x, term.logits.size(2)));
  return s;
}

void FilmPrediction::scores_at(const Sampling& s, size_t i, size_t j, float* scores, std::vector<float>& scratch) const {
  const size_t count = terms_.size();
  const int64_t channels = static_cast<int64_t>(values_.size());
  // One term's logits at the pixel: vertically, then horizontally.
  auto interpolate = [&](size_t t, float* out) {
    const auto& r = s.rows[i * count + t];
    const auto& c = s.columns[j * count + t];
    const auto& logits = terms_[t].logits;
    const int64_t w = logits.size(2), plane = logits.size(1) * w;
    const float* top = logits.data_ptr<float>() + r.first * w;
    const float* bottom = logits.data_ptr<float>() + r.second * w;
    for (int64_t k = 0; k < channels; ++k) {
      const int64_t o = k * plane;
      out[k] = c.w_first * (r.w_first * top[o + c.first] + r.w_second * bottom[o + c.first]) +
               c.w_second * (r.w_first * top[o + c.second] + r.w_second * bottom[o + c.second]);
    }
  };
  if (count == 1 && !weighted_) return interpolate(0, scores);
  // Scratch: one term's probabilities, each model's weighted sum, each model's weight.
  scratch.assign(static_cast<size_t>(channels * (1 + models_) + models_), 0.0f);
  float* term = scratch.data();
  float* model = term + channels;
  float* weight = model + channels * models_;
  for (size_t t = 0; t < count; ++t) {
    interpolate(t, term);
    softmax_in_place(term, channels);
    float* sum = model + terms_[t].model * channels;
    const float seen = weighted_ ? s.rows[i * count + t].seen * s.columns[j * count + t].seen : 1.0f;
    for (int64_t k = 0; k < channels; ++k) sum[k] += term[k] * seen;
    weight[terms_[t].model] += seen;
  }
  std::fill(scores, scores + channels, 0.0f);
  for (int m = 0; m < models_; ++m) {
    const float divisor = weighted_ ? std::max(weight[m], 1e-6f) : 1.0f;
    for (int64_t k = 0; k < channels; ++k) scores[k] += model[m * channels + k] / divisor;
  }
  if (models_ > 1)
    for (int64_t k = 0; k < channels; ++k) scores[k] /= static_cast<float>(models_);
}

namespace {

// The positions of `positions` within [begin, end), as indices [first, last) and moved by -begin.
std::pair<size_t, size_t> inside(const std::vector<int64_t>& positions, int64_t begin, int64_t end,
                                 std::vector<int64_t>& moved) {
  const auto first = std::lower_bound(positions.begin(), positions.end(), begin);
  const auto last = std::lower_bound(first, positions.end(), end);
  moved.clear();
  for (auto p = first; p != last; ++p) moved.push_back(*p - begin);
  return {static_cast<size_t>(first - positions.begin()), static_cast<size_t>(last - positions.begin())};
}

}  // namespace

void FilmPrediction::render_labels(const std::vector<int64_t>& rows, const std::vector<int64_t>& columns, uint8_t* out,
                                   int64_t stride) const {
  const auto s = sampling(rows, columns);
  const size_t count = terms_.size();
  std::vector<float> scores(values_.size()), scratch;
  auto interpolated = [&](size_t i, size_t j) {
    scores_at(s, i, j, scores.data(), scratch);
    return values_[static_cast<size_t>(argmax_except(scores.data(), static_cast<int64_t>(values_.size()), -1))];
  };
  for (size_t i = 0; i < rows.size(); ++i) {
    uint8_t* row = out + static_cast<int64_t>(i) * stride;
    if (count == 1) {
      const auto& r = s.rows[i];
      const uint8_t* agreed = agreed_[0].data() + r.first * terms_[0].logits.size(2);
      for (size_t j = 0; j < columns.size(); ++j) {
        const uint8_t c = agreed[s.columns[j].first];
        row[j] = c != kMixed ? values_[c] : interpolated(i, j);
      }
      continue;
    }
    for (size_t j = 0; j < columns.size(); ++j) {
      int common = -1;  // the channel every term that sees the pixel agrees on
      bool mixed = false;
      for (size_t t = 0; t < count && !mixed; ++t) {
        const auto& r = s.rows[i * count + t];
        const auto& c = s.columns[j * count + t];
        if (weighted_ && r.seen * c.seen <= 0.0f) continue;
        const uint8_t a = agreed_[t][static_cast<size_t>(r.first * terms_[t].logits.size(2) + c.first)];
        mixed = a == kMixed || (common >= 0 && common != a);
        common = a;
      }
      row[j] = !mixed && common >= 0 ? values_[static_cast<size_t>(common)] : interpolated(i, j);
    }
  }
  if (!second_) return;
  std::vector<int64_t> inner_rows, inner_columns;
  const auto [top, bottom] = inside(rows, crop_.top, crop_.bottom, inner_rows);
  const auto [left, right] = inside(columns, crop_.left, crop_.right, inner_columns);
  if (top < bottom && left < right)
    second_->render_labels(inner_rows, inner_columns, out + static_cast<int64_t>(top) * stride + static_cast<int64_t>(left), stride);
}

void FilmPrediction::render_probabilities(const std::vector<int64_t>& rows, const std::vector<int64_t>& columns,
                                          float* out, int64_t plane, int64_t stride) const {
  const auto s = sampling(rows, columns);
  const int64_t channels = static_cast<int64_t>(values_.size());
  const bool logits_only = terms_.size() == 1 && !weighted_ && models_ == 1;
  std::vector<float> scores(static_cast<size_t>(channels)), scratch;
  for (size_t i = 0; i < rows.size(); ++i)
    for (size_t j = 0; j < columns.size(); ++j) {
      scores_at(s, i, j, scores.data(), scratch);
      if (logits_only) softmax_in_place(scores.data(), channels);
      for (int64_t k = 0; k < channels; ++k)
        out[k * plane + static_cast<int64_t>(i) * stride + static_cast<int64_t>(j)] = scores[static_cast<size_t>(k)];
    }
  if (!second_) return;
  std::vector<int64_t> inner_rows, inner_columns;
  const auto [top, bottom] = inside(rows, crop_.top, crop_.bottom, inner_rows);
  const auto [left, right] = inside(columns, crop_.left, crop_.right, inner_columns);
  if (top < bottom && left < right)
    second_->render_probabilities(inner_rows, inner_columns,
                                  out + static_cast<int64_t>(top) * stride + static_cast<int64_t>(left), plane, stride);
}

namespace {
std::vector<int64_t> every(int64_t n) {
  std::vector<int64_t> positions(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) positions[static_cast<size_t>(i)] = i;
  return positions;
}
}  // namespace

at::Tensor FilmPrediction::labels() const { return labels_at(every(height_), every(width_)); }

at::Tensor FilmPrediction::labels_at(const std::vector<int64_t>& rows, const std::vector<int64_t>& columns) const {
  auto out = at::empty({static_cast<int64_t>(rows.size()), static_cast<int64_t>(columns.size())}, at::kByte);
  render_labels(rows, columns, out.data_ptr<uint8_t>(), out.size(1));
  return out;
}

at::Tensor FilmPrediction::probabilities() const {
  auto out = at::empty({static_cast<int64_t>(values_.size()), height_, width_}, at::kFloat);
  render_probabilities(every(height_), every(width_), out.data_ptr<float>(), height_ * width_, width_);
  return out;
}

int FilmPrediction::likeliest_channel_except(int64_t y, int64_t x, int excluded) const {
  if (second_ && y >= crop_.top && y < crop_.bottom && x >= crop_.left && x < crop_.right)
    return second_->likeliest_channel_except(y - crop_.top, x - crop_.left, excluded);
  std::vector<float> scores(values_.size()), scratch;
  scores_at(sampling({y}, {x}), 0, 0, scores.data(), scratch);
  return argmax_except(scores.data(), static_cast<int64_t>(scores.size()), excluded);
}

void FilmPrediction::replace(const Crop& crop, FilmPrediction second) {
  if (crop.top < 0 || crop.left < 0 || crop.bottom > height_ || crop.right > width_ ||
      second.height() != crop.height() || second.width() != crop.width())
    throw Error("FilmPrediction::replace: the second prediction does not cover the crop within the film");
  crop_ = crop;
  second_ = std::make_shared<const FilmPrediction>(std::move(second));
}

}  // namespace seg
