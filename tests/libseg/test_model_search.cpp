// Models found by name: a path first, then SEG_MODEL_PATH's folders in order, then the
// folder beside the executable.
#include <seg/error.h>
#include <seg/model_search.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "scoped_env.h"
#include "scoped_working_dir.h"
#include "test_support.h"

namespace fs = std::filesystem;
using seg::testing::ScopedEnv;
using seg::testing::ScratchDir;
using seg::testing::ScopedWorkingDir;

namespace {

void touch(const fs::path& file) {
  fs::create_directories(file.parent_path());
  std::ofstream(file) << "not read by the search";
}

std::string message_of(const std::string& name, const std::vector<fs::path>& folders) {
  try {
    seg::find_model(name, folders);
  } catch (const seg::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(FindModel, AnExistingPathWinsOverAModelOfThatName) {
  ScratchDir tmp;
  touch(tmp / "here" / "m.pth");
  touch(tmp / "models" / "m.pth");
  ScopedWorkingDir cwd(tmp / "here");
  EXPECT_EQ(seg::find_model("m.pth", {tmp / "models"}), fs::path("m.pth"));
  // "m" is no file here, so it is a name: with ".pth" added, from the folder.
  EXPECT_EQ(seg::find_model("m", {tmp / "models"}), tmp / "models" / "m.pth");
}

TEST(FindModel, TextWithASlashIsAPathEvenWhenMissing) {
  ScratchDir tmp;
  touch(tmp / "models" / "m.pth");
  EXPECT_EQ(seg::find_model("./m", {tmp / "models"}), fs::path("./m"));
  EXPECT_EQ(seg::find_model((tmp / "none.pth").string(), {tmp / "models"}), tmp / "none.pth");
}

TEST(FindModel, FoldersAreSearchedInTheOrderOfSegModelPath) {
  ScratchDir tmp;
  touch(tmp / "a" / "both.pth");
  touch(tmp / "b" / "both.pth");
  touch(tmp / "b" / "only-b.pth");
  const std::string a = (tmp / "a").string(), b = (tmp / "b").string();
  EXPECT_EQ(seg::model_search_folders(":" + a + "::" + b + ":", ""), (std::vector<fs::path>{a, b}));
  EXPECT_EQ(seg::find_model("both", seg::model_search_folders(a + ":" + b, "")), tmp / "a" / "both.pth");
  EXPECT_EQ(seg::find_model("both.pth", seg::model_search_folders(b + ":" + a, "")), tmp / "b" / "both.pth");
  EXPECT_EQ(seg::find_model("only-b", seg::model_search_folders(a + ":" + b, "")), tmp / "b" / "only-b.pth");
}

TEST(FindModel, TheInstalledFolderIsBesideTheExecutablesFolderAfterSegModelPath) {
  ScratchDir tmp;
  const fs::path executable = tmp / "prefix" / "bin" / "seg-segment";
  touch(executable);
  touch(tmp / "prefix" / "share" / "segsuite" / "models" / "shipped.pth");
  touch(tmp / "mine" / "shipped.pth");
  EXPECT_EQ(seg::model_search_folders("", "/opt/seg/bin/seg-segment"),
            (std::vector<fs::path>{"/opt/seg/share/segsuite/models"}));
  EXPECT_EQ(seg::find_model("shipped", seg::model_search_folders("", executable)),
            tmp / "prefix" / "share" / "segsuite" / "models" / "shipped.pth");
  EXPECT_EQ(seg::find_model("shipped", seg::model_search_folders((tmp / "mine").string(), executable)),
            tmp / "mine" / "shipped.pth");
}

TEST(FindModel, ANameFoundNowhereIsOneErrorNamingEveryFolder) {
  ScratchDir tmp;
  const std::vector<fs::path> folders{tmp / "a", tmp / "b"};
  touch(tmp / "b" / "other.pth");
  const std::string message = message_of("jsrt-fats", folders);
  EXPECT_EQ(message.rfind("jsrt-fats: ", 0), 0u) << message;
  EXPECT_NE(message.find("jsrt-fats.pth"), std::string::npos) << message;
  EXPECT_NE(message.find((tmp / "a").string() + ", " + (tmp / "b").string()), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
}

TEST(FindModel, OrKeepReturnsTheTextWhenNoModelHasThatName) {
  ScratchDir tmp;
  touch(tmp / "models" / "m.pth");
  ScopedEnv env("SEG_MODEL_PATH", (tmp / "models").string());
  EXPECT_EQ(seg::find_model_or_keep("m"), tmp / "models" / "m.pth");
  EXPECT_EQ(seg::find_model_or_keep("film.png"), fs::path("film.png"));
  EXPECT_THROW(seg::find_model("film.png"), seg::Error);
}

TEST(FindModel, ThisProcessFindsTheShippedModelsInTheBuildTree) {
  // The build copies share/models to build/share/segsuite/models, beside build/bin.
  ScopedEnv env("SEG_MODEL_PATH", std::nullopt);
  const fs::path shipped = (fs::path(SEG_BINARY_DIR) / ".." / "share" / "segsuite" / "models").lexically_normal();
  EXPECT_EQ(seg::model_search_folders(), std::vector<fs::path>{shipped});
  EXPECT_EQ(seg::find_model("jsrt-fast"), shipped / "jsrt-fast.pth");
  EXPECT_TRUE(fs::is_regular_file(seg::find_model("jsrt-fast")));
}

TEST(ListModels, EachNameOnceFromTheFirstFolderThatHasIt) {
  ScratchDir tmp;
  touch(tmp / "a" / "z.pth");
  touch(tmp / "a" / "notes.txt");
  touch(tmp / "b" / "y.pth");
  touch(tmp / "b" / "z.pth");
  fs::create_directories(tmp / "b" / "run.pth");  // a folder, not a model file
  const auto found = seg::list_models({tmp / "a", tmp / "missing", tmp / "b"});
  ASSERT_EQ(found.size(), 2u);
  EXPECT_EQ(found[0].name, "z");
  EXPECT_EQ(found[0].path, tmp / "a" / "z.pth");
  EXPECT_EQ(found[1].name, "y");
  EXPECT_EQ(found[1].path, tmp / "b" / "y.pth");
}
