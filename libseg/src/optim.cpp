#include <seg/error.h>
#include <seg/optim.h>

#include <ATen/ATen.h>
#include <torch/torch.h>

#include <cmath>
#include <map>
#include <sstream>
#include <string>
#include <type_traits>

namespace seg {
namespace {

// The parameter's slot in an optimiser's state: LibTorch 1.x keys it by the address of the
// tensor's implementation as text, 2.x by the address itself.
template <typename Map>
std::unique_ptr<torch::optim::OptimizerParamState>& state_slot(Map& states, const at::Tensor& p) {
  if constexpr (std::is_same_v<typename Map::key_type, std::string>) {
    std::ostringstream key;
    key << p.unsafeGetTensorImpl();
    return states[key.str()];
  } else {
    return states[p.unsafeGetTensorImpl()];
  }
}

// The state slot's optimiser-specific class, created as MultiTensorAdam(W) would create it.
template <typename State, typename Map>
State& adam_state(Map& states, const at::Tensor& p) {
  auto& slot = state_slot(states, p);
  if (!slot) {
    auto fresh = std::make_unique<State>();
    fresh->step(0);
    fresh->exp_avg(torch::zeros_like(p, at::MemoryFormat::Preserve));
    fresh->exp_avg_sq(torch::zeros_like(p, at::MemoryFormat::Preserve));
    slot = std::move(fresh);
  }
  return static_cast<State&>(*slot);
}

// Adam's hyper-parameters, as both step implementations read them.
struct AdamHyper {
  double lr, beta1, beta2, eps, decay;
};

template <typename Options>
AdamHyper adam_hyper(const Options& options, const char* who) {
  if (options.amsgrad()) throw Error(who, "amsgrad is not supported");
  return {options.lr(), std::get<0>(options.betas()), std::get<1>(options.betas()), options.eps(), options.weight_decay()};
}

// The tensors that take one step together: those at the same step count share a bias correction.
struct Bucket {
  std::vector<at::Tensor> params, grads, exp_avgs, exp_avg_sqs;
};

// One step over a parameter group, as LibTorch's Adam (decoupled = false: weight decay added
// to the gradient) or AdamW (decoupled = true: the weights shrink by lr * weight decay).
// State is each optimiser's own class (AdamParamState, AdamWParamState), as its load and save
// expect: the two share a layout, not a type.
template <typename State, typename Map, typename Options>
void adam_step(torch::optim::OptimizerParamGroup& group, Map& states, const Options& options, bool decoupled) {
  const auto [lr, beta1, beta2, eps, decay] = adam_hyper(options, "seg::MultiTensorAdam");
  // (A tensor left without a gradient on some step falls behind the others: one bucket each.)
  std::map<int64_t, Bucket> by_step;
  for (auto& p : group.params()) {
    if (!p.grad().defined()) continue;
    auto& state = adam_state<State>(states, p);
    state.step(state.step() + 1);
    Bucket& bucket = by_step[state.step()];
    bucket.params.push_back(p);
    bucket.grads.push_back(p.grad());
    bucket.exp_avgs.push_back(state.exp_avg());
    bucket.exp_avg_sqs.push_back(state.exp_avg_sq());
  }
  for (auto& [step, b] : by_step) {
    const double bias_correction1 = 1 - std::pow(beta1, static_cast<double>(step));
    const double bias_correction2 = 1 - std::pow(beta2, static_cast<double>(step));
    if (decay != 0) {
      if (decoupled) at::_foreach_mul_(b.params, 1 - lr * decay);
      else b.grads = at::_foreach_add(b.grads, b.params, decay);
    }
    at::_foreach_mul_(b.exp_avgs, beta1);
    at::_foreach_add_(b.exp_avgs, b.grads, 1 - beta1);
    at::_foreach_mul_(b.exp_avg_sqs, beta2);
    at::_foreach_addcmul_(b.exp_avg_sqs, b.grads, b.grads, 1 - beta2);
    auto denominators = at::_foreach_sqrt(b.exp_avg_sqs);
    at::_foreach_div_(denominators, std::sqrt(bias_correction2));
    at::_foreach_add_(denominators, eps);
    at::_foreach_addcdiv_(b.params, b.exp_avgs, denominators, -lr / bias_correction1);
  }
}

template <typename State, typename Options, typename Groups, typename Map>
torch::Tensor step_all(Groups& groups, Map& states, const torch::optim::Optimizer::LossClosure& closure, bool decoupled) {
  torch::NoGradGuard no_grad;
  torch::Tensor loss;
  if (closure) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  for (auto& group : groups) adam_step<State>(group, states, static_cast<Options&>(group.options()), decoupled);
  return loss;
}

}  // namespace

torch::Tensor MultiTensorAdam::step(LossClosure closure) {
  return step_all<torch::optim::AdamParamState, torch::optim::AdamOptions>(param_groups_, state_, closure, /*decoupled=*/false);
}

torch::Tensor MultiTensorAdamW::step(LossClosure closure) {
  return step_all<torch::optim::AdamWParamState, torch::optim::AdamWOptions>(param_groups_, state_, closure, /*decoupled=*/true);
}

namespace {
// The optimiser's one group, its hyper-parameters, and every parameter's state (made if new).
template <typename State, typename Options>
AdamHyper take_over(torch::optim::Optimizer& optimizer, std::vector<at::Tensor>& params, std::vector<at::Tensor>& exp_avgs,
                    std::vector<at::Tensor>& exp_avg_sqs, int64_t& step) {
  if (optimizer.param_groups().size() != 1) throw Error("seg::DeviceStepAdam", "needs exactly one parameter group");
  auto& group = optimizer.param_groups().front();
  const AdamHyper hyper = adam_hyper(static_cast<const Options&>(group.options()), "seg::DeviceStepAdam");
  step = -1;
  for (const auto& p : group.params()) {
    auto& state = adam_state<State>(optimizer.state(), p);
    if (step >= 0 && state.step() != step)
      throw Error("seg::DeviceStepAdam", "the parameters are at different step counts");
    step = state.step();
    params.push_back(p);
    exp_avgs.push_back(state.exp_avg());
    exp_avg_sqs.push_back(state.exp_avg_sq());
  }
  return hyper;
}
}  // namespace

DeviceStepAdam::DeviceStepAdam(torch::optim::Optimizer& optimizer, bool decoupled)
    : optimizer_(optimizer), decoupled_(decoupled) {
  int64_t step = 0;
  const AdamHyper hyper =
      decoupled ? take_over<torch::optim::AdamWParamState, torch::optim::AdamWOptions>(optimizer, params_, exp_avgs_, exp_avg_sqs_, step)
                : take_over<torch::optim::AdamParamState, torch::optim::AdamOptions>(optimizer, params_, exp_avgs_, exp_avg_sqs_, step);
  if (params_.empty()) throw Error("seg::DeviceStepAdam", "no parameters");
  beta1_ = hyper.beta1;
  beta2_ = hyper.beta2;
  eps_ = hyper.eps;
  decay_ = hyper.decay;
  const auto on_device = at::TensorOptions().dtype(at::kDouble).device(params_.front().device());
  lr_ = at::full({}, hyper.lr, on_device);
  step_ = at::full({}, static_cast<double>(step), on_device);
}

void DeviceStepAdam::set_lr(double lr) {
  lr_.fill_(lr);
  optimizer_.param_groups().front().options().set_lr(lr);  // the same lr for the host-side steps
}

void DeviceStepAdam::step() {
  torch::NoGradGuard no_grad;
  step_.add_(1);
  const auto step_size = lr_ / (1 - at::pow(beta1_, step_));
  const auto bias_correction2_sqrt = at::sqrt(1 - at::pow(beta2_, step_));
  const auto shrink = decoupled_ && decay_ != 0 ? 1 - lr_ * decay_ : at::Tensor();
  for (size_t i = 0; i < params_.size(); ++i) {
    at::Tensor& p = params_[i];
    at::Tensor grad = p.grad();
    if (!grad.defined()) throw Error("seg::DeviceStepAdam", "a parameter has no gradient");
    if (decay_ != 0) {
      if (decoupled_) p.mul_(shrink);
      else grad = grad + decay_ * p;
    }
    exp_avgs_[i].mul_(beta1_).add_(grad, 1 - beta1_);
    exp_avg_sqs_[i].mul_(beta2_).addcmul_(grad, grad, 1 - beta2_);
    const auto denominator = (exp_avg_sqs_[i].sqrt() / bias_correction2_sqrt).add_(eps_);
    p.sub_(exp_avgs_[i] / denominator * step_size);
  }
}

void DeviceStepAdam::sync_step_count() {
  const auto step = static_cast<int64_t>(std::llround(step_.item<double>()));
  for (const auto& p : params_) {
    if (decoupled_) adam_state<torch::optim::AdamWParamState>(optimizer_.state(), p).step(step);
    else adam_state<torch::optim::AdamParamState>(optimizer_.state(), p).step(step);
  }
}

void clear_gradients(const std::vector<at::Tensor>& parameters) {
  for (at::Tensor p : parameters) p.mutable_grad().reset();  // (a handle: the same parameter)
}

}  // namespace seg
