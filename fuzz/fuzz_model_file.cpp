// libFuzzer target: seg::fuzz::model_file (see fuzz_targets.h).
#include "fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  seg::fuzz::model_file(data, size);
  return 0;
}
