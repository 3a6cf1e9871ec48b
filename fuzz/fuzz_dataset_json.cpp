// libFuzzer target: seg::fuzz::dataset_json (see fuzz_targets.h).
#include "fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  seg::fuzz::dataset_json(data, size);
  return 0;
}
