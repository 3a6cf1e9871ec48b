#pragma once
// Data-parallel training across processes and machines with LibTorch's own engine: c10d
// process groups (Gloo) and a TCP store for the rendezvous, as torch.distributed does it.
#include <ATen/core/Tensor.h>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace seg {

// Where this process stands among its peers.
struct WorldInfo {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;        // index on this machine (picks cuda:N)
  int local_world_size = 1;  // processes on this machine (shares the CPU cores)
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::string launcher;      // "torchrun", "mpirun", "srun" or "" (one process)
  bool distributed() const { return world_size > 1; }
};

// Reads the variables torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
// MASTER_ADDR, MASTER_PORT); without them, maps Open MPI's (OMPI_COMM_WORLD_*), MPICH's
// (PMI_RANK, PMI_SIZE, MPI_LOCALRANKID) or Slurm's (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID)
// to them; MASTER_ADDR and MASTER_PORT still come from the environment (defaults
// 127.0.0.1:29500). No such variables: one process. Malformed values: seg::UsageError.
using EnvironmentLookup = std::function<const char*(const char*)>;
WorldInfo world_from_environment(const EnvironmentLookup& lookup = [](const char* name) { return std::getenv(name); });

// True when this build has c10d with Gloo (it needs Gloo's headers at build time).
bool distributed_available();

// A process group over every rank of `world`. Rank 0 hosts the TCP store at
// master_addr:master_port and waits up to `timeout` for the others. Every collective is
// bounded by `timeout` too: a peer that died or hangs turns into seg::Error, never a hang.
// Collectives block until done. They are tested on CPU tensors; Gloo also takes CUDA tensors
// where LibTorch was built with CUDA (not yet tried on a GPU machine).
class Communicator {
 public:
  Communicator(const WorldInfo& world, std::chrono::milliseconds timeout);
  ~Communicator();
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const { return world_.rank; }
  int size() const { return world_.world_size; }

  void broadcast(std::vector<at::Tensor> tensors, int root = 0);  // in place, from root's values
  void all_reduce_sum(at::Tensor& tensor);                          // in place
  // Sums the gradients of `parameters` over the ranks and divides by the world size,
  // packed into flat buckets of at most bucket_bytes (one collective per bucket).
  void average_gradients(const std::vector<at::Tensor>& parameters, int64_t bucket_bytes = 25 << 20);
  void barrier();

 private:
  struct Impl;
  WorldInfo world_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace seg
