// Options: the command line of finnsplit-server (usage() prints it). Subcommands:
//   serve      run the data plane (default)
//   run        execute a program file offline on frames from a file (emulate backend, no sockets)
//   convert    convert a tensor between dense wire packing and FINN's folded packing
//   self-test  built-in checks (run under qemu-arm-static for the armhf build)
// Thread safety: a value type, filled once by parse().
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "Status.h"

namespace finnsplit {

struct Options {
  std::string command = "serve";
  // serve
  std::string listen = "0.0.0.0:0";
  std::string next;  // HOST:PORT[,HOST:PORT...]; --next may be repeated (fan-out to replicas)
  std::string order = "seq";  // seq | any (a replicated stage upstream: frames arrive interleaved)
  std::string name = "server";
  std::string backend = "emulate";
  std::string program;
  std::string specIn;
  std::string specOut;
  int64_t delayUs = 1000;
  // finn-zynq: one value per tensor of the boundary, in boundary order (a comma list on the command
  // line: idma0, idma1, ...; docs/finn.md#multi-tensor-boundaries).
  std::vector<std::string> idma;
  std::vector<std::string> odma;
  std::vector<std::string> dmabufIn;
  std::vector<std::string> dmabufOut;
  std::vector<uint64_t> dmabufInPhys;  // empty: every buffer's address from sysfs
  std::vector<uint64_t> dmabufOutPhys;
  std::vector<int64_t> inWordElems;
  std::vector<int64_t> outWordElems;
  int64_t doneTimeoutMs = 2000;
  int64_t queueDepth = 4;
  int64_t ioTimeoutMs = 10000;
  int64_t connectTimeoutMs = 2000;
  int64_t drainTimeoutMs = 10000;
  int64_t maxUpstreams = 4;
  int64_t maxHandshakes = 16;
  int64_t handshakeTimeoutMs = 3000;
  int64_t deadPeerMs = 10000;
  std::string authKeyFile;
  std::string user;
  std::string stats = "stdout";
  int64_t statsIntervalMs = 1000;
  std::string logLevel = "info";
  // run / convert
  std::string input;
  std::string output;
  int64_t repeat = 1;
  std::string to;
  std::string dtype;
  int64_t count = 0;
  int64_t wordElems = 0;

  static Status parse(int argc, char** argv, Options* out);
  static const char* usage();
  // Splits "host:port" (the host may be empty for "any").
  static Status hostPort(const std::string& text, std::string* host, int* port);
};

}  // namespace finnsplit
