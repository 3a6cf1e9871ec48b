// io mutes descriptor 2 while a library decodes or writes; films are read on several threads at
// once, so the windows overlap, and the tools' own messages must get through them.
#include "../../io/src/quiet_stderr.h"

#include <seg/fs.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_support.h"

namespace {

ino_t inode_of_stderr() {
  struct stat st {};
  ::fstat(STDERR_FILENO, &st);
  return st.st_ino;
}

TEST(QuietStderr, WindowsThatOverlapOnTwoThreadsGiveStderrBack) {
  using seg::io::detail::QuietStderr;
  const ino_t before = inode_of_stderr();
  std::promise<void> a_muted, b_muted, a_done;
  ino_t while_b_alone = before;
  // A mutes, B mutes, A ends, B ends: the order in which B would restore A's /dev/null.
  std::thread a([&] {
    {
      const QuietStderr quiet;
      a_muted.set_value();
      b_muted.get_future().wait();
    }
    a_done.set_value();
  });
  std::thread b([&] {
    a_muted.get_future().wait();
    {
      const QuietStderr quiet;
      b_muted.set_value();
      a_done.get_future().wait();
      while_b_alone = inode_of_stderr();
    }
  });
  a.join();
  b.join();
  EXPECT_NE(while_b_alone, before) << "still muted while the other thread decodes";
  EXPECT_EQ(inode_of_stderr(), before) << "descriptor 2 is the process's stderr again";
}

TEST(QuietStderr, ToolMessagesGetThroughAMutedStderr) {
  // tool_messages() duplicates descriptor 2 on its first use: point it at a file first. No other
  // test of this binary uses it.
  const seg::testing::ScratchDir dir("quiet");
  const auto log = dir / "stderr.txt";
  const int saved = ::dup(STDERR_FILENO);
  const int file = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(file, 0);
  ::dup2(file, STDERR_FILENO);
  ::close(file);
  std::ostream& messages = seg::tool_messages();
  {
    const seg::io::detail::QuietStderr quiet;
    messages << "seg-segment: a line the user must see\n";
    std::fputs("libpng warning: noise\n", stderr);
    std::fflush(stderr);
  }
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  std::ifstream in(log);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), "seg-segment: a line the user must see\n");
}

}  // namespace
