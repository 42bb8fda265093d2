// Run folders (numbering, run.json, a folder where a checkpoint is expected) and stopping a run
// on SIGINT/SIGTERM.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "runtime/error.h"
#include "runtime/io.h"
#include "runtime/run_dir.h"
#include "runtime/stop_signal.h"
#include "test_util.h"

using namespace stag::rt;
using namespace stag::rt::test;
namespace fs = std::filesystem;

namespace {

void touch(const fs::path& p) { std::ofstream(p) << "x"; }

nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p);
  return nlohmann::json::parse(in);
}

// Runs `body` in a child process and returns its exit status (-1 if a signal killed it).
template <class F>
int in_child(F body) {
  pid_t pid = fork();
  if (pid == 0) {
    body();
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

TEST_CASE("sha256 matches the FIPS 180-2 examples", "[run_dir]") {
  CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // 56 bytes: the length no longer fits the first padded block.
  CHECK(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  CHECK(sha256_hex(std::string(1000000, 'a')) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST_CASE("run folders are numbered one above the highest of the model", "[run_dir]") {
  TempDir tmp;
  fs::path root = tmp.path() / "runs";
  CHECK(RunFolder::create_next(root, "mlp").dir == root / "mlp-1");
  CHECK(RunFolder::create_next(root, "mlp").dir == root / "mlp-2");
  fs::create_directory(root / "mlp-7");
  fs::create_directory(root / "mlp-x");
  fs::create_directory(root / "mlpx-9");
  CHECK(RunFolder::create_next(root, "mlp").dir == root / "mlp-8");
  CHECK(RunFolder::create_next(root, "gan").dir == root / "gan-1");
  CHECK(fs::is_directory(root / "mlp-8"));
}

TEST_CASE("a run folder stands for its best checkpoint, else its last", "[run_dir]") {
  TempDir tmp;
  RunFolder f = RunFolder::open(tmp.path() / "a" / "b");
  CHECK_THROWS_AS(resolve_checkpoint(f.dir, Prefer::best), Error);
  touch(f.last());
  CHECK(resolve_checkpoint(f.dir, Prefer::best) == f.last());
  touch(f.best());
  CHECK(resolve_checkpoint(f.dir, Prefer::best) == f.best());
  CHECK(resolve_checkpoint(f.dir, Prefer::last) == f.last());
  CHECK(resolve_checkpoint(f.last(), Prefer::best) == f.last());
}

TEST_CASE("run.json records the start, and a resumed run's start beside it", "[run_dir]") {
  TempDir tmp;
  RunFolder f = RunFolder::open(tmp.path());
  RunRecord r{{"stag", "train", "m.stag"}, "mlp", "sha256:00", "m.stag", 3, 2, {{"epochs", int64_t{4}}, {"lr", 0.5}}};
  f.write_run_json(r);
  auto j = read_json(f.run_json());
  CHECK(j["command"] == nlohmann::json({"stag", "train", "m.stag"}));
  CHECK(j["model_hash"] == "sha256:00");
  CHECK(j["seed"] == 3);
  CHECK(j["threads"] == 2);
  CHECK(j["settings"]["epochs"] == 4);
  CHECK(j["settings"]["lr"] == 0.5);
  CHECK(j["stag_version"] == std::string(stag_version()));
  CHECK(j["start_time"].get<std::string>().ends_with("Z"));
  r.command.push_back("--resume");
  f.write_run_json(r);
  j = read_json(f.run_json());
  CHECK(j["command"].size() == 3);
  REQUIRE(j["resumed"].size() == 1);
  CHECK(j["resumed"][0]["command"].size() == 4);
}

TEST_CASE("the first signal requests a stop, the second ends the process at once", "[stop_signal]") {
  int status = in_child([] {
    StopSignalScope scope;
    if (stop_requested()) _exit(1);
    raise(SIGINT);
    if (!stop_requested() || stop_signal() != SIGINT) _exit(2);
    raise(SIGINT);
    _exit(3);  // not reached: the second SIGINT exits with 130
  });
  CHECK(status == 130);
  CHECK(in_child([] {
          StopSignalScope scope;
          raise(SIGTERM);
          raise(SIGTERM);
        }) == 143);
}

TEST_CASE("a stop says which signal and where, with the shell's exit status", "[stop_signal]") {
  int status = in_child([] {
    {
      StopSignalScope scope;
      raise(SIGTERM);
      try {
        throw_stop(7, "checkpoint: x");
      } catch (const StopRequested& e) {
        if (e.exit_code != 143 || std::string(e.what()) != "stopped by SIGTERM after step 7; checkpoint: x") _exit(1);
      }
    }
    // Out of the scope the former handler is back: the default one kills.
    raise(SIGTERM);
    _exit(2);
  });
  CHECK(status == -1);
  request_stop(SIGINT);
  StopSignalScope scope;  // a new scope forgets an earlier request
  CHECK_FALSE(stop_requested());
  request_stop(SIGINT);  // as a loop's own tests stop it, without a signal
  CHECK(stop_requested());
  CHECK_THROWS_WITH(throw_stop(3, "x"), "stopped by SIGINT after step 3; x");
}

TEST_CASE("held for a job the signals outlive the loop's scope and keep an earlier request", "[stop_signal]") {
  // A request before the loop's scope stays for the loop's first vote; after the scope the signal
  // is still handled (noted), not the default death; a second one ends the process at once.
  CHECK(in_child([] {
          hold_stop_signals();
          raise(SIGTERM);
          {
            StopSignalScope scope;
            if (stop_signal() != SIGTERM) _exit(1);
          }
          if (stop_signal() != SIGTERM) _exit(2);
          raise(SIGINT);
          _exit(3);  // not reached: the second signal exits with 130
        }) == 130);
  CHECK(in_child([] {
          hold_stop_signals();
          { StopSignalScope scope; }
          raise(SIGTERM);
          _exit(stop_signal() == SIGTERM ? 0 : 1);
        }) == 0);
}

TEST_CASE("a job's process leaving exits at once on the first signal", "[stop_signal]") {
  CHECK(in_child([] {
          hold_stop_signals();
          exit_on_stop_signals();
          raise(SIGTERM);
          _exit(1);
        }) == 143);
}

TEST_CASE("a second signal while a checkpoint is written leaves the old file and no temporary", "[stop_signal]") {
  TempDir tmp;
  fs::path target = tmp / "last.safetensors";
  std::ofstream(target) << "old";
  int status = in_child([&] {
    StopSignalScope scope;
    AtomicFileWriter w(target);
    w.write(std::as_bytes(std::span("new", 3)));
    raise(SIGINT);
    raise(SIGINT);
  });
  CHECK(status == 130);
  CHECK(tmp.entries() == std::vector<std::string>{"last.safetensors"});
  std::ifstream in(target);
  std::string text;
  in >> text;
  CHECK(text == "old");
}
