// Status: the result of an operation on the request path, which returns errors and never aborts.
// Thread safety: a value type; distinct objects may be used from distinct threads.
#pragma once

#include <string>
#include <utility>

namespace finnsplit {

class Status {
 public:
  Status() = default;
  static Status ok() { return Status(); }
  static Status error(std::string message) { return Status(std::move(message)); }

  bool isOk() const { return !failed_; }
  explicit operator bool() const { return isOk(); }
  const std::string& message() const { return message_; }

  // The same error with `context` in front ("loading p.fsprog: ...").
  Status withContext(const std::string& context) const {
    return failed_ ? Status(context + ": " + message_) : *this;
  }

 private:
  explicit Status(std::string message) : failed_(true), message_(std::move(message)) {}

  bool failed_ = false;
  std::string message_;
};

}  // namespace finnsplit
