// The output contract's pieces: names from data, inputs never written, outputs confined to
// their folder, existing files replaced only when asked, writes whole or absent.
#include <seg/error.h>
#include <seg/fs.h>
#include <seg/output.h>

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "fixtures.h"
#include "test_support.h"

namespace fs = std::filesystem;
using seg::testing::contains;
using seg::testing::error_of;
using seg::testing::list_files;
using seg::testing::ScratchDir;

namespace {

void write_text(const fs::path& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

// A pid that no process has any more: a child that has exited and been reaped.
pid_t dead_pid() {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return pid;
}

struct NameCase {
  const char* label;
  std::string name;
};
void PrintTo(const NameCase& c, std::ostream* os) { *os << c.label; }

class InvalidName : public ::testing::TestWithParam<NameCase> {};

TEST_P(InvalidName, IsRefusedWithWhatItMustLookLike) {
  const auto& name = GetParam().name;
  EXPECT_FALSE(seg::is_valid_name(name));
  const std::string message = error_of([&] { seg::check_name(name, "case ID", "data.json"); });
  EXPECT_TRUE(contains(message, "data.json: case ID")) << message;
  EXPECT_TRUE(contains(message, "letters, digits")) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << "one line: " << message;
}

INSTANTIATE_TEST_SUITE_P(
    Names, InvalidName,
    ::testing::Values(NameCase{"Empty", ""}, NameCase{"ParentFolder", "../../x"}, NameCase{"Dots", ".."},
                      NameCase{"Absolute", "/etc/passwd"}, NameCase{"Slash", "a/b"}, NameCase{"Hidden", ".segtmp.1.x"},
                      NameCase{"LooksLikeAnOption", "-rf"}, NameCase{"Space", "a b"}, NameCase{"Backslash", "a\\b"},
                      NameCase{"NewLine", "a\nb"}, NameCase{"Nul", std::string("a\0b", 3)}, NameCase{"NonAscii", "caf\xc3\xa9"},
                      NameCase{"TooLong", std::string(seg::kMaxNameBytes + 1, 'a')}),
    [](const auto& info) { return std::string(info.param.label); });

TEST(Names, LettersDigitsDotsDashesAndUnderscoresUpTo200BytesAreValid) {
  for (const std::string name : {"JPCNN009", "a", "0", "case.001_b-2", "CHNCXR_0001_0.png", "1.2.840.113619.2.55"})
    EXPECT_TRUE(seg::is_valid_name(name)) << name;
  EXPECT_TRUE(seg::is_valid_name(std::string(seg::kMaxNameBytes, 'a')));
}

TEST(Inputs, KnowsAFileByAnyPathToIt) {
  ScratchDir dir;
  write_text(dir / "a.png", "x");
  write_text(dir / "b.png", "y");
  fs::create_directories(dir / "sub");
  fs::create_symlink(dir / "a.png", dir / "sub" / "link.png");
  fs::create_hard_link(dir / "a.png", dir / "hard.png");
  seg::Inputs inputs;
  inputs.add(dir / "a.png");
  inputs.add(dir / "missing.png");  // ignored
  EXPECT_FALSE(inputs.find(dir / "a.png").empty());
  EXPECT_FALSE(inputs.find(dir / "sub" / ".." / "a.png").empty());
  EXPECT_FALSE(inputs.find(dir / "sub" / "link.png").empty());
  EXPECT_FALSE(inputs.find(dir / "hard.png").empty());
  EXPECT_TRUE(inputs.find(dir / "b.png").empty());
  EXPECT_TRUE(inputs.find(dir / "missing.png").empty());
}

TEST(CheckOutputFile, RefusesInputsLinksFoldersAndExistingFilesUnlessAsked) {
  ScratchDir dir;
  write_text(dir / "in.png", "x");
  write_text(dir / "old.csv", "kept");
  fs::create_symlink(dir / "nowhere", dir / "dangling.csv");
  fs::create_directories(dir / "folder.csv");
  seg::Inputs inputs;
  inputs.add(dir / "in.png");
  const auto refuse = seg::Existing::refuse;
  EXPECT_TRUE(contains(error_of([&] { seg::check_output_file(dir / "in.png", inputs, seg::Existing::overwrite, "ask"); }),
                       "is an input of this run"));
  EXPECT_TRUE(contains(error_of([&] { seg::check_output_file(dir / "dangling.csv", inputs, refuse, "ask"); }),
                       "is a symbolic link"));
  EXPECT_TRUE(contains(error_of([&] { seg::check_output_file(dir / "folder.csv", inputs, refuse, "ask"); }), "is a folder"));
  const std::string exists = error_of([&] { seg::check_output_file(dir / "old.csv", inputs, refuse, "pass --overwrite"); });
  EXPECT_TRUE(contains(exists, "old.csv: exists; pass --overwrite")) << exists;
  EXPECT_FALSE(seg::check_output_file(dir / "old.csv", inputs, seg::Existing::skip, "ask"));
  EXPECT_TRUE(seg::check_output_file(dir / "old.csv", inputs, seg::Existing::overwrite, "ask"));
  EXPECT_TRUE(seg::check_output_file(dir / "new.csv", inputs, refuse, "ask"));
  EXPECT_EQ(seg::read_file(dir / "old.csv"), "kept");
}

TEST(OutputFolder, KeepsEveryOutputInsideItsFolder) {
  ScratchDir dir;
  fs::create_directories(dir / "out");
  fs::create_directories(dir / "elsewhere");
  fs::create_directory_symlink(dir / "elsewhere", dir / "out" / "overlays");
  const seg::OutputFolder folder(dir / "out", {}, seg::Existing::refuse, "ask");
  EXPECT_EQ(folder.file("JPCNN009.png"), dir / "out" / "JPCNN009.png");
  EXPECT_EQ(folder.file("masks/a_heart.png"), dir / "out" / "masks" / "a_heart.png");
  for (const std::string hostile : {"../x.png", "masks/../../x.png", "/etc/x.png", "a//b.png", ".hidden.png", ""})
    EXPECT_TRUE(contains(error_of([&] { folder.file(hostile); }), "cannot name an output file")) << hostile;
  EXPECT_NO_THROW(folder.file(std::string(seg::kMaxFileNameBytes, 'x')));
  EXPECT_TRUE(contains(error_of([&] { folder.file(std::string(seg::kMaxFileNameBytes + 1, 'x')); }), "cannot name"));
  EXPECT_TRUE(contains(error_of([&] { folder.file("overlays/a.png"); }), "is a symbolic link")) << "a link leading out";
  fs::create_symlink(dir / "elsewhere" / "target.png", dir / "out" / "linked.png");
  EXPECT_TRUE(contains(error_of([&] { folder.file("linked.png"); }), "is a symbolic link"));
}

TEST(OutputFolder, RefusesToBeAnInputOrAFile) {
  ScratchDir dir;
  fs::create_directories(dir / "images");
  write_text(dir / "file", "x");
  seg::Inputs inputs;
  inputs.add(dir / "images");
  EXPECT_TRUE(contains(error_of([&] { seg::OutputFolder(dir / "images", inputs, seg::Existing::overwrite, ""); }),
                       "is an input of this run"));
  EXPECT_TRUE(contains(error_of([&] { seg::OutputFolder(dir / "file", {}, seg::Existing::overwrite, ""); }),
                       "is not a folder"));
}

TEST(OutputFolder, ChecksEveryPlannedOutputBeforeAnythingIsWritten) {
  ScratchDir dir;
  fs::create_directories(dir / "out");
  write_text(dir / "out" / "a.png", "old a");
  write_text(dir / "out" / "b.png", "old b");
  write_text(dir / "in.png", "input");
  seg::Inputs inputs;
  inputs.add(dir / "in.png");
  const std::vector<fs::path> planned{dir / "out" / "a.png", dir / "out" / "b.png", dir / "out" / "c.png"};
  const seg::OutputFolder refusing(dir / "out", inputs, seg::Existing::refuse, "pass --overwrite");
  const std::string message = error_of([&] { refusing.check(planned); });
  EXPECT_TRUE(contains(message, "a.png: exists (and 1 more outputs of this run); pass --overwrite")) << message;
  const seg::OutputFolder skipping(dir / "out", inputs, seg::Existing::skip, "");
  EXPECT_EQ(skipping.check(planned), (std::vector<bool>{true, true, false}));
  EXPECT_TRUE(contains(error_of([&] { skipping.check({dir / "in.png"}); }), "is an input of this run"));
  EXPECT_EQ(seg::read_file(dir / "out" / "a.png"), "old a");
}

TEST(OutputFolder, CreateMakesItsFoldersAndRemovesWhatKilledRunsLeft) {
  ScratchDir dir;
  const seg::OutputFolder folder(dir / "out", {}, seg::Existing::refuse, "");
  EXPECT_FALSE(fs::exists(dir / "out")) << "nothing is created before the checks";
  fs::create_directories(dir / "out" / "masks");
  const std::string dead = std::to_string(dead_pid());
  const std::string stale = ".segtmp." + dead + "@" + seg::machine_tag() + ".1f.png";
  const std::string stale_of_earlier_version = ".segtmp." + dead + ".3f.png";
  const std::string live = ".segtmp." + std::to_string(::getpid()) + "@" + seg::machine_tag() + ".2f.png";
  // Another machine writing to the same shared folder: its process ids mean nothing here.
  const std::string other_machine = ".segtmp." + dead + "@" + seg::machine_tag() + "-other.4f.png";
  for (const auto& name : {stale, stale_of_earlier_version}) write_text(dir / "out" / "masks" / name, "half");
  write_text(dir / "out" / live, "being written");
  write_text(dir / "out" / other_machine, "being written elsewhere");
  folder.create({"masks", "overlays"});
  EXPECT_TRUE(fs::is_directory(dir / "out" / "overlays"));
  EXPECT_FALSE(fs::exists(dir / "out" / "masks" / stale));
  EXPECT_FALSE(fs::exists(dir / "out" / "masks" / stale_of_earlier_version));
  EXPECT_TRUE(fs::exists(dir / "out" / live)) << "a running process's temporary stays";
  EXPECT_TRUE(fs::exists(dir / "out" / other_machine)) << "another machine's temporary stays";
}

TEST(WriteAtomically, TemporaryNamesAreShortSoLongTargetNamesWork) {
  ScratchDir dir;
  const std::string name = std::string(240, 'n') + ".png";  // legal: NAME_MAX is 255
  seg::write_file_atomically(dir / name, "bytes");
  EXPECT_EQ(seg::read_file(dir / name), "bytes");
  EXPECT_EQ(list_files(dir.path()), std::vector<std::string>{name});
}

TEST(WriteAtomically, AFullDiskLeavesTheTargetAsItWasAndSaysSo) {
  ScratchDir dir;
  write_text(dir / "good.json", "the good file");
  seg::fail_write_for_testing(1);
  const std::string message = error_of([&] { seg::write_file_atomically(dir / "good.json", std::string(4096, 'x')); });
  seg::fail_write_for_testing(0);
  EXPECT_EQ(message, (dir / "good.json").string() + ": no space left on device");
  EXPECT_EQ(seg::read_file(dir / "good.json"), "the good file");
  EXPECT_EQ(list_files(dir.path()), std::vector<std::string>{"good.json"}) << "no temporary left behind";
}

TEST(WriteAtomically, AWriterThatHidesItsFailureIsCaughtByTheCheckOfWhatItWrote) {
  ScratchDir dir;
  write_text(dir / "out.bin", "old");
  // A writer that reports nothing (as ITK's NIfTI writer on a full disk); the check reads back
  // a length header, as the format checks do.
  const auto write = [](const fs::path& tmp) { write_text(tmp, "0008abcdefgh"); };
  const auto verify = [](const fs::path& tmp) {
    const std::string bytes = seg::read_file(tmp);
    if (bytes.size() != 4 + std::stoul(bytes.substr(0, 4))) throw seg::Error(tmp.string(), "truncated");
  };
  seg::write_atomically(dir / "out.bin", write, verify);
  EXPECT_EQ(seg::read_file(dir / "out.bin"), "0008abcdefgh");
  seg::fail_write_for_testing(1);
  const std::string message = error_of([&] { seg::write_atomically(dir / "out.bin", write, verify); });
  seg::fail_write_for_testing(0);
  EXPECT_EQ(message, (dir / "out.bin").string() + ": no space left on device");
  EXPECT_EQ(seg::read_file(dir / "out.bin"), "0008abcdefgh");
  EXPECT_EQ(list_files(dir.path()), std::vector<std::string>{"out.bin"});
  // Without the fault the same check passes what a writer left truncated on its own.
  const std::string incomplete = error_of([&] {
    seg::write_atomically(dir / "out.bin", [](const fs::path& tmp) { write_text(tmp, "0008abc"); }, verify);
  });
  EXPECT_TRUE(contains(incomplete, "incomplete")) << incomplete;
}

TEST(StagedFolder, AppearsWholeOrNotAtAllAndReplacesOnlyItsOwnFiles) {
  ScratchDir dir;
  {
    seg::StagedFolder staged(dir / "new");
    write_text(staged.path() / "a.txt", "a");
    EXPECT_FALSE(fs::exists(dir / "new"));
  }
  EXPECT_EQ(list_files(dir.path()), std::vector<std::string>{}) << "uncommitted: nothing left";
  fs::create_directories(dir / "old");
  write_text(dir / "old" / "a.txt", "old a");
  write_text(dir / "old" / "mine.txt", "the user's");
  seg::StagedFolder staged(dir / "old");
  write_text(staged.path() / "a.txt", "new a");
  staged.commit();
  EXPECT_EQ(seg::read_file(dir / "old" / "a.txt"), "new a");
  EXPECT_EQ(seg::read_file(dir / "old" / "mine.txt"), "the user's");
  EXPECT_EQ(list_files(dir.path()), (std::vector<std::string>{"old/a.txt", "old/mine.txt"}));
}

}  // namespace
