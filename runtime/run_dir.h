#pragma once
/// Run folders: every training run keeps what it made in one directory, by default
/// `runs/MODEL-N/`:
///
///   last.safetensors   the latest checkpoint (parameters, optimizer state, the run's position)
///   best.safetensors   the checkpoint with the best monitored validation metric so far
///   log.jsonl          one JSON object per step, epoch and test
///   run.json           how the run was started: command line, settings, model hash, version
///
/// Other tools add their images and plots to the same folder. Commands that read a checkpoint
/// also take a run folder (resolve_checkpoint).

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "runtime/progress.h"

namespace stag::rt {

/// What run.json records about a run's start.
struct RunRecord {
  std::vector<std::string> command;  ///< the exact command line (argv)
  std::string model;                 ///< the model's name
  std::string model_hash;            ///< "sha256:HEX" of the model's source (or its manifest)
  std::string model_hash_of;         ///< what was hashed: the model file's path, or "manifest"
  uint64_t seed = 0;
  int threads = 0;
  LogRecord settings;                ///< every setting of the run, by flag name
};

struct RunFolder {
  std::filesystem::path dir;

  std::filesystem::path last() const { return dir / "last.safetensors"; }
  std::filesystem::path best() const { return dir / "best.safetensors"; }
  std::filesystem::path log() const { return dir / "log.jsonl"; }
  std::filesystem::path run_json() const { return dir / "run.json"; }

  /// A new folder `root/MODEL-N`, N one more than the highest in use (1 for the first); two
  /// runs starting at once get different folders. Throws Error when it cannot be created.
  static RunFolder create_next(const std::filesystem::path& root, const std::string& model);
  /// `dir`, created (with its parents) if missing.
  static RunFolder open(const std::filesystem::path& dir);

  /// Writes run.json atomically: `record`, stag's version and the start time (UTC). When one is
  /// there already (a run resumed in its folder), it is kept and this start is appended to its
  /// "resumed" list instead.
  void write_run_json(const RunRecord& record) const;
};

/// Which checkpoint of a run folder a reader wants.
enum class Prefer { best, last };

/// `path` itself when it is not a directory; for a run folder its best.safetensors (Prefer::best,
/// when present) or last.safetensors. Throws Error when the folder has neither.
std::filesystem::path resolve_checkpoint(const std::filesystem::path& path, Prefer prefer);

/// The SHA-256 of `bytes` as 64 hex digits (what `sha256sum` prints).
std::string sha256_hex(std::string_view bytes);

/// The stag version this runtime was built as.
const char* stag_version();

}  // namespace stag::rt
