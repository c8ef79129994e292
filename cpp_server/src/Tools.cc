#include "Tools.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <algorithm>
#include <cstring>
#include <fstream>
#include <vector>

#include "Clock.h"
#include "DelayBackend.h"
#include "DensePacking.h"
#include "EmulateBackend.h"
#include "Emulator.h"
#include "FinnPacking.h"
#include "FinnZynqBackend.h"
#include "LinkAuth.h"
#include "Log.h"
#include "Privileges.h"
#include "Program.h"
#include "Server.h"
#include "StatsReporter.h"

namespace finnsplit {
namespace {

Status specsFrom(const Options& o, TensorSpec* in, TensorSpec* out) {
  if (!o.program.empty()) {
    Program program;
    Status st = Program::load(o.program, &program);
    if (!st) return st;
    *in = program.input();
    *out = program.output();
    return Status::ok();
  }
  if (o.specIn.empty() || o.specOut.empty()) {
    return Status::error("--backend " + o.backend + " needs --spec-in and --spec-out (or --program)");
  }
  Status st = TensorSpec::parse(o.specIn, in);
  if (!st) return st.withContext("--spec-in");
  st = TensorSpec::parse(o.specOut, out);
  return st ? st : st.withContext("--spec-out");
}

Status readFile(const std::string& path, std::vector<uint8_t>* out) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return Status::error("cannot open " + path + ": " + std::strerror(errno));
  out->assign(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
  return Status::ok();
}

Status writeFile(const std::string& path, const std::vector<uint8_t>& data) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
  if (!file) return Status::error("cannot write " + path);
  return Status::ok();
}

// One side's finn-zynq channels from its per-tensor lists, which must be equally long (the
// physical addresses may be left out altogether).
Status finnChannels(const std::string& side, const std::vector<std::string>& regs,
                    const std::vector<std::string>& buffers, const std::vector<uint64_t>& phys,
                    const std::vector<int64_t>& wordElems, std::vector<FinnZynqChannel>* out) {
  const char* dma = side == "in" ? "--idma" : "--odma";
  const size_t n = regs.size();
  if (buffers.size() != n || wordElems.size() != n || (!phys.empty() && phys.size() != n)) {
    return Status::error(std::string(dma) + " names " + std::to_string(n) + " DMA(s) but --dmabuf-" + side + " " +
                         std::to_string(buffers.size()) + ", --" + side + "-word-elems " +
                         std::to_string(wordElems.size()) + ", --dmabuf-" + side + "-phys " +
                         std::to_string(phys.size()) + ": one value per tensor each");
  }
  out->assign(n, FinnZynqChannel());
  for (size_t k = 0; k < n; ++k) {
    if (wordElems[k] < 1) return Status::error("--" + side + "-word-elems must be positive");
    (*out)[k] = FinnZynqChannel{regs[k], buffers[k], phys.empty() ? 0 : phys[k], wordElems[k]};
  }
  return Status::ok();
}

LogLevel levelOf(const std::string& name) {
  if (name == "debug") return LogLevel::kDebug;
  if (name == "warn") return LogLevel::kWarn;
  if (name == "error") return LogLevel::kError;
  return LogLevel::kInfo;
}

int fail(const Status& st) {
  LOG_ERROR("%s", st.message().c_str());
  return 1;
}

}  // namespace

Status Tools::makeAccelerator(const Options& o, std::unique_ptr<Accelerator>* out) {
  if (o.backend == "emulate") {
    if (o.program.empty()) return Status::error("--backend emulate needs --program FILE");
    return EmulateBackend::create(o.program, out);
  }
  if (o.backend == "delay") {
    TensorSpec in, outSpec;
    Status st = specsFrom(o, &in, &outSpec);
    if (!st) return st;
    if (o.delayUs < 0) return Status::error("--delay-us must not be negative");
    *out = std::make_unique<DelayBackend>(in, outSpec, o.delayUs);
    return Status::ok();
  }
  if (o.backend == "finn-zynq") {
    FinnZynqConfig config;
    Status st = specsFrom(o, &config.in, &config.out);
    if (!st) return st;
    if (o.idma.empty() || o.odma.empty() || o.dmabufIn.empty() || o.dmabufOut.empty() || o.inWordElems.empty() ||
        o.outWordElems.empty()) {
      return Status::error("--backend finn-zynq needs --idma, --odma, --dmabuf-in, --dmabuf-out, --in-word-elems "
                           "and --out-word-elems");
    }
    if (!(st = finnChannels("in", o.idma, o.dmabufIn, o.dmabufInPhys, o.inWordElems, &config.inputs))) return st;
    if (!(st = finnChannels("out", o.odma, o.dmabufOut, o.dmabufOutPhys, o.outWordElems, &config.outputs))) return st;
    config.doneTimeoutMs = static_cast<int>(o.doneTimeoutMs);
    return FinnZynqBackend::create(config, out);
  }
  return Status::error("unknown backend '" + o.backend + "' (emulate, delay or finn-zynq)");
}

int Tools::serve(const Options& o) {
  logConfigure(o.name.c_str(), levelOf(o.logLevel));
  // Every thread inherits this mask; the main thread alone takes SIGTERM/SIGINT through sigwait.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  ServerConfig config;
  Status st = Options::hostPort(o.listen, &config.listenHost, &config.listenPort);
  if (!st) return fail(st.withContext("--listen"));
  if (o.next.empty()) return fail(Status::error("--next HOST:PORT is required (the next board or the client)"));
  for (size_t pos = 0; pos <= o.next.size();) {
    size_t comma = std::min(o.next.find(',', pos), o.next.size());
    NextHop hop;
    st = Options::hostPort(o.next.substr(pos, comma - pos), &hop.host, &hop.port);
    if (!st) return fail(st.withContext("--next"));
    config.next.push_back(hop);
    pos = comma + 1;
  }
  config.anyOrder = o.order == "any";
  config.node = o.name;
  config.queueDepth = static_cast<int>(o.queueDepth);
  config.ioTimeoutMs = static_cast<int>(o.ioTimeoutMs);
  config.connectTimeoutMs = static_cast<int>(o.connectTimeoutMs);
  config.drainTimeoutMs = static_cast<int>(o.drainTimeoutMs);
  config.maxUpstreams = static_cast<int>(o.maxUpstreams);
  config.statsTarget = o.stats;
  config.statsIntervalMs = static_cast<int>(o.statsIntervalMs);
  config.maxHandshakes = static_cast<int>(o.maxHandshakes);
  config.handshakeTimeoutMs = static_cast<int>(o.handshakeTimeoutMs);
  config.deadPeerMs = static_cast<int>(o.deadPeerMs);
  LinkKey key;
  if (!o.authKeyFile.empty()) {
    st = LinkKey::loadFile(o.authKeyFile, &key);
    if (!st) return fail(st.withContext("--auth-key-file"));
    config.key = &key;
  } else {
    LOG_WARN("no --auth-key-file: this server's links are not authenticated (anyone can connect)");
  }
  std::unique_ptr<Accelerator> accelerator;
  st = makeAccelerator(o, &accelerator);  // maps the IODMAs and buffers while still privileged
  if (!st) return fail(st);
  Server server(config, std::move(accelerator));
  st = server.bind();
  if (!st) return fail(st);
  if (!o.user.empty()) {
    st = Privileges::dropTo(o.user);
    if (!st) return fail(st);
    LOG_INFO("running as user %s (uid %d)", o.user.c_str(), static_cast<int>(getuid()));
  }
  st = server.start();
  if (!st) return fail(st);
  int signal = 0;
  while (sigwait(&signals, &signal) != 0) {
  }
  LOG_INFO("%s received: draining", signal == SIGTERM ? "SIGTERM" : "SIGINT");
  server.drain();
  return 0;
}

int Tools::runProgram(const Options& o) {
  logConfigure("run", levelOf(o.logLevel));
  Program program;
  Status st = Program::load(o.program, &program);
  if (!st) return fail(st);
  std::unique_ptr<Emulator> emulator;
  st = Emulator::build(program, &emulator);
  if (!st) return fail(st);
  std::vector<uint8_t> input;
  st = readFile(o.input, &input);
  if (!st) return fail(st);
  const size_t inBytes = emulator->inputSpec().packedBytes();
  const size_t outBytes = emulator->outputSpec().packedBytes();
  if (input.empty() || input.size() % inBytes != 0) {
    return fail(Status::error(o.input + " holds " + std::to_string(input.size()) + " bytes, not a multiple of one " +
                              emulator->inputSpec().toString() + " frame (" + std::to_string(inBytes) + " bytes)"));
  }
  const size_t frames = input.size() / inBytes;
  std::vector<uint8_t> output(frames * outBytes);
  const int64_t startNs = monotonicNs();
  for (int64_t r = 0; r < o.repeat; ++r) {
    for (size_t f = 0; f < frames; ++f) {
      st = emulator->run(input.data() + f * inBytes, output.data() + f * outBytes);
      if (!st) return fail(st.withContext("frame " + std::to_string(f)));
    }
  }
  const double seconds = (monotonicNs() - startNs) / 1e9;
  st = writeFile(o.output, output);
  if (!st) return fail(st);
  std::string layers;
  for (const auto& lt : emulator->layerTimes()) {
    layers += (layers.empty() ? "" : ",") + std::string("\"") + lt.first + "\":" + std::to_string(lt.second / 1000);
  }
  char line[256];
  std::snprintf(line, sizeof(line), "{\"event\":\"run\",\"frames\":%zu,\"repeat\":%lld,\"seconds\":%.6f,\"fps\":%.3f,"
                "\"storage_bits\":%d,\"layer_us\":{", frames, static_cast<long long>(o.repeat), seconds,
                seconds > 0 ? frames * o.repeat / seconds : 0.0, emulator->storageBits());
  StatsReporter::printLine(line + layers + "}}");
  return 0;
}

int Tools::convert(const Options& o) {
  logConfigure("convert", levelOf(o.logLevel));
  DataType dtype;
  Status st = DataType::parse(o.dtype, &dtype);
  if (!st) return fail(st);
  st = FinnPacking::check(o.count, dtype.bits(), o.wordElems);
  if (!st) return fail(st);
  std::vector<uint8_t> input;
  st = readFile(o.input, &input);
  if (!st) return fail(st);
  const size_t dense = DensePacking::packedBytes(o.count, dtype);
  const size_t finn = FinnPacking::packedBytes(o.count, dtype.bits(), o.wordElems);
  std::vector<uint8_t> output;
  if (o.to == "finn") {
    if (input.size() != dense) return fail(Status::error("dense input must be " + std::to_string(dense) + " bytes"));
    output.resize(finn);
    st = FinnPacking::denseToFinn(input.data(), o.count, dtype.bits(), o.wordElems, output.data());
  } else if (o.to == "dense") {
    if (input.size() != finn) return fail(Status::error("FINN input must be " + std::to_string(finn) + " bytes"));
    output.resize(dense);
    st = FinnPacking::finnToDense(input.data(), o.count, dtype.bits(), o.wordElems, output.data());
  } else {
    return fail(Status::error("--to must be finn or dense"));
  }
  if (!st) return fail(st);
  st = writeFile(o.output, output);
  return st ? 0 : fail(st);
}

}  // namespace finnsplit
