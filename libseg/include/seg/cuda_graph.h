#pragma once
// A piece of CUDA work recorded once as a CUDA graph and replayed (issue 5): a training step of
// a small network is hundreds of kernels, each launched by the host, and on a fast GPU the host
// is the bottleneck (bench/results.md, "CUDA graphs": 3 to 4.7 times faster for fcn). The work
// must read and write the same tensors every time (fixed buffers) and make no host-device sync.
// Built only against a LibTorch with CUDA; elsewhere available() is false and the constructor
// throws.
#include <functional>
#include <memory>

namespace seg {

class CudaGraph {
 public:
  static bool available();
  CudaGraph();
  ~CudaGraph();
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;

  // Runs work now on a side stream, ordered after and before the current stream's work: the
  // warm-up a capture needs (cuDNN's algorithm search, lazy initialisations, off the default
  // stream).
  void run_beside(const std::function<void()>& work);
  // Records work without running it; replay() runs it.
  void capture(const std::function<void()>& work);
  void replay();
  bool captured() const { return captured_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  bool captured_ = false;
};

}  // namespace seg
