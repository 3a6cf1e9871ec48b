// Where a training step's time goes, per phase, for one network on random 256 x 256 data:
// batch gather, affine augmentation, forward, loss, backward, optimizer. For choosing what to
// make faster (issue 5); the figures are for comparison within one run, never pass/fail.
//   build/bin/bench_train_step_profile [NETWORK] [BATCH] [STEPS] [THREADS] [LOSS: ce | ce+dice]
// Environment: PACK (a tensor pack: its train split instead of random data), CHANNELS_LAST,
// TRACE (a Chrome trace of the timed steps), DEVICE=cuda. On CUDA each phase ends with a
// device sync, and a second pass without syncs inside a step says how long the host takes to
// queue a step against how long the step takes: a step the host cannot queue faster than the
// GPU runs it is launch-bound, the case CUDA graphs are for.
#include <seg/augment.h>
#include <seg/dataset.h>
#include <seg/models.h>
#include <seg/optim.h>
#include <seg/train.h>
#include <torch/torch.h>
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/cuda.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <string>

int main(int argc, char** argv) {
  const std::string network = argc > 1 ? argv[1] : "fast";
  const int64_t batch = argc > 2 ? std::stoll(argv[2]) : 3;
  const int steps = argc > 3 ? std::stoi(argv[3]) : 30;
  torch::set_num_threads(argc > 4 ? std::stoi(argv[4]) : 2);
  const std::string loss_name = argc > 5 ? argv[5] : "ce+dice";
  torch::manual_seed(1);
  auto gen = seg::make_seeded_generator(1);
  at::Tensor images = torch::randn({160, 1, 256, 256});
  at::Tensor labels = torch::randint(0, 6, {160, 256, 256}, torch::kLong);
  if (const char* pack = std::getenv("PACK")) {  // real data: a tensor pack's train split
    const auto data = seg::load_tensor_pack(pack).subset("train");
    const auto pixels = data.images.to(torch::kFloat);
    images = ((pixels - pixels.mean()) / pixels.std()).unsqueeze(1).contiguous();
    labels = data.labels.to(torch::kLong);
  }
  const char* device_name = std::getenv("DEVICE");
  const torch::Device device(device_name ? device_name : "cpu");
  images = images.to(device);
  labels = labels.to(device);
  const auto weights = torch::ones({6}, torch::TensorOptions().device(device));
  auto net = seg::make_network({network, 1, 6});
  net->to(device);
  const bool channels_last = std::getenv("CHANNELS_LAST") != nullptr;
  if (channels_last) seg::use_channels_last(*net);
  seg::MultiTensorAdamW optimizer(net->parameters(), torch::optim::AdamWOptions(1e-3));  // as seg-train
  using Clock = std::chrono::steady_clock;
  std::map<std::string, double> seconds;
  const char* phases[] = {"gather", "augment", "forward", "loss", "backward", "optimizer"};
  std::unique_ptr<torch::autograd::profiler::RecordProfile> trace;
  auto sync = [&] { if (device.is_cuda()) torch::cuda::synchronize(); };
  // One step as seg-train takes it; after_phase(name) is called at the end of each phase.
  auto train_step = [&](const std::function<void(const char*)>& after_phase) {
    const auto index = torch::randint(0, images.size(0), {batch}, gen, torch::kLong).to(device);
    auto x = images.index_select(0, index);
    auto y = labels.index_select(0, index);
    after_phase("gather");
    std::tie(x, y) = seg::random_affine(x, y, 0.1, gen);
    if (channels_last) x = x.contiguous(at::MemoryFormat::ChannelsLast);
    after_phase("augment");
    seg::clear_gradients(net->parameters());
    const auto logits = net->forward(x);
    after_phase("forward");
    auto loss = seg::training_loss(logits, y, weights, loss_name);
    after_phase("loss");
    loss.backward();
    after_phase("backward");
    optimizer.step();
    after_phase("optimizer");
  };
  for (int step = -3; step < steps; ++step) {  // 3 warm-up steps
    if (step == 0 && std::getenv("TRACE")) trace = std::make_unique<torch::autograd::profiler::RecordProfile>(std::string(std::getenv("TRACE")));
    sync();
    auto t = Clock::now();
    train_step([&](const char* phase) {  // each phase synced, so its time is the device's too
      sync();
      const auto now = Clock::now();
      if (step >= 0) seconds[phase] += std::chrono::duration<double>(now - t).count();
      t = now;
    });
  }
  trace.reset();
  double total = 0;
  for (const auto& [phase, s] : seconds) total += s;
  std::printf("%s, batch %lld, %d steps, %d threads: %.1f ms a step, %.1f images/s\n", network.c_str(),
              static_cast<long long>(batch), steps, torch::get_num_threads(), 1e3 * total / steps, batch * steps / total);
  for (const char* phase : phases)
    std::printf("  %-10s %7.1f ms  %5.1f %%\n", phase, 1e3 * seconds[phase] / steps, 100 * seconds[phase] / total);
  if (!device.is_cuda()) return 0;
  // The same steps with no syncs inside, one at a time: the time the host takes to queue a
  // step against the time until the GPU has run it (one step's launches stay below the
  // driver's queue depth, so queuing never waits for the GPU).
  double queued = 0, ran = 0;
  for (int step = 0; step < steps; ++step) {
    sync();
    const auto start = Clock::now();
    train_step([](const char*) {});
    queued += std::chrono::duration<double>(Clock::now() - start).count();
    sync();
    ran += std::chrono::duration<double>(Clock::now() - start).count();
  }
  std::printf("without syncs inside: %.2f ms a step, queued by the host in %.2f ms (%.0f %%; near 100 %%: "
              "launch-bound)\n", 1e3 * ran / steps, 1e3 * queued / steps, 100 * queued / ran);
}
