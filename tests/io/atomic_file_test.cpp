// Atomic writes from many threads of one process: the temporaries must not collide (they were
// PATH.tmp.<pid>, shared by every thread), so every write succeeds and the file left is one
// writer's complete content.
#include "io/atomic_file.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "io_test_util.hpp"

namespace varcode::io {

TEST(AtomicFile, ThreadsWritingOnePathNeverCollide) {
  TempDir dir;
  const std::string path = dir.path("shared.bin");
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      const std::string content(size_t{1} << 16, static_cast<char>('a' + t));
      for (int i = 0; i < 40; ++i) {
        try {
          write_file_atomically(path, content.data(), content.size());
        } catch (const std::exception&) {
          ++failures;
        }
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  std::ifstream f(path, std::ios::binary);
  const std::string got((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  ASSERT_EQ(got.size(), size_t{1} << 16);
  EXPECT_EQ(got.find_first_not_of(got[0]), std::string::npos) << "a mix of two writers' bytes";
  for (const auto& e : std::filesystem::directory_iterator(dir.path("")))
    EXPECT_EQ(e.path().filename().string(), "shared.bin") << "a temporary was left behind";
}

TEST(AtomicFile, TemporaryNamesCarryThePidAndAreUnique) {
  TempDir dir;
  const std::string path = dir.path("x.bin");
  std::vector<std::string> seen;
  for (int i = 0; i < 3; ++i)
    write_atomically(path, [&](const std::string& tmp) {
      seen.push_back(tmp);
      EXPECT_TRUE(std::filesystem::exists(tmp));
      std::ofstream(tmp) << i;
    });
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].rfind(path + ".tmp." + std::to_string(::getpid()) + ".", 0), 0u) << seen[0];
  EXPECT_NE(seen[0], seen[1]);
  EXPECT_EQ(std::filesystem::status(path).permissions() & std::filesystem::perms::others_read,
            std::filesystem::perms::others_read);
}

}  // namespace varcode::io
