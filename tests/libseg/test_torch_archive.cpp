// seg::torch_archive_problem: sound archives pass; damaged or crafted ones are named before
// LibTorch's reader (which overflows or allocates gigabytes on them) sees them.
#include <seg/checksum.h>
#include <seg/dataset.h>
#include <seg/error.h>
#include <seg/fs.h>
#include <seg/model_file.h>
#include <seg/models.h>
#include <seg/torch_archive.h>
#include <torch/torch.h>

#include <gtest/gtest.h>

#include "fixtures.h"
#include "test_support.h"

namespace fs = std::filesystem;
using seg::testing::contains;

namespace {

std::string saved_pack(const seg::testing::ScratchDir& dir) {
  torch::manual_seed(1);
  seg::save_tensor_pack(seg::testing::random_dataset("d", 3, 8, 8, 2, 2), dir / "pack.pth");
  return seg::read_file(dir / "pack.pth");
}

// Offset of the first central-directory entry (signature PK\1\2).
size_t central_entry(const std::string& bytes) { return bytes.find(std::string("PK\x01\x02", 4)); }

uint32_t u16_at(const std::string& b, size_t at) {
  return static_cast<uint8_t>(b[at]) | static_cast<uint32_t>(static_cast<uint8_t>(b[at + 1])) << 8;
}
uint32_t u32_at(const std::string& b, size_t at) { return u16_at(b, at) | u16_at(b, at + 2) << 16; }

// `bytes` with every record's CRC-32 made to match its data again, in the directory and in a
// local header that holds one: a crafted file, which the CRC does not stop, so that the checks
// behind it must.
std::string with_crcs_recomputed(std::string bytes) {
  const size_t eocd = bytes.rfind(std::string("PK\x05\x06", 4));
  size_t entry = u32_at(bytes, eocd + 16);
  for (uint32_t k = 0; k < u16_at(bytes, eocd + 10); ++k) {
    const size_t local = u32_at(bytes, entry + 42);
    const size_t data = local + 30 + u16_at(bytes, local + 26) + u16_at(bytes, local + 28);
    const uint32_t crc = seg::crc32(bytes.data() + data, u32_at(bytes, entry + 20));
    for (const size_t field : {entry + 16, local + 14})
      if (field == entry + 16 || u32_at(bytes, field) != 0)
        for (int i = 0; i < 4; ++i) bytes[field + i] = static_cast<char>(crc >> (8 * i));
    entry += 46 + u16_at(bytes, entry + 28) + u16_at(bytes, entry + 30) + u16_at(bytes, entry + 32);
  }
  return bytes;
}

}  // namespace

TEST(TorchArchive, WhatWeWriteIsSound) {
  seg::testing::ScratchDir dir("archive");
  EXPECT_EQ(seg::torch_archive_problem(saved_pack(dir)), "");
  seg::Model model;
  model.info.network = {"fcn", 1, 3};
  model.info.classes = seg::ClassTable::numbered(3);
  model.info.input_size = {16, 16};
  model.net = seg::make_network(model.info.network);
  seg::save_model(model, dir / "model.pth");
  EXPECT_EQ(seg::torch_archive_problem(seg::read_file(dir / "model.pth")), "");
}

TEST(TorchArchive, TruncatedOrForeignBytesAreNotArchives) {
  seg::testing::ScratchDir dir("archive");
  const auto bytes = saved_pack(dir);
  EXPECT_TRUE(contains(seg::torch_archive_problem(bytes.substr(0, bytes.size() - 10)), "not a complete torch.save archive"));
  EXPECT_TRUE(contains(seg::torch_archive_problem(""), "not a complete"));
  EXPECT_TRUE(contains(seg::torch_archive_problem("{\"format\": 1}"), "not a complete"));
}

TEST(TorchArchive, ARecordClaimingMoreBytesThanTheFileHoldsIsRejected) {
  seg::testing::ScratchDir dir("archive");
  auto bytes = saved_pack(dir);
  const size_t entry = central_entry(bytes);
  ASSERT_NE(entry, std::string::npos);
  bytes[entry + 24 + 3] = '\x7f';  // uncompressed size of the first record: about 2 GB
  EXPECT_TRUE(contains(seg::torch_archive_problem(bytes), "claims")) << seg::torch_archive_problem(bytes);
}

TEST(TorchArchive, APickleStringLongerThanItsRecordIsRejectedBeforeAnyAllocation) {
  // The input with which fuzz_tensor_pack made torch::pickle_load allocate 4 GB.
  // Its CRCs no longer match (the fuzzer changed the pickle); one who crafts such a file on
  // purpose mends them, so the pickle check must stop it all the same.
  const auto path = fs::path(SEG_SOURCE_DIR) / "fuzz" / "regressions" / "fuzz_tensor_pack" / "oom-pickle-string-length-4gb";
  EXPECT_TRUE(contains(seg::torch_archive_problem(seg::read_file(path)), "fails its CRC-32 check"));
  const auto problem = seg::torch_archive_problem(with_crcs_recomputed(seg::read_file(path)));
  EXPECT_TRUE(contains(problem, "declares 4194304004 bytes")) << problem;
  seg::testing::ScratchDir dir("archive");
  seg::write_file_atomically(dir / "crafted.pth", with_crcs_recomputed(seg::read_file(path)));
  try {
    seg::load_tensor_pack(dir / "crafted.pth");
    FAIL() << "a crafted pack was read";
  } catch (const seg::Error& e) {
    EXPECT_TRUE(contains(e.what(), "not a readable tensor pack: its pickle declares")) << e.what();
  }
}

TEST(TorchArchive, APickleCutShortOrWithAnUnknownOpcodeIsRejected) {
  seg::testing::ScratchDir dir("archive");
  const auto bytes = saved_pack(dir);
  const size_t stop = bytes.find(".PK");  // data.pkl's STOP opcode, then the next record
  ASSERT_NE(stop, std::string::npos);
  auto without_stop = bytes;
  without_stop[stop] = ')';  // EMPTY_TUPLE: the pickle now runs off its record's end
  EXPECT_TRUE(contains(seg::torch_archive_problem(without_stop), "fails its CRC-32 check"));
  without_stop = with_crcs_recomputed(without_stop);
  EXPECT_TRUE(contains(seg::torch_archive_problem(without_stop), "ends before its STOP")) << seg::torch_archive_problem(without_stop);
  auto unknown = bytes;
  unknown[stop] = '\xff';
  unknown = with_crcs_recomputed(unknown);
  EXPECT_TRUE(contains(seg::torch_archive_problem(unknown), "unknown opcode 255")) << seg::torch_archive_problem(unknown);
}

TEST(TorchArchive, DirectoryEntriesAndZip64RecordsMustLieInsideTheFile) {
  // fuzz_tensor_pack's second finding: ZIP64 sizes in an entry whose 512-byte extra field
  // runs past the directory, and a ZIP64 record; LibTorch's ZIP reader read past the buffer.
  const auto path = fs::path(SEG_SOURCE_DIR) / "fuzz" / "regressions" / "fuzz_tensor_pack" / "miniz-overflow-zip64-extra-past-directory";
  EXPECT_TRUE(contains(seg::torch_archive_problem(seg::read_file(path)), "damaged")) << seg::torch_archive_problem(seg::read_file(path));

  // An entry's extra field running past the end of the directory, alone.
  {
    seg::testing::ScratchDir dir("archive");
    auto bytes = saved_pack(dir);
    const size_t last = bytes.rfind(std::string("PK\x01\x02", 4));
    ASSERT_NE(last, std::string::npos);
    bytes[last + 31] = '\x02';  // extra field length += 512
    EXPECT_TRUE(contains(seg::torch_archive_problem(bytes), "ZIP directory is damaged")) << seg::torch_archive_problem(bytes);
  }

  // A ZIP64 locator (the 20 bytes before the end record) pointing outside the file.
  seg::testing::ScratchDir dir("archive");
  auto bytes = saved_pack(dir);
  const size_t locator = bytes.size() - 22 - 20;
  bytes.replace(locator, 4, std::string("PK\x06\x07", 4));
  bytes.replace(locator + 8, 8, std::string("\xff\xff\xff\x7f\x00\x00\x00\x00", 8));
  EXPECT_TRUE(contains(seg::torch_archive_problem(bytes), "ZIP64 directory record is damaged")) << seg::torch_archive_problem(bytes);
}

TEST(TorchArchive, TensorsReachingPastTheirStorageAreRejected) {
  // fuzz_tensor_pack's third finding: "images" of 4 x 8 x 6 with strides (249, 6, 1) over 192
  // bytes; LibTorch builds it unchecked, and reading it read freed memory.
  const auto path = fs::path(SEG_SOURCE_DIR) / "fuzz" / "regressions" / "fuzz_tensor_pack" / "tensor-strides-past-storage";
  seg::testing::ScratchDir dir("archive");
  seg::write_file_atomically(dir / "crafted.pth", with_crcs_recomputed(seg::read_file(path)));  // as above
  try {
    seg::load_tensor_pack(dir / "crafted.pth");
    FAIL() << "a crafted pack was read";
  } catch (const seg::Error& e) {
    EXPECT_TRUE(contains(e.what(), "\"images\" has sizes and strides that reach past its 192 bytes")) << e.what();
  }
  const auto storage = torch::arange(12, torch::kFloat);
  EXPECT_NO_THROW(seg::check_tensor_in_storage(storage.view({3, 4}), "t", "x"));
  EXPECT_NO_THROW(seg::check_tensor_in_storage(storage.as_strided({3, 4}, {4, 1}, 0), "t", "x"));
  EXPECT_NO_THROW(seg::check_tensor_in_storage(storage.as_strided({2, 2}, {0, 0}, 11), "t", "x"));  // broadcast view
  EXPECT_NO_THROW(seg::check_tensor_in_storage(storage.as_strided({0, 99}, {99, 1}, 0), "t", "x"));  // empty
  // What the unpickler makes: metadata set on the TensorImpl, unchecked (as_strided checks).
  auto shifted = storage.clone();
  shifted.unsafeGetTensorImpl()->set_sizes_and_strides(at::IntArrayRef{3, 4}, at::IntArrayRef{4, 1});
  shifted.unsafeGetTensorImpl()->set_storage_offset(1);
  EXPECT_THROW(seg::check_tensor_in_storage(shifted, "t", "x"), seg::Error);
  auto wide = storage.clone();
  wide.unsafeGetTensorImpl()->set_sizes_and_strides(at::IntArrayRef{3, 5}, at::IntArrayRef{4, 1});
  EXPECT_THROW(seg::check_tensor_in_storage(wide, "t", "x"), seg::Error);
  auto huge = storage.clone();
  huge.unsafeGetTensorImpl()->set_sizes_and_strides(at::IntArrayRef{2, 2}, at::IntArrayRef{int64_t{1} << 62, int64_t{1} << 62});
  EXPECT_THROW(seg::check_tensor_in_storage(huge, "t", "x"), seg::Error);  // overflow counts as past the end
}

TEST(TorchArchive, AZip64RecordThatDisagreesWithTheEndRecordIsRejected) {
  // fuzz_tensor_pack's fourth finding: LibTorch's ZIP reader takes the directory's offset from
  // the ZIP64 record whenever there is one, here 2^64 - 1 (the end record says 1426); offset
  // plus size wraps around past its bounds check, and it copied from before the buffer.
  const auto path = fs::path(SEG_SOURCE_DIR) / "fuzz" / "regressions" / "fuzz_tensor_pack" / "miniz-overflow-zip64-directory-offset-wraps-around";
  const auto problem = seg::torch_archive_problem(seg::read_file(path));
  EXPECT_TRUE(contains(problem, "ZIP64 end record gives directory offset 18446744073709551615, its end record 1426")) << problem;
  EXPECT_TRUE(contains(seg::testing::error_of([&] { seg::load_tensor_pack(path); }), "not a readable tensor pack: its ZIP64"));

  // The entry count and the directory's size likewise.
  seg::testing::ScratchDir dir("archive");
  const auto bytes = saved_pack(dir);
  const size_t record = bytes.rfind(std::string("PK\x06\x06", 4));
  ASSERT_NE(record, std::string::npos) << "LibTorch writes ZIP64 end records";
  auto more_entries = bytes;
  more_entries[record + 32] ^= 0x10;
  more_entries[record + 24] ^= 0x10;
  EXPECT_TRUE(contains(seg::torch_archive_problem(more_entries), "gives entry count")) << seg::torch_archive_problem(more_entries);
  auto larger = bytes;
  larger[record + 41] ^= 0x01;
  EXPECT_TRUE(contains(seg::torch_archive_problem(larger), "gives directory size")) << seg::torch_archive_problem(larger);
}

TEST(TorchArchive, AStoredRecordMustMatchItsCrc32) {
  seg::testing::ScratchDir dir("archive");
  auto bytes = saved_pack(dir);
  const size_t name = bytes.find("/data/0");  // the first record's local header, then its data
  ASSERT_NE(name, std::string::npos);
  const size_t header = bytes.rfind(std::string("PK\x03\x04", 4), name);
  const size_t data = header + 30 + static_cast<uint8_t>(bytes[header + 26]) + static_cast<uint8_t>(bytes[header + 28]) +
                      256 * static_cast<uint8_t>(bytes[header + 29]);
  bytes[data + 5] ^= 0x01;
  EXPECT_TRUE(contains(seg::torch_archive_problem(bytes), "record archive/data/0 fails its CRC-32 check")) << seg::torch_archive_problem(bytes);
  seg::write_file_atomically(dir / "flipped.pth", bytes);
  EXPECT_TRUE(contains(seg::testing::error_of([&] { seg::load_tensor_pack(dir / "flipped.pth"); }), "fails its CRC-32 check"));
}

TEST(TorchArchive, LocalHeadersMustAgreeWithTheDirectory) {
  seg::testing::ScratchDir dir("archive");
  const auto bytes = saved_pack(dir);
  const size_t header = bytes.find(std::string("PK\x03\x04", 4));
  // LibTorch's reader looks records up by the directory's names alone: one renamed in its
  // local header would be read without a word.
  auto renamed = bytes;
  renamed[header + 30 + 1] ^= 0x20;
  EXPECT_TRUE(contains(seg::torch_archive_problem(renamed), "local header disagrees")) << seg::torch_archive_problem(renamed);
  auto other_crc = bytes;  // the CRC where the header holds one
  other_crc[header + 6] &= ~0x08;
  EXPECT_TRUE(contains(seg::torch_archive_problem(other_crc), "local header disagrees")) << seg::torch_archive_problem(other_crc);
}

// LibTorch deflates only TorchScript's code records; a deflated pickle or tensor would escape
// the CRC-32 and the pickle checks.
TEST(TorchArchive, OnlyTorchScriptCodeMayBeCompressed) {
  seg::testing::ScratchDir dir("archive");
  auto bytes = saved_pack(dir);
  const size_t entry = bytes.find(std::string("PK\x01\x02", 4));
  const size_t local = bytes.find(std::string("PK\x03\x04", 4));
  ASSERT_EQ(local, 0u);
  bytes[entry + 10] = 8;  // method: deflate, in the directory and in the local header
  bytes[local + 8] = 8;
  EXPECT_TRUE(contains(seg::torch_archive_problem(bytes), "is compressed, which torch.save never does")) << seg::torch_archive_problem(bytes);
}

TEST(TorchArchive, APickleMemoIndexBeyondWhatItCouldHoldIsRejectedBeforeAnyAllocation) {
  // fuzz_tensor_pack's fifth finding: LONG_BINPUT 1869902693 in a 659-byte pickle; LibTorch's
  // unpickler grew its memo to that index, 16 bytes an entry (30 GB). (Saved with its CRCs
  // mended, so that the normal build's replay reaches the pickle check too.)
  const auto path = fs::path(SEG_SOURCE_DIR) / "fuzz" / "regressions" / "fuzz_tensor_pack" / "oom-pickle-memo-index-30gb";
  const auto problem = seg::torch_archive_problem(seg::read_file(path));
  EXPECT_TRUE(contains(problem, "its pickle stores memo entry 1869902693, more than its 659 bytes can make")) << problem;
}

// LibTorch's reader finds records by name; with two of one name, which one it reads is its
// choice, not the directory's.
TEST(TorchArchive, TwoRecordsOfOneNameAreRejected) {
  seg::testing::ScratchDir dir("archive");
  auto bytes = saved_pack(dir);
  for (const char* signature : {"PK\x01\x02", "PK\x03\x04"}) {  // in the directory and the local header
    const size_t name = bytes.find("archive/data/1", bytes.find(std::string(signature, 4)));
    ASSERT_NE(name, std::string::npos);
    bytes[name + 13] = '0';
  }
  bytes = with_crcs_recomputed(bytes);
  EXPECT_TRUE(contains(seg::torch_archive_problem(bytes), "names record archive/data/0 twice")) << seg::torch_archive_problem(bytes);
}
