#include <seg/error.h>
#include <seg/postprocess.h>
#include <seg/segmenter.h>

#include <torch/torch.h>

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <map>
#include <mutex>
#include <thread>

namespace seg {

std::vector<std::string> clean_up_steps(const std::vector<Model>& models, bool use_recommended,
                                        const std::vector<std::string>& asked) {
  std::vector<std::string> steps;
  for (const auto& step : postprocessing_steps()) {
    const bool recommended = use_recommended && !models.empty() && std::all_of(models.begin(), models.end(), [&](const Model& m) {
      return std::find(m.info.postprocessing.begin(), m.info.postprocessing.end(), step) != m.info.postprocessing.end();
    });
    if (recommended || std::find(asked.begin(), asked.end(), step) != asked.end()) steps.push_back(step);
  }
  return steps;
}

Segmenter::Segmenter(std::vector<Model> models, SegmenterOptions options, const at::Device& device,
                     const std::string& source)
    : models_(std::move(models)), options_(std::move(options)), device_(device) {
  if (models_.empty()) throw UsageError("no model to segment with");
  for (auto& model : models_) {
    if (model.info.classes.entries != models_.front().info.classes.entries)
      throw Error(source, "the models have different classes; an ensemble needs models trained on the same class table");
    model.net->to(device_);
    model.net->eval();
  }
  check_postprocessing_steps(options_.postprocessing, source);
  if (options_.whole && models_.front().info.overlaps.empty())
    throw Error(source, "does not record which structures its training labels drew over others, so they cannot be "
                        "made whole; add them with seg-convert MODEL -o OUT.pth --overlap UNDER:OVER");
  if (options_.predict.reframe && !models_.front().info.framing) options_.predict.reframe = false;
}

std::vector<FilmPrediction> Segmenter::predict(const std::vector<at::Tensor>& films) const {
  return predict_films(models_, films, device_, options_.predict);
}

Segmentation Segmenter::finish(const FilmPrediction& prediction) const {
  const Model& model = models_.front();
  const int64_t width = prediction.width();
  const NextLikeliest next_likeliest = [&](int64_t, int64_t pixel, int dropped) {
    return prediction.likeliest_channel_except(pixel / width, pixel % width, dropped);
  };
  Segmentation result;
  const auto labels = postprocess(prediction.labels().unsqueeze(0), options_.postprocessing, model.info.classes,
                                  next_likeliest);
  const bool restore = (options_.whole || options_.masks) && !model.info.overlaps.empty();
  const at::Tensor restored = restore ? restore_covered(labels, model.info.overlaps) : labels;
  if (options_.masks) {
    result.restored = restored;
    result.as_predicted = labels;
  }
  result.labels = options_.whole ? restored : labels;
  if (options_.probabilities) result.probabilities = prediction.probabilities().unsqueeze(0);
  result.reframed = prediction.reframed() ? 1 : 0;
  return result;
}

Segmentation Segmenter::segment(const at::Tensor& raw_images) const {
  const auto predictions = predict(raw_images.cpu().unbind(0));
  std::vector<Segmentation> films;
  for (const auto& prediction : predictions) films.push_back(finish(prediction));
  Segmentation result;
  auto stacked = [&](at::Tensor Segmentation::*part) {
    std::vector<at::Tensor> parts;
    for (const auto& film : films)
      if ((film.*part).defined()) parts.push_back(film.*part);
    return parts.empty() ? at::Tensor() : torch::cat(parts);
  };
  result.labels = stacked(&Segmentation::labels);
  result.probabilities = stacked(&Segmentation::probabilities);
  result.restored = stacked(&Segmentation::restored);
  result.as_predicted = stacked(&Segmentation::as_predicted);
  for (const auto& film : films) result.reframed += film.reframed;
  return result;
}

namespace {

constexpr int64_t kGatherBytes = int64_t{128} << 20;   // films one worker holds for a forward pass
constexpr int64_t kWaitingBytes = int64_t{128} << 20;  // finished films waiting for their turn

int64_t bytes_of(const at::Tensor& t) { return t.defined() ? static_cast<int64_t>(t.nbytes()) : 0; }

// A film's way through the stream once a worker is done with it.
struct FinishedFilm {
  bool left_out = false;     // read() gave nothing
  std::exception_ptr error;  // reading or segmenting it failed
  Image image;
  Segmentation segmentation;
  int64_t bytes = 0;
};

// What the workers and the writing thread share.
class StreamState {
 public:
  explicit StreamState(size_t count) : end_(count) {}

  // The next film to read, or nothing when the stream ends before it.
  std::optional<size_t> claim() {
    const std::lock_guard<std::mutex> lock(mutex_);
    if (stopped_ || next_claim_ >= end_) return std::nullopt;
    return next_claim_++;
  }
  // Film i is finished; a film with bytes waits while the films waiting hold too much, unless
  // it is the one to write next (which keeps the stream moving).
  void finish(size_t i, FinishedFilm film) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (film.error) end_ = std::min(end_, i + 1);  // nothing after a failure is needed
    changed_.wait(lock, [&] { return stopped_ || film.bytes == 0 || i == next_write_ || waiting_bytes_ + film.bytes <= kWaitingBytes; });
    if (stopped_) return;
    waiting_bytes_ += film.bytes;
    finished_.emplace(i, std::move(film));
    changed_.notify_all();
  }
  // The next film in order, once it is finished; nothing at the end.
  std::optional<FinishedFilm> next() {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return next_write_ >= end_ || finished_.count(next_write_) > 0; });
    if (next_write_ >= end_) return std::nullopt;
    auto node = finished_.extract(next_write_++);
    waiting_bytes_ -= node.mapped().bytes;
    changed_.notify_all();
    return std::move(node.mapped());
  }
  void stop() {
    const std::lock_guard<std::mutex> lock(mutex_);
    stopped_ = true;
    changed_.notify_all();
  }
  bool stopped() {
    const std::lock_guard<std::mutex> lock(mutex_);
    return stopped_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  size_t next_claim_ = 0, next_write_ = 0, end_;
  bool stopped_ = false;
  int64_t waiting_bytes_ = 0;
  std::map<size_t, FinishedFilm> finished_;
};

// Stops the workers and waits for them, however the writing thread leaves.
struct Workers {
  StreamState& state;
  std::vector<std::thread> threads;
  ~Workers() {
    state.stop();
    for (auto& t : threads) t.join();
  }
};

}  // namespace

void Segmenter::stream(size_t count, const std::function<std::optional<Image>(size_t)>& read,
                       const std::function<void(size_t, const Image&, const Segmentation&)>& write,
                       const StreamOptions& options, const FilmAnalysis& analyse) const {
  if (count == 0) return;
  const int threads = std::max(options.threads, 1);
  const int workers = device_.is_cpu() ? static_cast<int>(std::min<size_t>(static_cast<size_t>(threads), count)) : 1;
  const int threads_per_worker = std::max(1, threads / workers);
  const auto batch = static_cast<size_t>(std::max<int64_t>(options.batch, 1));
  StreamState state(count);
  // Segments one pass's films and posts them in order: how many were posted, and the error
  // that stopped it (the film at that position failed, or the pass as a whole did).
  auto segment_pass = [&](const std::vector<size_t>& indices,
                          std::vector<Image>& images) -> std::pair<size_t, std::exception_ptr> {
    size_t posted = 0;
    try {
      std::vector<at::Tensor> films;
      for (const auto& image : images) films.push_back(image.pixels);
      auto predictions = predict(films);
      if (analyse) analyse(indices, films, predictions);
      films.clear();
      for (; posted < indices.size(); ++posted) {
        FinishedFilm film;
        film.segmentation = finish(predictions[posted]);
        film.image = std::move(images[posted]);
        if (!options.keep_pixels) film.image.pixels = at::Tensor();
        const auto& s = film.segmentation;
        film.bytes = bytes_of(film.image.pixels) + bytes_of(s.labels) + bytes_of(s.probabilities) +
                     bytes_of(s.restored) + bytes_of(s.as_predicted);
        state.finish(indices[posted], std::move(film));
      }
    } catch (...) {
      return {posted, std::current_exception()};
    }
    return {posted, nullptr};
  };
  auto work = [&] {
    if (device_.is_cpu()) torch::set_num_threads(threads_per_worker);  // this thread's share
    while (!state.stopped()) {
      // Gather films for one forward pass.
      std::vector<size_t> indices;
      std::vector<Image> images;
      int64_t bytes = 0;
      bool ended = false;  // no film left to claim
      while (indices.size() < batch && bytes < kGatherBytes) {
        const auto i = state.claim();
        if (!i) {
          ended = true;
          break;
        }
        FinishedFilm film;
        try {
          auto image = read(*i);
          if (image) {
            bytes += bytes_of(image->pixels);
            indices.push_back(*i);
            images.push_back(std::move(*image));
            continue;
          }
          film.left_out = true;
        } catch (...) {
          film.error = std::current_exception();
        }
        const bool failed = film.error != nullptr;
        state.finish(*i, std::move(film));
        if (failed) break;
      }
      if (indices.empty()) {
        if (ended) return;
        continue;
      }
      if (state.stopped()) return;  // the writer has stopped: nothing more will be written
      auto [posted, error] = segment_pass(indices, images);
      // A pass of several films failed: the films it had not posted go one at a time, so the
      // error is the failing film's own and the films before it are written.
      if (error && indices.size() - posted > 1) {
        error = nullptr;
        for (; posted < indices.size() && !state.stopped(); ++posted) {
          std::vector<Image> one{std::move(images[posted])};
          error = segment_pass({indices[posted]}, one).second;
          if (error) break;
        }
      }
      if (error) {
        FinishedFilm film;
        try {
          std::rethrow_exception(error);
        } catch (const std::exception& e) {
          film.error = std::make_exception_ptr(FilmSegmentationError(indices[posted], e.what()));
        } catch (...) {
          film.error = error;
        }
        state.finish(indices[posted], std::move(film));
      }
    }
  };
  Workers running{state, {}};
  for (int w = 0; w < workers; ++w) running.threads.emplace_back(work);
  for (size_t i = 0; auto film = state.next(); ++i) {
    if (film->error) std::rethrow_exception(film->error);
    if (!film->left_out) write(i, film->image, film->segmentation);
  }
}

std::vector<std::pair<std::string, at::Tensor>> Segmenter::structure_masks(const Segmentation& result,
                                                                           int64_t index) const {
  if (!result.restored.defined()) throw UsageError("structure masks need SegmenterOptions::masks");
  const auto& info = models_.front().info;
  std::vector<std::pair<std::string, at::Tensor>> masks;
  for (const auto& [name, value] : info.classes.entries) {
    if (value == 0) continue;
    const bool drawn_over = std::any_of(info.overlaps.begin(), info.overlaps.end(),
                                        [value = value](const Overlap& o) { return o.under == value; });
    masks.emplace_back(name, (drawn_over ? result.restored : result.as_predicted)[index] == value);
  }
  return masks;
}

}  // namespace seg
