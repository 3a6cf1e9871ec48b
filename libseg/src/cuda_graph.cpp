#include <seg/cuda_graph.h>
#include <seg/error.h>

#if SEG_WITH_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace seg {

#if SEG_WITH_CUDA

struct CudaGraph::Impl {
  at::cuda::CUDAGraph graph;
  c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool();
};

bool CudaGraph::available() { return true; }

CudaGraph::CudaGraph() : impl_(std::make_unique<Impl>()) {}
CudaGraph::~CudaGraph() = default;

namespace {
// `later` waits, on the device, for what `earlier` has queued so far.
void order_after(const c10::cuda::CUDAStream& earlier, const c10::cuda::CUDAStream& later) {
  at::cuda::CUDAEvent event;
  event.record(earlier);
  event.block(later);
}
}  // namespace

void CudaGraph::run_beside(const std::function<void()>& work) {
  const auto current = c10::cuda::getCurrentCUDAStream();
  order_after(current, impl_->side);
  {
    const c10::cuda::CUDAStreamGuard on_side(impl_->side);
    work();
  }
  order_after(impl_->side, current);
}

void CudaGraph::capture(const std::function<void()>& work) {
  if (captured_) throw Error("seg::CudaGraph", "already captured");
  const auto current = c10::cuda::getCurrentCUDAStream();
  order_after(current, impl_->side);
  {
    const c10::cuda::CUDAStreamGuard on_side(impl_->side);
    impl_->graph.capture_begin();
    try {
      work();
    } catch (...) {
      try {
        impl_->graph.capture_end();  // take the stream out of capture mode; the first error is the one to report
      } catch (...) {
      }
      throw;
    }
    impl_->graph.capture_end();
  }
  order_after(impl_->side, current);
  captured_ = true;
}

void CudaGraph::replay() {
  if (!captured_) throw Error("seg::CudaGraph", "replay before capture");
  impl_->graph.replay();
}

#else

struct CudaGraph::Impl {};

bool CudaGraph::available() { return false; }

CudaGraph::CudaGraph() {
  throw Error("seg::CudaGraph", "this build's LibTorch has no CUDA; build against a CUDA LibTorch for CUDA graphs");
}
CudaGraph::~CudaGraph() = default;
void CudaGraph::run_beside(const std::function<void()>&) {}
void CudaGraph::capture(const std::function<void()>&) {}
void CudaGraph::replay() {}

#endif

}  // namespace seg
