#pragma once
// Muting descriptor 2 around library calls (io internal; no OpenCV or ITK headers, so that a
// white-box test can include it).

namespace seg::io::detail {

// While alive, the process's stderr goes to /dev/null: libpng, libtiff, libjpeg and ITK's
// NIfTI code print their own warnings and errors there while decoding a damaged file or
// writing to a full disk; the tool's one error line says what is wrong (the tools write to
// seg::tool_messages(), which these windows do not mute). Windows may overlap across threads.
class QuietStderr {
 public:
  QuietStderr();
  ~QuietStderr();
  QuietStderr(const QuietStderr&) = delete;
  QuietStderr& operator=(const QuietStderr&) = delete;
};

}  // namespace seg::io::detail
