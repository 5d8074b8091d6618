#include "core/checkpoint/atomic_file.h"

#include <dirent.h>
#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "gtest/gtest.h"

namespace weightd {
namespace {

class AtomicFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/atomic_file_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }

  int FilesInDir() const {
    int n = 0;
    DIR* d = opendir(dir_.c_str());
    while (dirent* e = readdir(d)) n += e->d_name[0] != '.';
    closedir(d);
    return n;
  }

  std::string dir_;
};

TEST_F(AtomicFileTest, CommitReplacesTheDestination) {
  std::string path = dir_ + "/out.bin";
  std::ofstream(path) << "old contents";
  auto file = AtomicFile::Create(path);
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_TRUE((*file)->Write("new").ok());
  ASSERT_TRUE((*file)->Write(" bytes").ok());
  EXPECT_EQ((*file)->offset(), 9u);
  ASSERT_TRUE((*file)->Commit().ok());
  std::stringstream read;
  read << std::ifstream(path).rdbuf();
  EXPECT_EQ(read.str(), "new bytes");
  EXPECT_EQ(FilesInDir(), 1);
}

TEST_F(AtomicFileTest, AbandonedWriteLeavesTheOldFileAndNoTemporary) {
  std::string path = dir_ + "/out.bin";
  std::ofstream(path) << "old contents";
  {
    auto file = AtomicFile::Create(path);
    ASSERT_TRUE(file.ok());
    ASSERT_TRUE((*file)->Write("half written").ok());
  }
  std::stringstream read;
  read << std::ifstream(path).rdbuf();
  EXPECT_EQ(read.str(), "old contents");
  EXPECT_EQ(FilesInDir(), 1);
}

TEST_F(AtomicFileTest, MissingDirectoryIsNotFoundNamingThePath) {
  std::string path = dir_ + "/no/such/dir/out.bin";
  auto file = AtomicFile::Create(path);
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(file.status().message().find(path), std::string::npos) << file.status();
}

}  // namespace
}  // namespace weightd
