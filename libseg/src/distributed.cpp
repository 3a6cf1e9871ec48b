#include <seg/distributed.h>
#include <seg/error.h>

#include <ATen/ATen.h>

#include <cctype>
#include <optional>

#if SEG_WITH_C10D_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif

namespace seg {

namespace {

std::optional<std::string> variable(const EnvironmentLookup& lookup, const char* name) {
  const char* value = lookup(name);
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::string(value);
}

// A whole non-negative number (Slurm's "2(x3)" task counts: the leading number).
int parse_count(const std::string& name, const std::string& text, bool leading_only = false) {
  size_t end = 0;
  while (end < text.size() && std::isdigit(static_cast<unsigned char>(text[end]))) ++end;
  if (end == 0 || end > 9 || (!leading_only && end != text.size()))
    throw UsageError("environment variable " + name + "=\"" + text + "\" is not a whole number");
  return std::stoi(text.substr(0, end));
}

}  // namespace

WorldInfo world_from_environment(const EnvironmentLookup& lookup) {
  struct Scheme {
    const char* launcher;
    const char *rank, *size, *local_rank, *local_size;
  };
  // torchrun first: it is what the others get mapped to, and it may run inside an allocation.
  const Scheme schemes[] = {
      {"torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"},
      {"mpirun", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE"},
      {"mpirun", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS"},
      {"srun", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_NTASKS_PER_NODE"},
  };
  WorldInfo world;
  for (const auto& s : schemes) {
    const auto rank = variable(lookup, s.rank), size = variable(lookup, s.size);
    if (!rank || !size) continue;
    world.launcher = s.launcher;
    world.rank = parse_count(s.rank, *rank);
    world.world_size = parse_count(s.size, *size);
    if (world.world_size < 1) throw UsageError(std::string(s.size) + " must be at least 1");
    if (world.rank >= world.world_size)
      throw UsageError(std::string(s.rank) + "=" + *rank + " is not below " + s.size + "=" + *size);
    if (const auto v = variable(lookup, s.local_rank)) world.local_rank = parse_count(s.local_rank, *v);
    else world.local_rank = world.rank;
    if (const auto v = variable(lookup, s.local_size)) world.local_world_size = parse_count(s.local_size, *v, true);
    else world.local_world_size = world.world_size;
    world.local_world_size = std::max(world.local_world_size, 1);
    break;
  }
  if (const auto addr = variable(lookup, "MASTER_ADDR")) world.master_addr = *addr;
  if (const auto port = variable(lookup, "MASTER_PORT")) {
    world.master_port = parse_count("MASTER_PORT", *port);
    if (world.master_port < 1 || world.master_port > 65535) throw UsageError("MASTER_PORT=" + *port + " is not a TCP port");
  }
  return world;
}

#if SEG_WITH_C10D_GLOO

bool distributed_available() { return true; }

struct Communicator::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;
};

namespace {
std::string first_line(const std::exception& e) {
  std::string what = e.what();
  return what.substr(0, what.find('\n'));
}

// Waits for a collective; a dead or stuck peer becomes one clear error.
void finish(const c10::intrusive_ptr<c10d::Work>& work, const WorldInfo& world, const char* what) {
  try {
    work->wait();
  } catch (const std::exception& e) {
    throw Error("rank " + std::to_string(world.rank) + " of " + std::to_string(world.world_size),
                std::string("lost contact with the other training processes during ") + what + " (" + first_line(e) +
                    "); a peer process stopped or the network failed");
  }
}
}  // namespace

Communicator::Communicator(const WorldInfo& world, std::chrono::milliseconds timeout)
    : world_(world), impl_(std::make_unique<Impl>()) {
  const std::string where = "rendezvous at " + world.master_addr + ":" + std::to_string(world.master_port);
  try {
    c10d::TCPStoreOptions store_options;
    store_options.port = static_cast<std::uint16_t>(world.master_port);
    store_options.isServer = world.rank == 0;
    store_options.numWorkers = static_cast<size_t>(world.world_size);
    store_options.waitWorkers = true;
    store_options.timeout = timeout;
    impl_->store = c10::make_intrusive<c10d::TCPStore>(world.master_addr, store_options);
    auto options = c10d::ProcessGroupGloo::Options::create(timeout);
    // Peers on one machine talk over loopback; across machines over the interface that
    // GLOO_SOCKET_IFNAME names, else the address this machine's hostname resolves to.
    if (const char* interface = std::getenv("GLOO_SOCKET_IFNAME"); interface && *interface)
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(interface));
    else if (world.master_addr == "127.0.0.1" || world.master_addr == "localhost")
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    else
      options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    options->threads = 2;
    impl_->group = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, world.rank, world.world_size, options);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(where, "rank " + std::to_string(world.rank) + " of " + std::to_string(world.world_size) +
                           " could not join the other training processes (" + first_line(e) +
                           "); start every rank with the same MASTER_ADDR, MASTER_PORT and WORLD_SIZE");
  }
}

Communicator::~Communicator() = default;

void Communicator::broadcast(std::vector<at::Tensor> tensors, int root) {
  if (tensors.empty()) return;
  // One collective for all: pack into one flat buffer per dtype would save round trips, but
  // broadcasts happen once per run, so plain per-tensor calls keep it simple.
  for (const auto& weight : tensors) {
    // Detached: on CUDA tensors Gloo stages through host memory and copies back in place, which
    // autograd refuses on a parameter (a leaf that requires grad).
    at::Tensor t = weight.detach();
    std::vector<at::Tensor> one{t.is_contiguous() ? t : t.contiguous()};
    c10d::BroadcastOptions options;
    options.rootRank = root;
    finish(impl_->group->broadcast(one, options), world_, "the broadcast of the initial weights");
    if (!t.is_contiguous()) t.copy_(one[0]);
  }
}

void Communicator::all_reduce_sum(at::Tensor& tensor) {
  std::vector<at::Tensor> one{tensor};
  finish(impl_->group->allreduce(one), world_, "a sum over the ranks");
}

void Communicator::average_gradients(const std::vector<at::Tensor>& parameters, int64_t bucket_bytes) {
  std::vector<at::Tensor> bucket;
  size_t bytes = 0;
  auto flush = [&]() {
    if (bucket.empty()) return;
    std::vector<at::Tensor> flat_views;
    for (const auto& g : bucket) flat_views.push_back(g.reshape({-1}));
    std::vector<at::Tensor> flat{at::cat(flat_views)};
    finish(impl_->group->allreduce(flat), world_, "the gradient all-reduce");
    flat[0].div_(world_.world_size);
    int64_t offset = 0;
    for (auto& g : bucket) {
      g.copy_(flat[0].narrow(0, offset, g.numel()).view_as(g));
      offset += g.numel();
    }
    bucket.clear();
    bytes = 0;
  };
  for (const auto& p : parameters) {
    at::Tensor g = p.mutable_grad();
    if (!g.defined()) {
      // A parameter the loss did not reach still takes part, so every rank sends the same buckets.
      p.mutable_grad() = at::zeros_like(p);
      g = p.mutable_grad();
    }
    if (!bucket.empty() && (g.scalar_type() != bucket.front().scalar_type() || bytes + g.nbytes() > static_cast<size_t>(bucket_bytes)))
      flush();
    bucket.push_back(g);
    bytes += g.nbytes();
  }
  flush();
}

void Communicator::barrier() {
  finish(impl_->group->barrier(), world_, "a barrier");
}

#else

bool distributed_available() { return false; }

struct Communicator::Impl {};

Communicator::Communicator(const WorldInfo& world, std::chrono::milliseconds)
    : world_(world) {
  throw Error("seg-train", "this build has no c10d/Gloo (Gloo's headers were missing at build time); install "
                           "libgloo-dev and rebuild, or run one process");
}
Communicator::~Communicator() = default;
void Communicator::broadcast(std::vector<at::Tensor>, int) {}
void Communicator::all_reduce_sum(at::Tensor&) {}
void Communicator::average_gradients(const std::vector<at::Tensor>&, int64_t) {}
void Communicator::barrier() {}

#endif

}  // namespace seg
