#include <seg/losses.h>

#include "training_parts.h"

#include <torch/torch.h>

namespace seg {
namespace {
constexpr int kWarmupSteps = 3;
}  // namespace

GraphedStep::GraphedStep(SegNet net, torch::optim::Optimizer& optimizer, bool adamw, const DeviceData& data,
                         at::Tensor class_weights, std::string loss, const AugmentPipeline& pipeline, at::Tensor loss_sum)
    : net_(std::move(net)), adam_(std::make_unique<DeviceStepAdam>(optimizer, adamw)), data_(data),
      class_weights_(std::move(class_weights)), loss_(std::move(loss)), pipeline_(pipeline),
      loss_sum_(std::move(loss_sum)) {
  if (data.images.device().is_cuda()) graph_ = std::make_unique<CudaGraph>();
}

GraphedStep::~GraphedStep() = default;

void GraphedStep::run(const at::Tensor& rows, const BatchDraws& draws, double lr) {
  const auto device = data_.images.device();
  if (!rows_.defined()) {  // the buffers take the first step's shapes, which every step shares
    rows_ = torch::zeros_like(rows, torch::TensorOptions().device(device));
    draws_ = draws;
    for (auto& step : draws_.draws)
      for (auto& t : step) t = torch::zeros_like(t, torch::TensorOptions().device(device));
  }
  rows_.copy_(rows, /*non_blocking=*/true);
  for (size_t k = 0; k < draws.draws.size(); ++k)
    for (size_t i = 0; i < draws.draws[k].size(); ++i)
      draws_.draws[k][i].copy_(upload(draws.draws[k][i], device), /*non_blocking=*/true);
  adam_->set_lr(lr);
  auto body = [this] { step(); };
  if (!graph_) {
    clear_gradients(net_->parameters());
    step();
  } else if (eager_steps_ < kWarmupSteps) {
    clear_gradients(net_->parameters());
    graph_->run_beside(body);
    ++eager_steps_;
  } else {
    if (!graph_->captured()) {
      clear_gradients(net_->parameters());  // the captured backward writes fresh gradients, not sums
      graph_->capture(body);
    }
    graph_->replay();
  }
}

void GraphedStep::before_checkpoint() { adam_->sync_step_count(); }

void GraphedStep::step() {
  at::Tensor x = data_.images.index_select(0, rows_), y = data_.labels.index_select(0, rows_);
  std::tie(x, y) = pipeline_.apply(x, y, draws_);
  const auto loss = training_loss(net_->forward_supervised(x), y, class_weights_, loss_);
  loss.backward();
  adam_->step();
  loss_sum_.add_(loss.detach());
}

}  // namespace seg
