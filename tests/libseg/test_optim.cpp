// seg::MultiTensorAdam(W): LibTorch's Adam and AdamW to the bit, with their state.
#include <seg/optim.h>
#include <torch/torch.h>

#include <gtest/gtest.h>

#include <sstream>

namespace {

// Parameters of several shapes (a 4-D one in channels-last order, as --channels-last makes
// them), the same in two copies.
std::vector<at::Tensor> parameters(uint64_t seed) {
  torch::manual_seed(seed);
  std::vector<at::Tensor> ps = {torch::randn({8, 4, 3, 3}).contiguous(at::MemoryFormat::ChannelsLast), torch::randn({8}),
                                torch::randn({5, 7}), torch::randn({1})};
  for (auto& p : ps) p.set_requires_grad(true);
  return ps;
}

// Five steps of `ours` and `theirs` on the same gradients (a few left out on one step, as a
// network's unused head would be); every weight and moment must agree exactly.
template <typename Ours, typename Theirs, typename Options>
void expect_same_steps(const Options& options, const torch::Device& device) {
  auto a = parameters(3), b = parameters(3);
  for (auto& p : a) p = p.detach().to(device).set_requires_grad(true);
  for (auto& p : b) p = p.detach().to(device).set_requires_grad(true);
  Ours ours(a, options);
  Theirs theirs(b, options);
  torch::manual_seed(11);
  for (int step = 0; step < 5; ++step) {
    seg::clear_gradients(a);
    theirs.zero_grad();
    for (size_t i = 0; i < a.size(); ++i) {
      if (step == 2 && i == 3) continue;  // no gradient this step
      const auto g = torch::randn(a[i].sizes()).to(device);
      a[i].mutable_grad() = g.clone();
      b[i].mutable_grad() = g.clone();
    }
    if (step == 2) b[3].mutable_grad().reset();
    ours.step();
    theirs.step();
    for (size_t i = 0; i < a.size(); ++i) {
      if (device.is_cpu()) {
        EXPECT_TRUE(torch::equal(a[i], b[i])) << "parameter " << i << ", step " << step + 1;
      } else {  // CUDA's multi-tensor kernels round differently from one kernel per tensor
        EXPECT_TRUE(torch::allclose(a[i], b[i], 1e-5, 1e-6)) << "parameter " << i << ", step " << step + 1;
      }
    }
  }
  // The same state, serialised as LibTorch's: a checkpoint of ours resumes in theirs.
  std::stringstream buffer;
  torch::serialize::OutputArchive out;
  ours.save(out);
  out.save_to(buffer);
  auto c = parameters(3);
  for (size_t i = 0; i < c.size(); ++i) c[i] = a[i].detach().clone().set_requires_grad(true);
  Theirs resumed(c, options);
  torch::serialize::InputArchive in;
  in.load_from(buffer);
  resumed.load(in);
  for (size_t i = 0; i < c.size(); ++i) c[i].mutable_grad() = torch::ones_like(c[i]);
  for (size_t i = 0; i < a.size(); ++i) a[i].mutable_grad() = torch::ones_like(a[i]);
  resumed.step();
  ours.step();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::allclose(a[i], c[i], 1e-6, 1e-7)) << "after resume, parameter " << i;
}

}  // namespace

TEST(MultiTensorAdam, StepsExactlyAsLibTorchsAdamWithWeightDecay) {
  expect_same_steps<seg::MultiTensorAdam, torch::optim::Adam>(torch::optim::AdamOptions(1e-2).weight_decay(1e-3),
                                                              torch::kCPU);
}

TEST(MultiTensorAdam, StepsExactlyAsLibTorchsAdamW) {
  expect_same_steps<seg::MultiTensorAdamW, torch::optim::AdamW>(torch::optim::AdamWOptions(3e-3).weight_decay(1e-4),
                                                                torch::kCPU);
}

TEST(MultiTensorAdam, AgreesOnCuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device: multi-tensor kernels not checked";
  expect_same_steps<seg::MultiTensorAdamW, torch::optim::AdamW>(torch::optim::AdamWOptions(3e-3).weight_decay(1e-4),
                                                                torch::kCUDA);
}

namespace {

// seg::DeviceStepAdam against MultiTensorAdam(W) over steps with a learning rate that changes
// every step (as the one-cycle schedule does), both starting from a state a few steps old; then
// the step count it keeps on the device, copied back, resumes the host-side optimiser.
template <typename Optimiser, typename Options>
void expect_device_step_like_host_step(const Options& options, bool decoupled, const torch::Device& device) {
  auto a = parameters(5), b = parameters(5);
  for (auto& p : a) p = p.detach().to(device).set_requires_grad(true);
  for (auto& p : b) p = p.detach().to(device).set_requires_grad(true);
  Optimiser host(a, options), on_device_state(b, options);
  torch::manual_seed(13);
  auto gradients = [&] {
    for (size_t i = 0; i < a.size(); ++i) {
      const auto g = torch::randn(a[i].sizes()).to(device);
      a[i].mutable_grad() = g.clone();
      b[i].mutable_grad() = g.clone();
    }
  };
  for (int step = 0; step < 2; ++step) {  // both host-stepped first: a state to take over
    gradients();
    host.step();
    on_device_state.step();
  }
  seg::DeviceStepAdam device_step(on_device_state, decoupled);
  for (int step = 0; step < 6; ++step) {
    const double lr = options.lr() * (1.0 + 0.5 * step);
    static_cast<Options&>(host.param_groups().front().options()).lr(lr);
    device_step.set_lr(lr);
    gradients();
    host.step();
    device_step.step();
    for (size_t i = 0; i < a.size(); ++i)
      EXPECT_TRUE(torch::allclose(a[i], b[i], 1e-5, 1e-6)) << "parameter " << i << ", step " << step + 3;
  }
  device_step.sync_step_count();
  gradients();
  host.step();
  on_device_state.step();  // the host-side step again, from the device step's state and count
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::allclose(a[i], b[i], 1e-5, 1e-6)) << "after the hand-back, parameter " << i;
}

}  // namespace

TEST(DeviceStepAdam, StepsAsAdamWithWeightDecay) {
  expect_device_step_like_host_step<seg::MultiTensorAdam>(torch::optim::AdamOptions(1e-2).weight_decay(1e-3), false,
                                                          torch::kCPU);
}

TEST(DeviceStepAdam, StepsAsAdamW) {
  expect_device_step_like_host_step<seg::MultiTensorAdamW>(torch::optim::AdamWOptions(3e-3).weight_decay(1e-4), true,
                                                           torch::kCPU);
}

TEST(DeviceStepAdam, AgreesOnCuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  expect_device_step_like_host_step<seg::MultiTensorAdamW>(torch::optim::AdamWOptions(3e-3).weight_decay(1e-4), true,
                                                           torch::kCUDA);
}
