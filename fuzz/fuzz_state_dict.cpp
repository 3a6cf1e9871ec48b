// libFuzzer target: seg::fuzz::state_dict (see fuzz_targets.h).
#include "fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  seg::fuzz::state_dict(data, size);
  return 0;
}
