#pragma once
// An archive's bytes for LibTorch's PyTorchStreamReader (a private header of libseg).
#include <caffe2/serialize/read_adapter_interface.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

namespace seg::detail {

// LibTorch's MemoryReadAdapter copies whatever it is asked for; this one stops at the end of
// the bytes, so that a read past them fails in the ZIP code instead of reading beyond them.
class BoundedReader final : public caffe2::serialize::ReadAdapterInterface {
 public:
  explicit BoundedReader(const std::string& bytes) : bytes_(bytes) {}
  size_t size() const override { return bytes_.size(); }
  size_t read(uint64_t pos, void* buf, size_t n, const char* /*what*/) const override {
    if (pos >= bytes_.size()) return 0;
    n = static_cast<size_t>(std::min<uint64_t>(n, bytes_.size() - pos));
    std::memcpy(buf, bytes_.data() + pos, n);
    return n;
  }

 private:
  const std::string& bytes_;
};

}  // namespace seg::detail
