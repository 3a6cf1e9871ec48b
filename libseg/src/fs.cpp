#include <seg/error.h>
#include <seg/fs.h>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

namespace seg {
namespace fs = std::filesystem;

namespace {
fs::path temporary_beside(const fs::path& target) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  std::ostringstream name;
  name << "." << target.filename().string() << ".tmp." << ::getpid() << "." << std::hex << rng();
  return target.parent_path() / name.str();
}

void fsync_path(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}
}  // namespace

void write_atomically(const fs::path& target, const std::function<void(const fs::path&)>& write) {
  const fs::path parent = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  if (!fs::is_directory(parent))
    throw Error(target.string(), "its folder " + parent.string() + " does not exist; create it first");
  if (fs::is_directory(target))
    throw Error(target.string(), "is a folder; give a file name");
  const fs::path tmp = temporary_beside(target);
  try {
    write(tmp);
    if (!fs::exists(tmp)) throw Error(target.string(), "the writer produced no file");
    fsync_path(tmp);
    // Test hook, for tests/tools/test_interrupt.cpp only: when $SEG_TEST_STOP_BEFORE_RENAME
    // names the target's file name, the process stops itself (SIGSTOP) here, with the
    // temporary file written and the target untouched, so a test can SIGKILL it at the
    // worst moment of a write. Unset, it costs one getenv per file written.
    if (const char* stop = std::getenv("SEG_TEST_STOP_BEFORE_RENAME"); stop && target.filename() == stop)
      std::raise(SIGSTOP);
    fs::rename(tmp, target);
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
}

void write_file_atomically(const fs::path& target, const std::string& bytes) {
  write_atomically(target, [&](const fs::path& tmp) {
    std::ofstream out(tmp, std::ios::binary);
    if (!out) throw Error(target.string(), std::string("cannot write: ") + std::strerror(errno));
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) throw Error(target.string(), "write failed (disk full?)");
  });
}

std::string read_file(const fs::path& path) {
  if (!fs::exists(path)) throw Error(path.string(), "no such file");
  if (fs::is_directory(path)) throw Error(path.string(), "is a folder, expected a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path.string(), std::string("cannot read: ") + std::strerror(errno));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

void ensure_writable_dir(const fs::path& dir) {
  std::error_code ec;
  if (fs::exists(dir) && !fs::is_directory(dir))
    throw Error(dir.string(), "exists and is not a folder; choose another output");
  fs::create_directories(dir, ec);
  if (ec) throw Error(dir.string(), "cannot create the output folder: " + ec.message());
  if (::access(dir.c_str(), W_OK) != 0)
    throw Error(dir.string(), "output folder is not writable; choose another one");
}

int remove_stale_temporaries(const fs::path& dir) {
  int removed = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    // ".<name>.tmp.<pid>.<hex>", possibly followed by the target's extension.
    const std::string name = entry.path().filename().string();
    if (name.empty() || name[0] != '.') continue;
    const auto mark = name.rfind(".tmp.");
    if (mark == std::string::npos) continue;
    char* end = nullptr;
    const long pid = std::strtol(name.c_str() + mark + 5, &end, 10);
    if (pid <= 0 || end == nullptr || *end != '.') continue;
    if (pid == static_cast<long>(::getpid()) || ::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;
    std::error_code remove_ec;
    if (entry.is_regular_file(remove_ec) && fs::remove(entry.path(), remove_ec)) ++removed;
  }
  return removed;
}

}  // namespace seg
