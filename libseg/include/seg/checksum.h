#pragma once
// Checksums written here rather than borrowed: libseg depends on LibTorch alone (no zlib, no
// OpenSSL). CRC-32 guards each record of a torch.save archive as ZIP records it; SHA-256 the
// weights of a model file (seg/model_file.h).
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace seg {

// CRC-32 as ZIP, gzip and PNG compute it (reflected polynomial 0xEDB88320). `crc` continues
// an earlier value: crc32(b, crc32(a)) equals the CRC-32 of a followed by b.
uint32_t crc32(const void* data, size_t size, uint32_t crc = 0);

// SHA-256 (FIPS 180-4) of a stream of bytes fed in any pieces.
class Sha256 {
 public:
  Sha256();
  Sha256& update(const void* data, size_t size);
  Sha256& update(const std::string& bytes) { return update(bytes.data(), bytes.size()); }
  // The digest as 64 lowercase hexadecimal digits; ends the stream (update no more after it).
  std::string hex_digest();

 private:
  void compress(const uint8_t* block);
  std::array<uint32_t, 8> state_;
  std::array<uint8_t, 64> pending_{};  // the bytes of a block not yet complete
  size_t pending_size_ = 0;
  uint64_t total_size_ = 0;
};

}  // namespace seg
