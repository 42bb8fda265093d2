// Atomic writes: a failed write leaves the old file intact and no temporary files behind.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "runtime/io.h"
#include "runtime/npy.h"
#include "runtime/safetensors.h"
#include "test_util.h"

using namespace stag::rt;
using namespace stag::rt::test;
using Catch::Matchers::Contains;

namespace {

// Lowers the file size limit for one scope, so that writes fail part-way (EFBIG) even as root.
struct FileSizeLimit {
  rlimit saved{};
  void (*saved_handler)(int);
  explicit FileSizeLimit(rlim_t bytes) {
    getrlimit(RLIMIT_FSIZE, &saved);
    saved_handler = signal(SIGXFSZ, SIG_IGN);
    rlimit lim = saved;
    lim.rlim_cur = bytes;
    setrlimit(RLIMIT_FSIZE, &lim);
  }
  ~FileSizeLimit() {
    setrlimit(RLIMIT_FSIZE, &saved);
    signal(SIGXFSZ, saved_handler);
  }
};

}  // namespace

TEST_CASE("atomic writer replaces a file and leaves nothing else", "[io]") {
  TempDir dir;
  auto path = dir / "f.bin";
  write_bytes(path, bytes_of("old contents"));
  {
    AtomicFileWriter w(path);
    w.write(std::string_view("new "));
    CHECK(read_bytes(path) == bytes_of("old contents"));  // not visible before commit
    CHECK(dir.entries().size() == 2);
    w.write(std::string_view("contents"));
    w.commit();
  }
  CHECK(read_bytes(path) == bytes_of("new contents"));
  CHECK(dir.entries() == std::vector<std::string>{"f.bin"});
  // Permissions follow the umask like any new file, not mkstemp's 0600.
  struct stat st;
  REQUIRE(stat(path.c_str(), &st) == 0);
  mode_t mask = umask(0);
  umask(mask);
  CHECK((st.st_mode & 0777) == (0666 & ~mask));
}

TEST_CASE("atomic writer without commit discards the temporary file", "[io]") {
  TempDir dir;
  auto path = dir / "f.bin";
  write_bytes(path, bytes_of("old"));
  {
    AtomicFileWriter w(path);
    w.write(std::string_view("partial"));
  }
  CHECK(read_bytes(path) == bytes_of("old"));
  CHECK(dir.entries() == std::vector<std::string>{"f.bin"});
}

TEST_CASE("a write that fails part-way leaves the old file intact", "[io]") {
  TempDir dir;
  auto npy_path = dir / "x.npy";
  auto st_path = dir / "ckpt.safetensors";
  Tensor small = Tensor::from<float>({2}, {1, 2});
  write_npy(npy_path, small);
  std::map<std::string, Tensor> ckpt;
  ckpt.emplace("w", small.clone());
  write_safetensors(st_path, ckpt, {{"step", "1"}});
  auto npy_before = read_bytes(npy_path);
  auto st_before = read_bytes(st_path);

  Tensor big(DType::f32, {1 << 20});  // 4 MiB
  std::map<std::string, Tensor> big_ckpt;
  big_ckpt.emplace("w", big.clone());
  {
    FileSizeLimit limit(64 * 1024);
    CHECK_THROWS_WITH(write_npy(npy_path, big), Contains(npy_path.string()) && Contains("write failed"));
    CHECK_THROWS_WITH(write_safetensors(st_path, big_ckpt, {{"step", "2"}}),
                      Contains(st_path.string()) && Contains("write failed"));
  }
  CHECK(read_bytes(npy_path) == npy_before);
  CHECK(read_bytes(st_path) == st_before);
  CHECK(identical(read_npy(npy_path), small));
  CHECK(read_safetensors(st_path).metadata.at("step") == "1");
  CHECK(dir.entries() == std::vector<std::string>{"ckpt.safetensors", "x.npy"});
}

TEST_CASE("a failed rename leaves no temporary file", "[io]") {
  TempDir dir;
  std::filesystem::create_directory(dir / "target");
  Tensor t = Tensor::from<int32_t>({1}, {5});
  CHECK_THROWS_WITH(write_npy(dir / "target", t), Contains("cannot rename the temporary file"));
  CHECK(dir.entries() == std::vector<std::string>{"target"});
  CHECK(std::filesystem::is_directory(dir / "target"));
}

TEST_CASE("an unwritable or missing directory is a clear error", "[io]") {
  TempDir dir;
  Tensor t = Tensor::from<int32_t>({1}, {5});
  CHECK_THROWS_WITH(write_npy(dir / "missing" / "x.npy", t),
                    Contains("x.npy: cannot create a temporary file in") && Contains("No such file"));

  auto ro = dir / "ro";
  std::filesystem::create_directory(ro);
  write_npy(ro / "x.npy", t);
  auto before = read_bytes(ro / "x.npy");
  std::filesystem::permissions(ro, std::filesystem::perms::owner_read | std::filesystem::perms::owner_exec);
  Tensor t2 = Tensor::from<int32_t>({1}, {6});
  if (::geteuid() != 0) {
    CHECK_THROWS_WITH(write_npy(ro / "x.npy", t2),
                      Contains("cannot create a temporary file") && Contains("Permission denied"));
  } else {
    // Root ignores directory permissions, so try as "nobody" in a child process.
    std::filesystem::permissions(dir.path(), std::filesystem::perms::all,
                                 std::filesystem::perm_options::add);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(3);
      try {
        write_npy(ro / "x.npy", t2);
        ::_exit(1);
      } catch (const Error& e) {
        std::string m = e.what();
        bool ok = m.find("cannot create a temporary file") != std::string::npos &&
                  m.find("Permission denied") != std::string::npos;
        ::_exit(ok ? 0 : 2);
      }
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
  CHECK(read_bytes(ro / "x.npy") == before);
  std::filesystem::permissions(ro, std::filesystem::perms::owner_all);
  std::vector<std::string> left;
  for (const auto& e : std::filesystem::directory_iterator(ro)) left.push_back(e.path().filename());
  CHECK(left == std::vector<std::string>{"x.npy"});
}
