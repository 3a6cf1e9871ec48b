#include <seg/error.h>
#include <seg/fs.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
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

}  // namespace seg
