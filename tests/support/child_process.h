#pragma once
// Running the real tool binaries as child processes (for kills, signals and several ranks).
#include <seg/fs.h>

#include <filesystem>
#include <string>
#include <vector>

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace seg::testing {

// Starts `program args...` with stdout and stderr into `log` and the extra environment
// `env` ("NAME=value" each). Returns the child's pid.
inline pid_t spawn(const std::filesystem::path& program, const std::vector<std::string>& args,
                   const std::filesystem::path& log, const std::vector<std::string>& env = {}) {
  std::vector<std::string> argv_text{program.string()};
  argv_text.insert(argv_text.end(), args.begin(), args.end());
  std::vector<std::string> env_text = env;  // putenv keeps the pointers: copies made before fork
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    for (auto& e : env_text) ::putenv(e.data());
    ::setenv("OMP_NUM_THREADS", "1", 1);
    std::vector<char*> argv;
    for (auto& a : argv_text) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return pid;
}

// Waits for the child to end; its exit code (or 128 + signal).
inline int wait_exit(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

inline int run_process(const std::filesystem::path& program, const std::vector<std::string>& args,
                       const std::filesystem::path& log, const std::vector<std::string>& env = {}) {
  return wait_exit(spawn(program, args, log, env));
}

inline std::string text_of(const std::filesystem::path& path) {
  return std::filesystem::exists(path) ? seg::read_file(path) : std::string();
}

// A TCP port on loopback that was free a moment ago (for rendezvous in parallel tests).
inline int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace seg::testing
