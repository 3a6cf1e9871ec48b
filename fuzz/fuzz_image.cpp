// libFuzzer target: seg::fuzz::image (see fuzz_targets.h).
#include "fuzz_targets.h"

#ifndef SEG_FUZZ_IMAGE_IO
#error fuzz_image needs SEG_FUZZ_IMAGE_IO (the image layer)
#endif

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  seg::fuzz::image(data, size);
  return 0;
}
