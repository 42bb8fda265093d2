#pragma once
/// Byte sources and sinks the file formats read from and write to: a regular file, memory, or an
/// atomically replaced file.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace stag::rt {

/// Random-access bytes of known size. Formats validate every size against size() before reading,
/// so a corrupt header never makes them allocate or read past the end.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  /// Total bytes.
  virtual int64_t size() const = 0;
  /// Copies [offset, offset+dst.size()) into dst; throws Error when that range is not inside.
  virtual void read_at(int64_t offset, std::span<std::byte> dst) const = 0;
  /// The name used in messages: the path, or "<memory>".
  virtual const std::string& name() const = 0;
};

/// A regular file opened read-only (pread: no shared position, so const reads are thread-safe).
class FileSource final : public ByteSource {
 public:
  /// Throws Error naming the path when it cannot be opened or is not a regular file.
  explicit FileSource(const std::filesystem::path& path);
  ~FileSource() override;
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;
  int64_t size() const override { return size_; }
  void read_at(int64_t offset, std::span<std::byte> dst) const override;
  const std::string& name() const override { return name_; }

 private:
  int fd_ = -1;
  int64_t size_ = 0;
  std::string name_;
};

/// Bytes in memory, not owned.
class MemorySource final : public ByteSource {
 public:
  explicit MemorySource(std::span<const std::byte> bytes, std::string name = "<memory>")
      : bytes_(bytes), name_(std::move(name)) {}
  int64_t size() const override { return static_cast<int64_t>(bytes_.size()); }
  void read_at(int64_t offset, std::span<std::byte> dst) const override;
  const std::string& name() const override { return name_; }

 private:
  std::span<const std::byte> bytes_;
  std::string name_;
};

/// A sequential destination for bytes.
class ByteSink {
 public:
  virtual ~ByteSink() = default;
  /// Appends bytes; throws Error on failure.
  virtual void write(std::span<const std::byte> bytes) = 0;
  void write(std::string_view s) { write(std::as_bytes(std::span<const char>(s.data(), s.size()))); }
};

/// Collects bytes in memory.
class VectorSink final : public ByteSink {
 public:
  using ByteSink::write;
  void write(std::span<const std::byte> bytes) override {
    data.insert(data.end(), bytes.begin(), bytes.end());
  }
  std::vector<std::byte> data;
};

/// Replaces a file atomically: bytes go to a fresh temporary file in the same directory, and
/// commit() fsyncs it, renames it over the target and fsyncs the directory. A reader therefore
/// sees the old file or the new one, never a mix, even after a crash or SIGKILL at any moment.
/// Destroying the writer without commit() (e.g. because an exception is unwinding) removes the
/// temporary file and leaves the target untouched.
class AtomicFileWriter final : public ByteSink {
 public:
  /// Creates the temporary file; throws Error naming the target when that fails.
  explicit AtomicFileWriter(const std::filesystem::path& target);
  ~AtomicFileWriter() override;
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;
  using ByteSink::write;
  void write(std::span<const std::byte> bytes) override;
  /// Makes the new contents durable and visible under the target name.
  void commit();

 private:
  [[noreturn]] void fail(const std::string& what, int err);
  void discard() noexcept;

  void release_temp_slot() noexcept;

  std::filesystem::path target_;
  std::filesystem::path temp_;
  int fd_ = -1;
  bool committed_ = false;
  bool holds_temp_slot_ = false;
};

/// Removes the temporary file of the writer in progress, if any (one writer at a time is
/// tracked). Async-signal-safe: for a handler about to _exit, which no destructor would follow.
void remove_pending_temp_file() noexcept;

}  // namespace stag::rt
