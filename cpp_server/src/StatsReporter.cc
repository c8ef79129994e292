#include "StatsReporter.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "Clock.h"
#include "Log.h"

namespace finnsplit {
namespace {

std::mutex gStdoutMutex;

bool writeAllFd(int fd, const char* data, size_t length) {
  while (length > 0) {
    ssize_t n = ::send(fd, data, length, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;  // a stats reader that cannot keep up is dropped
    data += n;
    length -= static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

StatsReporter::StatsReporter(std::string target, int intervalMs, std::string node, const Stats* stats,
                             std::function<Gauges()> gauges)
    : target_(std::move(target)), intervalMs_(intervalMs), node_(std::move(node)), stats_(stats),
      gauges_(std::move(gauges)), startNs_(monotonicNs()) {}

StatsReporter::~StatsReporter() { stop(); }

void StatsReporter::printLine(const std::string& json) {
  std::lock_guard<std::mutex> lock(gStdoutMutex);
  std::string line = json + "\n";
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    ssize_t n = ::write(STDOUT_FILENO, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    p += n;
    left -= static_cast<size_t>(n);
  }
}

Status StatsReporter::start() {
  if (target_.compare(0, 5, "unix:") == 0) {
    std::string path = target_.substr(5);
    sockaddr_un addr{};
    if (path.empty() || path.size() >= sizeof(addr.sun_path)) return Status::error("bad stats socket path '" + path + "'");
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size());
    listener_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!listener_.valid()) return Status::error(std::string("stats socket: ") + std::strerror(errno));
    ::unlink(path.c_str());
    if (::bind(listener_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(listener_.get(), 4) != 0) {
      return Status::error("stats socket " + path + ": " + std::strerror(errno));
    }
  } else if (target_ != "stdout" && target_ != "none") {
    return Status::error("--stats must be stdout, none or unix:PATH (got '" + target_ + "')");
  }
  if (target_ != "none" && intervalMs_ > 0) thread_ = std::thread(&StatsReporter::loop, this);
  return Status::ok();
}

void StatsReporter::stop() {
  if (stop_.triggered()) return;
  stop_.trigger();
  if (thread_.joinable()) thread_.join();
  if (target_ != "none") emit();
}

void StatsReporter::loop() {
  while (!stop_.triggered()) {
    pollfd fds[2] = {{stop_.fd(), POLLIN, 0}, {listener_.get(), POLLIN, 0}};
    int64_t deadline = monotonicNs() + int64_t{intervalMs_} * 1000000;
    int64_t left;
    while ((left = deadline - monotonicNs()) > 0 && !stop_.triggered()) {
      int n = ::poll(fds, 2, static_cast<int>(left / 1000000) + 1);
      if (n > 0 && (fds[1].revents & POLLIN)) acceptClients();
    }
    if (!stop_.triggered()) emit();
  }
}

void StatsReporter::acceptClients() {
  for (;;) {
    int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR) continue;
      return;
    }
    std::lock_guard<std::mutex> lock(mutex_);
    clients_.emplace_back(fd);
  }
}

void StatsReporter::emit() {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string json = stats_->toJson(node_, (monotonicNs() - startNs_) / 1e9, gauges_(), previous_);
  if (!listener_.valid()) {
    printLine(json);
    return;
  }
  std::string line = json + "\n";
  for (size_t i = 0; i < clients_.size();) {
    if (writeAllFd(clients_[i].get(), line.data(), line.size())) {
      ++i;
    } else {
      clients_.erase(clients_.begin() + static_cast<long>(i));
    }
  }
}

}  // namespace finnsplit
