// The weightd binary: first stdout line, SIGTERM drain, exit status.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace {

TEST(Daemon, PrintsThePortThenExitsCleanlyOnSigterm) {
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    dup2(out[1], 1);
    close(out[0]);
    execl(WEIGHTD_BINARY, "weightd", "--repository", WEIGHTD_SERVER_TEST_DATA "/repo",
          "--listen", "127.0.0.1:0", "--drain_seconds", "1", "--minloglevel", "2",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  close(out[1]);
  FILE* stdout_of_child = fdopen(out[0], "r");
  char line[256] = {};
  ASSERT_NE(fgets(line, sizeof(line), stdout_of_child), nullptr);
  EXPECT_TRUE(absl::StartsWith(line, "listening on 127.0.0.1:")) << line;
  EXPECT_NE(std::string(line), "listening on 127.0.0.1:0\n");
  kill(pid, SIGTERM);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  fclose(stdout_of_child);
}

TEST(Daemon, FailsWithoutARepository) {
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    freopen("/dev/null", "w", stderr);
    execl(WEIGHTD_BINARY, "weightd", "--listen", "127.0.0.1:0", static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 2);
}

}  // namespace
