#include <seg/error.h>
#include <seg/fs.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <streambuf>
#include <thread>
#include <utility>

namespace seg {
namespace fs = std::filesystem;

namespace {

constexpr std::string_view kTemporaryPrefix = ".segtmp.";

// The extension a writer library sees: ".nii.gz" whole, else the last one.
std::string extension_of(const fs::path& target) {
  const std::string name = target.filename().string();
  constexpr std::string_view gz = ".nii.gz";
  if (name.size() > gz.size() && name.compare(name.size() - gz.size(), gz.size(), gz) == 0) return std::string(gz);
  return target.extension().string();
}

fs::path temporary_beside(const fs::path& target) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  std::ostringstream name;
  name << kTemporaryPrefix << ::getpid() << "@" << machine_tag() << "." << std::hex << (rng() & 0xffffffffu)
       << extension_of(target);
  const fs::path parent = target.parent_path();
  return parent.empty() ? fs::path(name.str()) : parent / name.str();
}

// The temporaries in flight, for the signal handler's thread to remove.
std::mutex& in_flight_mutex() {
  static std::mutex mutex;
  return mutex;
}
// A file, a folder (removed with what it holds), or a folder a run made on the way to its
// output (removed only while empty).
enum class InFlight { file, folder, made_folder };
std::map<std::string, InFlight>& in_flight() {
  static std::map<std::string, InFlight> paths;
  return paths;
}
void track(const fs::path& path, InFlight kind) {
  const std::lock_guard<std::mutex> lock(in_flight_mutex());
  in_flight()[path.string()] = kind;
}
void untrack(const fs::path& path) {
  const std::lock_guard<std::mutex> lock(in_flight_mutex());
  in_flight().erase(path.string());
}

// Set by the signal handler: from then on no output is renamed into place, so an interrupted
// run ends with what it had finished and nothing that was in flight.
std::atomic<bool> interrupted{false};
static_assert(std::atomic<bool>::is_always_lock_free, "set from a signal handler");

// Called before every rename that makes an output appear: once a signal has arrived, the
// thread waits here for the signal's thread to end the process.
void stop_if_interrupted() {
  while (interrupted) ::pause();
}

// Test hook: the write numbered `failing_write()` fails as on a full disk (its writer gets
// half the bytes out), so that the tests cover the failure path without a small file system.
// Set from $SEG_TEST_FAIL_WRITE=N (the N-th file the process writes) or fail_write_for_testing.
std::atomic<int>& writes_started() {
  static std::atomic<int> count{0};
  return count;
}
std::atomic<int>& failing_write() {
  static std::atomic<int> ordinal{[] {
    const char* value = std::getenv("SEG_TEST_FAIL_WRITE");
    return value ? std::atoi(value) : 0;
  }()};
  return ordinal;
}
bool simulates_full_disk(int ordinal) { return failing_write() > 0 && ordinal == failing_write(); }

std::string reason_of_errno(int error) {
  switch (error) {
    case ENOSPC:
    case EDQUOT: return "no space left on device";
    case EACCES:
    case EPERM: return "cannot write here: permission denied; choose another output";
    case EROFS: return "cannot write here: read-only file system; choose another output";
    case ENAMETOOLONG: return "the name is too long for the file system; choose a shorter one";
    default: return std::string("cannot write: ") + std::strerror(error);
  }
}

bool disk_full(const fs::path& folder) {
  struct statvfs stats {};
  return ::statvfs(folder.c_str(), &stats) == 0 && stats.f_bavail == 0;
}

// Writes all of `bytes` to the new file `tmp`, fsyncs and closes it; throws with errno's reason.
void write_checked(const fs::path& tmp, std::string_view bytes, const fs::path& target, bool full_disk) {
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0) throw Error(target.string(), reason_of_errno(errno));
  auto fail = [&](int error) {
    ::close(fd);
    throw Error(target.string(), reason_of_errno(error));
  };
  const size_t allowed = full_disk ? bytes.size() / 2 : bytes.size();
  for (size_t done = 0; done < bytes.size();) {
    if (done >= allowed) fail(ENOSPC);
    const ssize_t n = ::write(fd, bytes.data() + done, allowed - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(errno);
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 && errno != EINVAL) fail(errno);
  if (::close(fd) != 0) throw Error(target.string(), reason_of_errno(errno));
}

// fsync of a file another library wrote.
void sync_written(const fs::path& tmp, const fs::path& target) {
  const int fd = ::open(tmp.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(target.string(), reason_of_errno(errno));
  if (::fsync(fd) != 0 && errno != EINVAL) {
    const int error = errno;
    ::close(fd);
    throw Error(target.string(), reason_of_errno(error));
  }
  ::close(fd);
}

void check_target(const fs::path& target) {
  const fs::path parent = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  if (!fs::is_directory(parent))
    throw Error(target.string(), "its folder " + parent.string() + " does not exist; create it first");
  if (fs::is_directory(target)) throw Error(target.string(), "is a folder; give a file name");
  // Said here, as writers that cannot create their file mostly say nothing of why.
  if (::access(parent.c_str(), W_OK) != 0)
    throw Error(target.string(), "its folder " + parent.string() + " is not writable; choose another output");
}

// The temporary written and checked: renamed over the target, or removed with the reason.
void commit(const fs::path& tmp, const fs::path& target, const VerifyWritten& verify, bool full_disk) {
  stop_if_interrupted();  // the signal handler may have removed tmp: that is no full disk
  std::error_code ec;
  const auto size = fs::file_size(tmp, ec);
  const fs::path parent = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  if (ec || size == 0)
    throw Error(target.string(), full_disk || disk_full(parent) ? reason_of_errno(ENOSPC) : "the writer produced no data");
  if (verify) {
    try {
      verify(tmp);
    } catch (const Error&) {
      if (full_disk || disk_full(parent)) throw Error(target.string(), reason_of_errno(ENOSPC));
      throw Error(target.string(), "the written file is incomplete (the writer failed; is the disk full?)");
    }
  }
  // Test hook, for tests/tools/test_interrupt.cpp only: when $SEG_TEST_STOP_BEFORE_RENAME
  // names the target's file name, the process stops itself (SIGSTOP) here, with the
  // temporary file written and the target untouched, so a test can kill it at the worst
  // moment of a write.
  if (const char* stop = std::getenv("SEG_TEST_STOP_BEFORE_RENAME"); stop && target.filename() == stop) {
    std::raise(SIGSTOP);
    // A signal sent while stopped may be taken by another thread, whose handler then runs a
    // moment later: give it that moment, so the test sees the file in flight removed.
    for (int i = 0; i < 100 && !interrupted; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  stop_if_interrupted();
  if (::rename(tmp.c_str(), target.c_str()) != 0) throw Error(target.string(), reason_of_errno(errno));
}

// Runs `body` with `tmp` tracked for the signal handler; on failure removes it and rethrows.
template <typename Body>
void with_temporary(const fs::path& tmp, Body&& body) {
  track(tmp, InFlight::file);
  try {
    body();
  } catch (...) {
    stop_if_interrupted();  // a write that failed because the handler removed its file says nothing
    std::error_code ec;
    fs::remove(tmp, ec);
    untrack(tmp);
    throw;
  }
  untrack(tmp);
}

}  // namespace

void fail_write_for_testing(int nth) { failing_write() = nth > 0 ? writes_started() + nth : 0; }

const std::string& machine_tag() {
  static const std::string tag = [] {
    char host[256] = {};
    std::string kept;
    if (::gethostname(host, sizeof host - 1) == 0)
      for (const char* c = host; *c != '\0' && *c != '.' && kept.size() < 32; ++c)
        if (std::isalnum(static_cast<unsigned char>(*c)) || *c == '-') kept += *c;
    return kept.empty() ? std::string("host") : kept;
  }();
  return tag;
}

bool is_temporary_name(const std::string& file_name) { return file_name.rfind(kTemporaryPrefix, 0) == 0; }

void write_atomically(const fs::path& target, const std::function<void(const fs::path&)>& write,
                      const VerifyWritten& verify) {
  check_target(target);
  const bool full_disk = simulates_full_disk(++writes_started());
  const fs::path tmp = temporary_beside(target);
  with_temporary(tmp, [&] {
    write(tmp);
    if (!fs::exists(tmp)) throw Error(target.string(), "the writer produced no file");
    if (full_disk) fs::resize_file(tmp, fs::file_size(tmp) / 2);
    sync_written(tmp, target);
    commit(tmp, target, verify, full_disk);
  });
}

void write_file_atomically(const fs::path& target, std::string_view bytes) {
  check_target(target);
  const bool full_disk = simulates_full_disk(++writes_started());
  const fs::path tmp = temporary_beside(target);
  with_temporary(tmp, [&] {
    write_checked(tmp, bytes, target, full_disk);
    commit(tmp, target, {}, full_disk);
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

std::string read_regular_file(const fs::path& path) {
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (fs::exists(status) && !fs::is_regular_file(status) && !fs::is_directory(status))
    throw Error(path.string(), "is not a regular file (a FIFO or a device); give a file");
  return read_file(path);
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
    // ".segtmp.<pid>@<machine>.<hex>[extension]" (".segtmp.<pid>.<hex>..." from earlier versions)
    const std::string name = entry.path().filename().string();
    if (!is_temporary_name(name)) continue;
    char* end = nullptr;
    const long pid = std::strtol(name.c_str() + kTemporaryPrefix.size(), &end, 10);
    if (pid <= 0 || end == nullptr || (*end != '.' && *end != '@')) continue;
    if (*end == '@') {  // a process of another machine sharing the folder may still run: leave it
      const std::string_view machine(end + 1);
      if (machine.substr(0, machine.find('.')) != machine_tag()) continue;
    }
    if (pid == static_cast<long>(::getpid()) || ::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;
    std::error_code remove_ec;
    if (fs::remove_all(entry.path(), remove_ec) > 0 && !remove_ec) ++removed;
  }
  return removed;
}

void FileSet::write(const fs::path& file, const std::function<void()>& writer) {
  std::error_code ec;
  const bool existed = fs::exists(fs::symlink_status(file, ec));
  writer();
  if (!existed) added_.push_back(file);
}

FileSet::~FileSet() {
  std::error_code ec;
  for (const auto& file : added_) fs::remove(file, ec);
}

StagedFolder::StagedFolder(fs::path target) : target_(std::move(target)) {
  if (!target_.has_filename()) target_ = target_.parent_path();  // "out/"
  std::error_code ec;
  inside_target_ = fs::is_directory(target_, ec);
  fs::path parent = target_;
  if (!inside_target_) {
    parent = target_.parent_path().empty() ? fs::path(".") : target_.parent_path();
    for (fs::path p = parent; !p.empty() && !fs::exists(fs::symlink_status(p, ec)); p = p.parent_path()) first_created_ = p;
  }
  // Known before they are made, so that a signal removes them too.
  if (!first_created_.empty())
    for (fs::path p = parent; !p.empty(); p = p.parent_path()) {
      track(p, InFlight::made_folder);
      if (p == first_created_) break;
    }
  try {
    ensure_writable_dir(parent);
  } catch (const Error&) {
    remove_created_parents();
    throw;
  }
  remove_stale_temporaries(parent);  // a killed run's staging folder, in it or beside it
  staging_ = parent / temporary_beside(fs::path("folder")).filename();
  track(staging_, InFlight::folder);
  fs::create_directory(staging_, ec);
  if (ec) {
    untrack(staging_);
    remove_created_parents();
    throw Error(target_.string(), std::string("cannot create a temporary folder ") + (inside_target_ ? "in" : "beside") + " it: " + ec.message());
  }
}

void StagedFolder::remove_created_parents() const {
  if (first_created_.empty()) return;
  const fs::path parent = target_.parent_path();
  std::error_code ec;
  // Innermost first, and only while empty: a folder someone else filled meanwhile stays.
  bool removing = true;
  for (fs::path p = parent; !p.empty(); p = p.parent_path()) {
    removing = removing && fs::remove(p, ec) && !ec;
    untrack(p);
    if (p == first_created_) break;
  }
}

void StagedFolder::keep_created_parents() const {
  if (first_created_.empty()) return;
  for (fs::path p = target_.parent_path(); !p.empty(); p = p.parent_path()) {
    untrack(p);
    if (p == first_created_) break;
  }
}

StagedFolder::~StagedFolder() {
  if (committed_) return;
  std::error_code ec;
  fs::remove_all(staging_, ec);
  untrack(staging_);
  remove_created_parents();
}

namespace {
// Throws, before anything moves, when a file of `from` cannot take its place under `to`: a link
// on the way, a file where a folder goes or the reverse, a folder that is not writable or on
// another file system than the staged files (a mount point inside the output).
void check_move(const fs::path& from, const fs::path& to, const fs::path& target) {
  struct stat staged {}, destination_folder {};
  if (::stat(from.c_str(), &staged) == 0 && ::stat(to.c_str(), &destination_folder) == 0) {
    if (staged.st_dev != destination_folder.st_dev)
      throw Error(to.string(), "is on another file system than the rest of " + target.string() +
                                   " (a mount point inside it), so its files cannot be replaced whole; choose another output folder");
    if (::access(to.c_str(), W_OK) != 0)
      throw Error(to.string(), "is not writable, so its files cannot be replaced; make it writable or choose another output folder");
  }
  for (const auto& entry : fs::directory_iterator(from)) {
    const fs::path destination = to / entry.path().filename();
    std::error_code ec;
    const auto status = fs::symlink_status(destination, ec);
    if (fs::is_symlink(status))
      throw Error(destination.string(), "is a symbolic link; outputs stay inside " + target.string() +
                                            ", so it is not followed: remove it or choose another output folder");
    if (entry.is_directory()) {
      if (fs::exists(status) && !fs::is_directory(status))
        throw Error(destination.string(), "is a file where the output has a folder; remove it or choose another output");
      if (fs::is_directory(status)) check_move(entry.path(), destination, target);
    } else if (fs::is_directory(status)) {
      throw Error(destination.string(), "is a folder where the output has a file; remove it or choose another output");
    }
  }
}

// Moves every file under `from` to the same place under `to`, replacing namesakes only.
void move_into(const fs::path& from, const fs::path& to) {
  for (const auto& entry : fs::directory_iterator(from)) {
    const fs::path destination = to / entry.path().filename();
    if (entry.is_directory()) {
      fs::create_directories(destination);
      move_into(entry.path(), destination);
    } else if (::rename(entry.path().c_str(), destination.c_str()) != 0) {
      throw Error(destination.string(), reason_of_errno(errno));
    }
  }
}
}  // namespace

void StagedFolder::commit() {
  stop_if_interrupted();
  std::error_code ec;
  if (!inside_target_ && !fs::exists(fs::symlink_status(target_, ec))) {
    if (::rename(staging_.c_str(), target_.c_str()) != 0) throw Error(target_.string(), reason_of_errno(errno));
  } else {
    if (!fs::is_directory(target_)) throw Error(target_.string(), "exists and is not a folder; choose another output");
    check_move(staging_, target_, target_);
    move_into(staging_, target_);
    fs::remove_all(staging_, ec);
  }
  committed_ = true;
  untrack(staging_);
  keep_created_parents();
}

namespace {
int signal_pipe[2] = {-1, -1};

int saved_stderr() {
  static const int fd = [] {
    const int copy = ::fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
    return copy >= 0 ? copy : STDERR_FILENO;
  }();
  return fd;
}

// Writes straight to the saved descriptor: no buffer to lose when the process ends with _exit.
class DescriptorBuffer : public std::streambuf {
 public:
  explicit DescriptorBuffer(int fd) : fd_(fd) {}

 protected:
  int_type overflow(int_type c) override {
    if (traits_type::eq_int_type(c, traits_type::eof())) return traits_type::not_eof(c);
    const char byte = traits_type::to_char_type(c);
    return xsputn(&byte, 1) == 1 ? c : traits_type::eof();
  }
  std::streamsize xsputn(const char* text, std::streamsize count) override {
    std::streamsize done = 0;
    while (done < count) {
      const auto n = ::write(fd_, text + done, static_cast<size_t>(count - done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      done += n;
    }
    return done;
  }

 private:
  int fd_;
};

extern "C" void forward_signal(int signal_number) {
  const int saved = errno;
  interrupted = true;
  const unsigned char byte = static_cast<unsigned char>(signal_number);
  [[maybe_unused]] const auto written = ::write(signal_pipe[1], &byte, 1);
  errno = saved;
}

const char* signal_name(int signal_number) {
  switch (signal_number) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    case SIGHUP: return "SIGHUP";
    default: return "a signal";
  }
}
}  // namespace

void remove_temporaries_on_signals(const std::string& program) {
  saved_stderr();
  if (signal_pipe[0] >= 0 || ::pipe2(signal_pipe, O_CLOEXEC) != 0) return;
  for (int signal_number : {SIGINT, SIGTERM, SIGHUP}) {
    struct sigaction current {};
    if (::sigaction(signal_number, nullptr, &current) == 0 && current.sa_handler == SIG_IGN) continue;
    struct sigaction action {};
    action.sa_handler = forward_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    ::sigaction(signal_number, &action, nullptr);
  }
  // The handler only writes to the pipe; this thread does the removing, outside signal context.
  std::thread([program] {
    unsigned char byte = 0;
    while (::read(signal_pipe[0], &byte, 1) != 1) {
    }
    int removed = 0;
    {
      const std::lock_guard<std::mutex> lock(in_flight_mutex());
      for (const auto& [path, kind] : in_flight()) {
        std::error_code ec;
        if (kind == InFlight::folder) removed += fs::remove_all(path, ec) > 0 ? 1 : 0;
        if (kind == InFlight::file) removed += fs::remove(path, ec) ? 1 : 0;
      }
      // Then the folders made on the way, innermost first (a path sorts after its parent), each
      // only when empty.
      for (auto it = in_flight().rbegin(); it != in_flight().rend(); ++it) {
        std::error_code ec;
        if (it->second == InFlight::made_folder) fs::remove(it->first, ec);
      }
    }
    const std::string line = program + ": interrupted by " + signal_name(byte) + (removed > 0 ? "; unfinished output removed" : "") +
                             "; outputs already written are whole\n";
    [[maybe_unused]] const auto written = ::write(saved_stderr(), line.data(), line.size());
    ::_exit(128 + byte);
  }).detach();
}

std::ostream& tool_messages() {
  static DescriptorBuffer buffer(saved_stderr());
  static std::ostream stream(&buffer);
  return stream;
}

bool tool_messages_on_terminal() { return isatty(saved_stderr()) != 0; }

}  // namespace seg
