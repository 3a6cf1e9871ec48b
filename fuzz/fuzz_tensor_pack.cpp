// libFuzzer target: seg::fuzz::tensor_pack (see fuzz_targets.h).
#include "fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  seg::fuzz::tensor_pack(data, size);
  return 0;
}
