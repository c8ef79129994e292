#include "Server.h"

#include <time.h>

#include "Clock.h"
#include "Log.h"

namespace finnsplit {
namespace {

std::string jsonString(const std::string& text) {
  std::string out = "\"";
  for (char ch : text) {
    if (ch == '"' || ch == '\\') out.push_back('\\');
    if (static_cast<unsigned char>(ch) >= 0x20) out.push_back(ch);
  }
  return out + "\"";
}

}  // namespace

Server::Server(ServerConfig config, std::unique_ptr<Accelerator> accelerator)
    : config_(std::move(config)),
      accelerator_(std::move(accelerator)),
      inPool_(static_cast<size_t>(config_.queueDepth + 2), accelerator_->inputSpec().packedBytes()),
      outPool_(static_cast<size_t>(config_.queueDepth + 2), accelerator_->outputSpec().packedBytes()),
      inQueue_(static_cast<size_t>(config_.queueDepth + 2)),
      outQueue_(static_cast<size_t>(config_.queueDepth + 2)) {
  ReceiverConfig rc;
  rc.host = config_.listenHost;
  rc.port = config_.listenPort;
  rc.node = config_.node;
  rc.expected = accelerator_->inputSpec();
  rc.ioTimeoutMs = config_.ioTimeoutMs;
  rc.maxUpstreams = config_.maxUpstreams;
  rc.maxHandshakes = config_.maxHandshakes;
  rc.handshakeTimeoutMs = config_.handshakeTimeoutMs;
  rc.deadPeerMs = config_.deadPeerMs;
  rc.key = config_.key;
  receiver_ = std::make_unique<Receiver>(rc, &inPool_, &inQueue_, &stats_);
  compute_ = std::make_unique<ComputeStage>(accelerator_.get(), &inQueue_, &inPool_, &outQueue_, &outPool_, &stats_);
  SenderConfig sc;
  sc.hops = config_.next;
  sc.anyOrder = config_.anyOrder;
  sc.node = config_.node;
  sc.spec = accelerator_->outputSpec();
  sc.ioTimeoutMs = config_.ioTimeoutMs;
  sc.connectTimeoutMs = config_.connectTimeoutMs;
  sc.deadPeerMs = config_.deadPeerMs;
  sc.key = config_.key;
  sender_ = std::make_unique<Sender>(sc, &outQueue_, &outPool_, &stats_);
  reporter_ = std::make_unique<StatsReporter>(config_.statsTarget, config_.statsIntervalMs, config_.node, &stats_,
                                              [this] { return gauges(); });
}

Server::~Server() {
  if (!drained_) {
    // Not drained (start() failed or an early exit): abort rather than wait.
    sender_->abort();
    receiver_->stopAndJoin();
    inQueue_.close();
    outPool_.close();
    compute_->join();
    sender_->join();
  }
}

std::string Server::nextText() const {
  std::string text;
  for (const NextHop& hop : config_.next) text += (text.empty() ? "" : ",") + hop.text();
  return text;
}

Gauges Server::gauges() const {
  Gauges g;
  g.inQueue = inQueue_.size();
  g.inCapacity = inQueue_.capacity();
  g.outQueue = outQueue_.size();
  g.outCapacity = outQueue_.capacity();
  g.freeInBuffers = inPool_.available();
  g.freeOutBuffers = outPool_.available();
  g.draining = draining_.load();
  return g;
}

Status Server::bind() {
  Status st = receiver_->listen();
  if (!st) return st;
  st = reporter_->start();
  if (!st) return st;
  bound_ = true;
  return Status::ok();
}

Status Server::start() {
  if (!bound_) {
    Status st = bind();
    if (!st) return st;
  }
  compute_->start();
  sender_->start();
  receiver_->start();
  StatsReporter::printLine("{\"event\":\"listening\",\"node\":" + jsonString(config_.node) +
                           ",\"port\":" + std::to_string(port()) + ",\"backend\":" + jsonString(accelerator_->name()) +
                           ",\"in\":" + jsonString(accelerator_->inputSpec().toString()) +
                           ",\"out\":" + jsonString(accelerator_->outputSpec().toString()) +
                           ",\"next\":" + jsonString(nextText()) +
                           ",\"order\":" + jsonString(config_.anyOrder ? "any" : "seq") +
                           ",\"authenticated\":" + (config_.key ? "true" : "false") + "}");
  LOG_INFO("listening on %s:%d, %s backend, %s -> %s, next hop%s %s%s, links %s", config_.listenHost.c_str(), port(),
           accelerator_->name(), accelerator_->inputSpec().toString().c_str(),
           accelerator_->outputSpec().toString().c_str(), config_.next.size() > 1 ? "s (fan-out)" : "",
           nextText().c_str(), config_.anyOrder ? ", frames in any order" : "",
           config_.key ? "authenticated" : "NOT authenticated (no --auth-key-file)");
  return Status::ok();
}

void Server::drain() {
  draining_ = true;
  const int64_t deadline = monotonicMs() + config_.drainTimeoutMs;
  LOG_INFO("draining: %lld frames in flight", static_cast<long long>(stats_.framesIn - stats_.framesOut -
                                                                       stats_.framesDropped));
  receiver_->stopAndJoin();
  inQueue_.close();
  // The compute stage may wait for output buffers the sender holds; the deadline aborts the
  // sender, which drops what it cannot deliver and so lets compute finish.
  while (!sender_->finished() && monotonicMs() < deadline) {
    timespec pause{0, 5000000};
    nanosleep(&pause, nullptr);
  }
  if (!sender_->finished()) {
    LOG_WARN("drain timeout (%d ms): dropping frames not yet delivered", config_.drainTimeoutMs);
    sender_->abort();
  }
  compute_->join();
  sender_->join();
  drained_ = true;
  reporter_->stop();
  StatsReporter::printLine("{\"event\":\"exit\",\"node\":" + jsonString(config_.node) +
                           ",\"frames_in\":" + std::to_string(stats_.framesIn) +
                           ",\"frames_out\":" + std::to_string(stats_.framesOut) +
                           ",\"frames_dropped\":" + std::to_string(stats_.framesDropped) + "}");
  LOG_INFO("drained: %lld in, %lld out, %lld dropped", static_cast<long long>(stats_.framesIn.load()),
           static_cast<long long>(stats_.framesOut.load()), static_cast<long long>(stats_.framesDropped.load()));
}

}  // namespace finnsplit
