// libFuzzer target: seg::fuzz::image (see fuzz_targets.h).
#include "fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  seg::fuzz::image(data, size);
  return 0;
}
