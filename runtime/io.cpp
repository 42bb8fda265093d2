// File and memory byte sources, and the atomic file writer.
#include "runtime/io.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <random>

#include "runtime/error.h"

namespace stag::rt {

namespace {

std::string errno_text(int err) { return std::strerror(err); }

std::string range_error(const std::string& name, int64_t offset, size_t n, int64_t size) {
  return fmt::format("{}: read of {} bytes at offset {} runs past the end ({} bytes)", name, n,
                     offset, size);
}

// The temporary file a signal handler may have to remove: a fixed buffer, since a handler can
// neither allocate nor take locks. `ready` is false while the path is being written.
struct TempSlot {
  std::atomic<bool> taken{false}, ready{false};
  char path[4096];
};
TempSlot g_temp_slot;

}  // namespace

void remove_pending_temp_file() noexcept {
  if (g_temp_slot.ready.load()) ::unlink(g_temp_slot.path);
}

FileSource::FileSource(const std::filesystem::path& path) : name_(path.string()) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) throw Error(fmt::format("{}: cannot open: {}", name_, errno_text(errno)));
  struct stat st;
  if (::fstat(fd_, &st) != 0) {
    int err = errno;
    ::close(fd_);
    throw Error(fmt::format("{}: cannot stat: {}", name_, errno_text(err)));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd_);
    throw Error(fmt::format("{}: not a regular file", name_));
  }
  size_ = static_cast<int64_t>(st.st_size);
}

FileSource::~FileSource() {
  if (fd_ >= 0) ::close(fd_);
}

void FileSource::read_at(int64_t offset, std::span<std::byte> dst) const {
  if (offset < 0 || offset > size_ || static_cast<int64_t>(dst.size()) > size_ - offset)
    throw Error(range_error(name_, offset, dst.size(), size_));
  size_t done = 0;
  while (done < dst.size()) {
    ssize_t r = ::pread(fd_, dst.data() + done, dst.size() - done,
                        static_cast<off_t>(offset + static_cast<int64_t>(done)));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) throw Error(fmt::format("{}: read failed: {}", name_, errno_text(errno)));
    // The file shrank after it was opened.
    if (r == 0) throw Error(fmt::format("{}: file truncated while reading", name_));
    done += static_cast<size_t>(r);
  }
}

void MemorySource::read_at(int64_t offset, std::span<std::byte> dst) const {
  int64_t size = this->size();
  if (offset < 0 || offset > size || static_cast<int64_t>(dst.size()) > size - offset)
    throw Error(range_error(name_, offset, dst.size(), size));
  if (!dst.empty()) std::memcpy(dst.data(), bytes_.data() + offset, dst.size());
}

AtomicFileWriter::AtomicFileWriter(const std::filesystem::path& target) : target_(target) {
  std::filesystem::path dir = target_.parent_path();
  if (dir.empty()) dir = ".";
  // A unique hidden name in the target's directory, so rename() never crosses file systems and
  // concurrent writers (threads or processes) never share a temporary.
  static std::atomic<uint64_t> counter{0};
  std::random_device rd;
  for (int attempt = 0; attempt < 16; ++attempt) {
    std::string name = fmt::format(".{}.tmp-{}-{}-{:08x}", target_.filename().string(), ::getpid(),
                                   counter.fetch_add(1), rd());
    temp_ = dir / name;
    fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ >= 0 && temp_.native().size() < sizeof g_temp_slot.path && !g_temp_slot.taken.exchange(true)) {
      std::memcpy(g_temp_slot.path, temp_.c_str(), temp_.native().size() + 1);
      g_temp_slot.ready = true;
      holds_temp_slot_ = true;
    }
    if (fd_ >= 0) return;
    if (errno != EEXIST) break;
  }
  int err = errno;
  temp_.clear();
  throw Error(fmt::format("{}: cannot create a temporary file in {}: {}", target_.string(),
                          dir.string(), errno_text(err)));
}

AtomicFileWriter::~AtomicFileWriter() {
  if (!committed_) discard();
}

void AtomicFileWriter::release_temp_slot() noexcept {
  if (!holds_temp_slot_) return;
  g_temp_slot.ready = false;
  g_temp_slot.taken = false;
  holds_temp_slot_ = false;
}

void AtomicFileWriter::discard() noexcept {
  release_temp_slot();
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (!temp_.empty()) ::unlink(temp_.c_str());
  temp_.clear();
}

void AtomicFileWriter::fail(const std::string& what, int err) {
  discard();
  throw Error(fmt::format("{}: {}: {}", target_.string(), what, errno_text(err)));
}

void AtomicFileWriter::write(std::span<const std::byte> bytes) {
  if (fd_ < 0) throw Error(fmt::format("{}: write after commit or failure", target_.string()));
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t r = ::write(fd_, bytes.data() + done, bytes.size() - done);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) fail("write failed", errno);
    done += static_cast<size_t>(r);
  }
}

void AtomicFileWriter::commit() {
  if (fd_ < 0) throw Error(fmt::format("{}: commit after commit or failure", target_.string()));
  // Data must be on disk before the rename makes it visible, or a crash could publish a file
  // whose blocks were never written.
  if (::fsync(fd_) != 0) fail("fsync failed", errno);
  if (::close(fd_) != 0) {
    fd_ = -1;
    fail("close failed", errno);
  }
  fd_ = -1;
  if (::rename(temp_.c_str(), target_.c_str()) != 0) fail("cannot rename the temporary file", errno);
  committed_ = true;
  release_temp_slot();
  temp_.clear();
  // Persist the directory entry too; file systems that cannot fsync a directory say EINVAL.
  std::filesystem::path dir = target_.parent_path();
  if (dir.empty()) dir = ".";
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    int r = ::fsync(dfd);
    int err = errno;
    ::close(dfd);
    if (r != 0 && err != EINVAL)
      throw Error(fmt::format("{}: fsync of directory {} failed: {}", target_.string(),
                              dir.string(), errno_text(err)));
  }
}

}  // namespace stag::rt
