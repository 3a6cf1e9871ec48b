// Where seg-segment's time goes on one film: each stage of the plain path (decode, normalise,
// resample, network, upsampling, argmax, softmax, clean-up, the reframing check, encoding)
// timed on its own, best of REPEATS. For finding the work to cut; never pass/fail.
//   bench_segment_stages MODEL FILM [THREADS: 2] [REPEATS: 3]
#include <seg/framing.h>
#include <seg/io/image_io.h>
#include <seg/model_file.h>
#include <seg/postprocess.h>
#include <seg/predict.h>
#include <seg/segmenter.h>
#include <seg/train.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <limits>
#include <string>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace {
int repeats = 3;

// Best of `repeats` runs of `work`, in ms.
double ms_of(const std::function<void()>& work) {
  double best = std::numeric_limits<double>::infinity();
  for (int r = 0; r < repeats; ++r) {
    const auto start = std::chrono::steady_clock::now();
    work();
    best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  return best;
}
}  // namespace

int main(int argc, char** argv) {
#if defined(__GLIBC__)
  mallopt(M_MMAP_THRESHOLD, 64 << 20);  // as tools/main.cpp.in
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
#endif
  if (argc < 3) {
    std::fprintf(stderr, "usage: bench_segment_stages MODEL FILM [THREADS] [REPEATS]\n");
    return 2;
  }
  torch::set_num_threads(argc > 3 ? std::stoi(argv[3]) : 2);
  repeats = argc > 4 ? std::stoi(argv[4]) : 3;
  torch::NoGradGuard no_grad;
  const seg::Model model = seg::load_model(argv[1]);
  model.net->eval();
  const auto& classes = model.info.classes;
  const int64_t in_h = model.info.input_size.at(0), in_w = model.info.input_size.at(1);
  auto row = [](const char* stage, double ms) { std::printf("%-44s %9.1f ms\n", stage, ms); };

  seg::Image image;
  row("decode (io::read_image)", ms_of([&] { image = seg::io::read_image(argv[2]); }));
  const at::Tensor raw = image.pixels.unsqueeze(0);
  const int64_t height = raw.size(1), width = raw.size(2);
  at::Tensor as_float, normalized, resized, logits, upsampled, labels, probabilities, cleaned;
  row("to float", ms_of([&] { as_float = raw.to(torch::kFloat); }));
  row("normalize_images (integers)", ms_of([&] { normalized = seg::normalize_images(raw, model.info.normalization); }));
  row("normalize_images (float)", ms_of([&] { normalized = seg::normalize_images(as_float, model.info.normalization); }));
  row("resize_batch (area)", ms_of([&] { resized = seg::resize_batch(normalized, in_h, in_w); }));
  row("network", ms_of([&] { logits = model.net->forward(resized); }));
  const auto eight = resized.expand({8, 1, in_h, in_w}).contiguous();
  row("network, batch of 8 (per film)", ms_of([&] { model.net->forward(eight); }) / 8.0);
  {
    const seg::AutocastScope bfloat16(true, at::kCPU);
    row("network, bfloat16 autocast", ms_of([&] { model.net->forward(resized); }));
  }
  row("upsample_logits", ms_of([&] { upsampled = seg::upsample_logits(logits, height, width); }));
  row("logits_to_labels (argmax)", ms_of([&] { labels = seg::logits_to_labels(upsampled, classes); }));
  row("softmax", ms_of([&] { probabilities = torch::softmax(upsampled, 1); }));
  row("keep_largest_component (probabilities)",
      ms_of([&] { cleaned = seg::keep_largest_component(labels, classes, probabilities); }));
  row("fill_holes", ms_of([&] { cleaned = seg::fill_holes(cleaned); }));
  row("restore_covered", ms_of([&] { seg::restore_covered(cleaned, model.info.overlaps); }));
  row("predict_probabilities (reframe)", ms_of([&] {
        seg::predict_probabilities({model}, as_float, torch::kCPU, {true, false, true});
      }));
  row("predict_probabilities (no reframe)", ms_of([&] {
        seg::predict_probabilities({model}, as_float, torch::kCPU, {true, false, false});
      }));
  seg::SegmenterOptions options;
  options.postprocessing = model.info.postprocessing;
  options.predict.reframe = true;
  const seg::Segmenter segmenter({model}, options, torch::kCPU, argv[1]);
  std::vector<seg::FilmPrediction> predictions;
  row("predict_films, no reframing", ms_of([&] { seg::predict_films({model}, {raw[0]}, torch::kCPU, {true, false, false}); }));
  row("Segmenter::predict (defaults)", ms_of([&] { predictions = segmenter.predict({raw[0]}); }));
  row("FilmPrediction::labels", ms_of([&] { labels = predictions.front().labels(); }));
  row("FilmPrediction::probabilities", ms_of([&] { predictions.front().probabilities(); }));
  row("Segmenter::finish (defaults)", ms_of([&] { cleaned = segmenter.finish(predictions.front()).labels; }));
  row("Segmenter::segment (defaults)", ms_of([&] { segmenter.segment(raw); }));
  row("encode + write PNG (io::write_label_map)", ms_of([&] {
        seg::io::write_label_map("/tmp/bench_segment_stages.png", {cleaned.view({height, width}), image.geometry, "uint8"});
      }));
  return 0;
}
