// libFuzzer target: seg::fuzz::image_header (see fuzz_image_header.h).
#include "fuzz_image_header.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  seg::fuzz::image_header(data, size);
  return 0;
}
