#pragma once
// What each fuzz target does with one input, shared by the libFuzzer mains (fuzz/*.cpp) and
// by the regression test that replays fuzz/regressions/<target>/* in the normal build
// (tests/io/test_fuzz_regressions.cpp). Readers take paths, so the input goes to a file; an
// exception a reader throws for bad input is the expected outcome, not a finding. A finding
// is a crash, a sanitizer report, a hang or an exception that is not a std::exception.
#include <seg/dataset.h>
#include <seg/model_file.h>
#include <seg/models.h>
#include <seg/state_dict.h>
#ifdef SEG_FUZZ_IMAGE_IO
#include <seg/io/image_io.h>
#endif

#include <cstdint>
#include <string>

#include "fuzz_image_header.h"
#include "fuzz_support.h"

namespace seg::fuzz {

// dataset.json parsing and validation.
inline void dataset_json(const uint8_t* data, size_t size) {
  const auto path = write_input("dataset.json", data, size);
  expect_rejection_or_success([&] {
    const auto spec = DatasetSpec::read(path);
    for (const auto& c : spec.cases) {
      (void)spec.image_path(scratch(), c);
      if (!spec.labels_pattern.empty()) (void)spec.label_path(scratch(), c);
    }
    (void)spec.to_json();
  });
}

// The tensor-pack reader and the checks after it.
inline void tensor_pack(const uint8_t* data, size_t size) {
  const auto path = write_input("pack.pth", data, size);
  expect_rejection_or_success([&] {
    const auto pack = load_tensor_pack(path);
    pack.validate();
    for (const auto& split : pack.splits) (void)pack.subset(split.first);
  });
}

// The model-file reader, and the metadata parser on the raw bytes.
inline void model_file(const uint8_t* data, size_t size) {
  const auto path = write_input("model.pth", data, size);
  expect_rejection_or_success([&] { (void)load_model(path); });
  expect_rejection_or_success(
      [&] { (void)model_info_from_json(std::string(reinterpret_cast<const char*>(data), size), "fuzz"); });
}

// The PyTorch state_dict reader (seg-convert --network), every element of what it returns, and
// the name and shape check of an import: once with the input as a torch.save archive, once as
// a bare pickle whose every storage record holds 1024 bytes (our pickle reader past the
// archive check, which refuses most pickles that are not the lengths they claim).
inline void state_dict(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  static const SegNet net = make_network({"fcn", 1, 2});
  auto use = [&](const StateDict& state) {
    for (const auto& entry : state) (void)entry.second.sum().item<double>();
    load_python_state_dict(*net, "fcn", state, "fuzz");
  };
  expect_rejection_or_success([&] { use(state_dict_from_bytes(bytes, "fuzz")); });
  const StorageRecords records = [](const std::string&) { return std::optional<std::string>(std::string(1024, '\1')); };
  expect_rejection_or_success([&] { use(state_dict_from_pickle(bytes, records, "fuzz")); });
}

#ifdef SEG_FUZZ_IMAGE_IO
// The image readers: OpenCV (PNG, JPEG, TIFF, BMP) and ITK (NIfTI, NRRD, MHA). The first
// byte picks the extension (low 3 bits) and grey conversion (high bit).
inline void image(const uint8_t* data, size_t size) {
  static const char* kExtensions[8] = {".png", ".nii", ".nii.gz", ".nrrd", ".mha", ".tif", ".bmp", ".jpg"};
  if (size < 1) return;
  const auto path = write_input(std::string("input") + kExtensions[data[0] & 7], data + 1, size - 1);
  expect_rejection_or_success([&] {
    io::ReadOptions options;
    options.to_gray = (data[0] & 0x80) != 0;
    const Image read = io::read_image(path, options);
    (void)read.pixels.sum().item<double>();
  });
  expect_rejection_or_success([&] { (void)io::read_label_map(path); });
}
#endif

}  // namespace seg::fuzz
