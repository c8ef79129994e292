#include "Stats.h"

#include <cstdio>

namespace finnsplit {
namespace {

std::string num(int64_t v) { return std::to_string(v); }

}  // namespace

std::string Stats::toJson(const std::string& node, double uptimeSeconds, const Gauges& g, int64_t previous[8]) const {
  const StageTime* stages[4] = {&recv, &recvWait, &compute, &send};
  const char* names[4] = {"recv", "recv_wait", "compute", "send"};
  std::string meanUs = "{";
  std::string totalMs = "{";
  for (int i = 0; i < 4; ++i) {
    int64_t ns = stages[i]->ns.load();
    int64_t frames = stages[i]->frames.load();
    int64_t dNs = ns - previous[2 * i];
    int64_t dFrames = frames - previous[2 * i + 1];
    previous[2 * i] = ns;
    previous[2 * i + 1] = frames;
    char mean[32];
    std::snprintf(mean, sizeof(mean), "%.1f", dFrames > 0 ? dNs / 1000.0 / dFrames : 0.0);
    char total[32];
    std::snprintf(total, sizeof(total), "%.3f", ns / 1e6);
    meanUs += std::string(i ? "," : "") + "\"" + names[i] + "\":" + mean;
    totalMs += std::string(i ? "," : "") + "\"" + names[i] + "\":" + total;
  }
  meanUs += "}";
  totalMs += "}";
  char uptime[32];
  std::snprintf(uptime, sizeof(uptime), "%.3f", uptimeSeconds);
  return "{\"event\":\"stats\",\"node\":\"" + node + "\",\"uptime_s\":" + uptime +
         ",\"frames\":{\"in\":" + num(framesIn) + ",\"computed\":" + num(framesComputed) + ",\"out\":" + num(framesOut) +
         ",\"dropped\":" + num(framesDropped) + "}" +
         ",\"errors\":{\"bad_frame\":" + num(badFrames) + ",\"spec_mismatch\":" + num(specMismatches) +
         ",\"disconnect\":" + num(disconnects) + ",\"accelerator\":" + num(acceleratorErrors) +
         ",\"send\":" + num(sendErrors) + ",\"busy\":" + num(busyRejects) + ",\"auth\":" + num(authFailures) +
         ",\"evicted\":" + num(evictions) + "}" +
         ",\"queues\":{\"in\":" + num(static_cast<int64_t>(g.inQueue)) + ",\"in_capacity\":" +
         num(static_cast<int64_t>(g.inCapacity)) + ",\"out\":" + num(static_cast<int64_t>(g.outQueue)) +
         ",\"out_capacity\":" + num(static_cast<int64_t>(g.outCapacity)) + ",\"free_in_buffers\":" +
         num(static_cast<int64_t>(g.freeInBuffers)) + ",\"free_out_buffers\":" +
         num(static_cast<int64_t>(g.freeOutBuffers)) + "}" +
         ",\"stage_mean_us\":" + meanUs + ",\"stage_total_ms\":" + totalMs +
         ",\"upstreams\":" + num(upstreams) + ",\"downstream_connected\":" + (downstreamConnected ? "true" : "false") +
         ",\"downstreams\":" + num(downstreams) +
         ",\"reconnects\":" + num(reconnects) + ",\"draining\":" + (g.draining ? "true" : "false") + "}";
}

}  // namespace finnsplit
