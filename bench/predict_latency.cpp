// Inference latency and throughput of a model file on a tensor pack's split, without image
// files: what seg-segment does between decoding and encoding (normalise, resample, forward,
// upsample, argmax), on the CPU or a GPU. For the GPU machine, which cannot build seg-segment
// (no OpenCV or ITK there); bench/reference_notebook.py --infer times the notebook's loop the
// same way. One JSON line; the figures are for comparison within one run, never pass/fail.
//   bench_predict_latency MODEL PACK [DEVICE: cpu|cuda] [SPLIT: test] [THREADS: 2]
#include <seg/dataset.h>
#include <seg/model_file.h>
#include <seg/predict.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <string>

namespace {
double seconds_of(const std::function<void()>& work, const at::Device& device) {
  const auto start = std::chrono::steady_clock::now();
  work();
  if (device.is_cuda()) torch::cuda::synchronize();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: bench_predict_latency MODEL PACK [cpu|cuda] [SPLIT] [THREADS]\n");
    return 2;
  }
  seg::Model model;
  seg::Dataset data;
  at::Device device = torch::kCPU;
  try {  // a bad file or device: one line, as the tools say it
    model = seg::load_model(argv[1]);
    data = seg::load_tensor_pack(argv[2]).subset(argc > 4 ? argv[4] : "test");
    device = seg::parse_device(argc > 3 ? argv[3] : "cpu");
    torch::set_num_threads(argc > 5 ? std::stoi(argv[5]) : 2);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_predict_latency: error: %s\n", e.what());
    return 1;
  }
  model.net->to(device);
  const at::Tensor images = data.images;  // raw, as decoded from the files
  const int64_t n = images.size(0);
  auto segment = [&](int64_t first, int64_t count) {
    const auto logits = seg::predict_logits(model, images.narrow(0, first, count), device);
    return seg::logits_to_labels(logits, model.info.classes).to(torch::kCPU);  // as written to a file
  };
  segment(0, 1);  // warm-up: cuDNN's choices, the allocator's first blocks
  const double one_by_one = seconds_of([&] { for (int64_t i = 0; i < n; ++i) segment(i, 1); }, device);
  const int64_t batch = 8;
  const double batched = seconds_of([&] { for (int64_t i = 0; i < n; i += batch) segment(i, std::min(batch, n - i)); }, device);
  std::printf("{\"impl\": \"segsuite\", \"model\": \"%s\", \"device\": \"%s\", \"images\": %lld, "
              "\"s_per_image\": %.5f, \"images_per_s_batch8\": %.1f}\n",
              model.info.network.architecture.c_str(), device.str().c_str(), static_cast<long long>(n),
              one_by_one / static_cast<double>(n), static_cast<double>(n) / batched);
  return 0;
}
