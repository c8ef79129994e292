// StatsReporter: writes a Stats JSON line every interval to stdout or to every client of a local
// Unix socket ("unix:/run/finnsplit/stats.sock"), plus one-off event lines (listening, exit).
// stdout lines are flushed one at a time so a supervising process sees each as it happens.
// Thread safety: every method is thread safe.
#pragma once

#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "Fd.h"
#include "Stats.h"
#include "Status.h"
#include "StopLatch.h"

namespace finnsplit {

class StatsReporter {
 public:
  // target: "stdout", "none" or "unix:PATH".
  StatsReporter(std::string target, int intervalMs, std::string node, const Stats* stats,
                std::function<Gauges()> gauges);
  ~StatsReporter();

  Status start();
  // Writes the final stats line and stops the thread.
  void stop();
  // Writes one JSON object as a line on stdout (event lines always go to stdout).
  static void printLine(const std::string& json);

 private:
  void loop();
  void emit();
  void acceptClients();

  std::string target_;
  int intervalMs_;
  std::string node_;
  const Stats* stats_;
  std::function<Gauges()> gauges_;
  int64_t previous_[8] = {};
  int64_t startNs_ = 0;
  StopLatch stop_;
  std::thread thread_;
  std::mutex mutex_;  // guards clients_ and previous_
  Fd listener_;
  std::vector<Fd> clients_;
};

}  // namespace finnsplit
