#include "MappedRegion.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "Fd.h"

namespace finnsplit {

MappedRegion::~MappedRegion() {
  if (base_) ::munmap(base_, mappedLength_);
}

MappedRegion& MappedRegion::operator=(MappedRegion&& other) noexcept {
  if (this != &other) {
    if (base_) ::munmap(base_, mappedLength_);
    base_ = other.base_;
    mappedLength_ = other.mappedLength_;
    data_ = other.data_;
    size_ = other.size_;
    other.base_ = nullptr;
    other.data_ = nullptr;
    other.mappedLength_ = other.size_ = 0;
  }
  return *this;
}

Status MappedRegion::map(const std::string& path, uint64_t offset, size_t size, bool uncached, MappedRegion* out) {
  int flags = O_RDWR | O_CLOEXEC | (uncached ? O_SYNC : 0);
  int raw;
  do {
    raw = ::open(path.c_str(), flags);
  } while (raw < 0 && errno == EINTR);
  if (raw < 0) return Status::error("cannot open " + path + ": " + std::strerror(errno));
  Fd fd(raw);
  struct stat info {};
  if (::fstat(fd.get(), &info) == 0 && S_ISREG(info.st_mode) &&
      static_cast<uint64_t>(info.st_size) < offset + size) {
    return Status::error(path + " holds " + std::to_string(info.st_size) + " bytes, need " +
                         std::to_string(offset + size));
  }
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  const uint64_t aligned = offset / page * page;
  const size_t length = static_cast<size_t>(offset - aligned) + size;
  void* base = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), static_cast<off_t>(aligned));
  if (base == MAP_FAILED) return Status::error("cannot mmap " + path + ": " + std::strerror(errno));
  MappedRegion region;
  region.base_ = base;
  region.mappedLength_ = length;
  region.data_ = static_cast<uint8_t*>(base) + (offset - aligned);
  region.size_ = size;
  *out = std::move(region);
  return Status::ok();
}

}  // namespace finnsplit
