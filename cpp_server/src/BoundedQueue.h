// BoundedQueue: a fixed-capacity FIFO between pipeline stages. Its storage is allocated once; a
// full queue blocks the producer (backpressure), a closed queue drains and then ends consumers.
// Thread safety: every method is thread safe (mutex + two condition variables).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <vector>

namespace finnsplit {

template <typename T>
class BoundedQueue {
 public:
  explicit BoundedQueue(size_t capacity) : slots_(capacity ? capacity : 1) {}
  BoundedQueue(const BoundedQueue&) = delete;
  BoundedQueue& operator=(const BoundedQueue&) = delete;

  // Blocks while full; false (item not queued) once the queue is closed.
  bool push(const T& item) {
    std::unique_lock<std::mutex> lock(mutex_);
    notFull_.wait(lock, [this] { return closed_ || count_ < slots_.size(); });
    if (closed_) return false;
    slots_[(head_ + count_) % slots_.size()] = item;
    ++count_;
    notEmpty_.notify_one();
    return true;
  }
  // Blocks while empty; false once the queue is closed and drained.
  bool pop(T* item) {
    std::unique_lock<std::mutex> lock(mutex_);
    notEmpty_.wait(lock, [this] { return closed_ || count_ > 0; });
    return takeLocked(item);
  }
  // As pop, but gives up after timeoutMs; false on timeout or when closed and drained.
  bool popFor(T* item, int timeoutMs) {
    std::unique_lock<std::mutex> lock(mutex_);
    notEmpty_.wait_for(lock, std::chrono::milliseconds(timeoutMs), [this] { return closed_ || count_ > 0; });
    return takeLocked(item);
  }
  // Refuses further pushes; items already queued are still delivered.
  void close() {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
    notFull_.notify_all();
    notEmpty_.notify_all();
  }
  size_t size() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return count_;
  }
  size_t capacity() const { return slots_.size(); }
  bool closedAndEmpty() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return closed_ && count_ == 0;
  }

 private:
  bool takeLocked(T* item) {
    if (count_ == 0) return false;
    *item = slots_[head_];
    head_ = (head_ + 1) % slots_.size();
    --count_;
    notFull_.notify_one();
    return true;
  }

  mutable std::mutex mutex_;
  std::condition_variable notFull_;
  std::condition_variable notEmpty_;
  std::vector<T> slots_;
  size_t head_ = 0;
  size_t count_ = 0;
  bool closed_ = false;
};

}  // namespace finnsplit
