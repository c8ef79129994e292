#include "Options.h"

#include <cstdlib>
#include <functional>
#include <map>

namespace finnsplit {
namespace {

Status toInt(const std::string& flag, const std::string& text, int64_t* out) {
  char* end = nullptr;
  long long value = std::strtoll(text.c_str(), &end, 0);
  if (text.empty() || *end != '\0') return Status::error("--" + flag + " expects an integer, got '" + text + "'");
  *out = value;
  return Status::ok();
}

Status toU64(const std::string& flag, const std::string& text, uint64_t* out) {
  char* end = nullptr;
  unsigned long long value = std::strtoull(text.c_str(), &end, 0);
  if (text.empty() || *end != '\0') return Status::error("--" + flag + " expects an address, got '" + text + "'");
  *out = value;
  return Status::ok();
}

// "a,b,c" -> its items; an empty item is an error (a stray comma is a typo, not a default).
Status splitList(const std::string& flag, const std::string& text, std::vector<std::string>* out) {
  out->clear();
  size_t start = 0;
  while (true) {
    size_t comma = text.find(',', start);
    std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (item.empty()) return Status::error("--" + flag + " has an empty item in '" + text + "'");
    out->push_back(item);
    if (comma == std::string::npos) return Status::ok();
    start = comma + 1;
  }
}

}  // namespace

const char* Options::usage() {
  return "usage: finnsplit-server [serve] --listen HOST:PORT --next HOST:PORT[,HOST:PORT..] --backend emulate|delay|finn-zynq ...\n"
         "  fan-out:   several --next (or a comma list): each frame to one of them, round robin; --order any on\n"
         "             every stage after a replicated one (frames arrive interleaved; docs/protocol.md)\n"
         "  common:    --name NODE  --queue-depth N(4)  --io-timeout-ms MS(10000)  --connect-timeout-ms MS(2000)\n"
         "             --drain-timeout-ms MS(10000)  --max-upstreams N(4)  --stats stdout|none|unix:PATH\n"
         "             --stats-interval-ms MS(1000)  --log-level debug|info|warn|error\n"
         "             --auth-key-file FILE (64 hex digits, mode 0600: authenticated links)  --user NAME (drop root)\n"
         "             --handshake-timeout-ms MS(3000)  --max-handshakes N(16)  --dead-peer-ms MS(10000)\n"
         "  emulate:   --program FILE.fsprog\n"
         "  delay:     --spec-in DT:d0,d1,.. --spec-out DT:d0,d1,..  --delay-us US(1000)\n"
         "  finn-zynq: (--program FILE | --spec-in/--spec-out)  --in-word-elems N --out-word-elems N\n"
         "             --idma /dev/uioN|/dev/mem@ADDR  --odma ...  --dmabuf-in /dev/udmabufN --dmabuf-out ...\n"
         "             [--dmabuf-in-phys ADDR --dmabuf-out-phys ADDR]  --done-timeout-ms MS(2000)\n"
         "             a boundary of several tensors: one value per tensor, comma-separated (idma0,idma1,..)\n"
         "finnsplit-server run --program FILE --input FRAMES.bin --output RESULTS.bin [--repeat N]\n"
         "finnsplit-server convert --to finn|dense --dtype DT --count N --word-elems E --input F --output G\n"
         "finnsplit-server self-test\n";
}

Status Options::hostPort(const std::string& text, std::string* host, int* port) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos) return Status::error("'" + text + "' is not HOST:PORT");
  int64_t value;
  Status st = toInt("port", text.substr(colon + 1), &value);
  if (!st || value < 0 || value > 65535) return Status::error("'" + text + "' has no valid port");
  *host = text.substr(0, colon);
  if (host->size() >= 2 && (*host)[0] == '[') *host = host->substr(1, host->size() - 2);
  *port = static_cast<int>(value);
  return Status::ok();
}

Status Options::parse(int argc, char** argv, Options* out) {
  Options o;
  // Each setter gets the flag's name (for its error message) and its value.
  using Setter = std::function<Status(const std::string&, const std::string&)>;
  auto text = [](std::string* field) -> Setter {
    return [field](const std::string&, const std::string& v) {
      *field = v;
      return Status::ok();
    };
  };
  auto integer = [](int64_t* field) -> Setter {
    return [field](const std::string& flag, const std::string& v) { return toInt(flag, v, field); };
  };
  auto texts = [](std::vector<std::string>* field) -> Setter {
    return [field](const std::string& flag, const std::string& v) { return splitList(flag, v, field); };
  };
  auto integers = [](std::vector<int64_t>* field) -> Setter {
    return [field](const std::string& flag, const std::string& v) {
      std::vector<std::string> items;
      Status st = splitList(flag, v, &items);
      field->assign(items.size(), 0);
      for (size_t k = 0; st && k < items.size(); ++k) st = toInt(flag, items[k], &(*field)[k]);
      return st;
    };
  };
  auto addresses = [](std::vector<uint64_t>* field) -> Setter {
    return [field](const std::string& flag, const std::string& v) {
      std::vector<std::string> items;
      Status st = splitList(flag, v, &items);
      field->assign(items.size(), 0);
      for (size_t k = 0; st && k < items.size(); ++k) st = toU64(flag, items[k], &(*field)[k]);
      return st;
    };
  };
  const std::map<std::string, Setter> flags = {
      {"listen", text(&o.listen)},
      {"next", [&o](const std::string&, const std::string& v) {
         o.next += (o.next.empty() ? "" : ",") + v;
         return Status::ok();
       }},
      {"order", text(&o.order)},
      {"name", text(&o.name)},
      {"backend", text(&o.backend)},
      {"program", text(&o.program)},
      {"spec-in", text(&o.specIn)},
      {"spec-out", text(&o.specOut)},
      {"delay-us", integer(&o.delayUs)},
      {"idma", texts(&o.idma)},
      {"odma", texts(&o.odma)},
      {"dmabuf-in", texts(&o.dmabufIn)},
      {"dmabuf-out", texts(&o.dmabufOut)},
      {"dmabuf-in-phys", addresses(&o.dmabufInPhys)},
      {"dmabuf-out-phys", addresses(&o.dmabufOutPhys)},
      {"in-word-elems", integers(&o.inWordElems)},
      {"out-word-elems", integers(&o.outWordElems)},
      {"done-timeout-ms", integer(&o.doneTimeoutMs)},
      {"queue-depth", integer(&o.queueDepth)},
      {"io-timeout-ms", integer(&o.ioTimeoutMs)},
      {"connect-timeout-ms", integer(&o.connectTimeoutMs)},
      {"drain-timeout-ms", integer(&o.drainTimeoutMs)},
      {"max-upstreams", integer(&o.maxUpstreams)},
      {"max-handshakes", integer(&o.maxHandshakes)},
      {"handshake-timeout-ms", integer(&o.handshakeTimeoutMs)},
      {"dead-peer-ms", integer(&o.deadPeerMs)},
      {"auth-key-file", text(&o.authKeyFile)},
      {"user", text(&o.user)},
      {"stats", text(&o.stats)},
      {"stats-interval-ms", integer(&o.statsIntervalMs)},
      {"log-level", text(&o.logLevel)},
      {"input", text(&o.input)},
      {"output", text(&o.output)},
      {"repeat", integer(&o.repeat)},
      {"to", text(&o.to)},
      {"dtype", text(&o.dtype)},
      {"count", integer(&o.count)},
      {"word-elems", integer(&o.wordElems)},
  };
  int i = 1;
  if (i < argc && argv[i][0] != '-') o.command = argv[i++];
  if (o.command != "serve" && o.command != "run" && o.command != "convert" && o.command != "self-test") {
    return Status::error("unknown command '" + o.command + "'");
  }
  for (; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") return Status::error("help");
    if (arg.compare(0, 2, "--") != 0) return Status::error("unexpected argument '" + arg + "'");
    std::string key = arg.substr(2);
    std::string value;
    size_t eq = key.find('=');
    if (eq != std::string::npos) {
      value = key.substr(eq + 1);
      key = key.substr(0, eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      return Status::error("--" + key + " needs a value");
    }
    auto it = flags.find(key);
    if (it == flags.end()) return Status::error("unknown option --" + key);
    Status st = it->second(key, value);
    if (!st) return st;
  }
  if (o.queueDepth < 1 || o.queueDepth > 1024) return Status::error("--queue-depth must be 1..1024");
  if (o.maxUpstreams < 1 || o.maxUpstreams > 64) return Status::error("--max-upstreams must be 1..64");
  if (o.maxHandshakes < 1 || o.maxHandshakes > 256) return Status::error("--max-handshakes must be 1..256");
  if (o.ioTimeoutMs < 10 || o.ioTimeoutMs > 600000) return Status::error("--io-timeout-ms must be 10..600000");
  if (o.handshakeTimeoutMs < 10 || o.handshakeTimeoutMs > 60000) {
    return Status::error("--handshake-timeout-ms must be 10..60000");
  }
  if (o.deadPeerMs != 0 && (o.deadPeerMs < 1000 || o.deadPeerMs > 600000)) {
    return Status::error("--dead-peer-ms must be 0 (off) or 1000..600000");
  }
  if (o.order != "seq" && o.order != "any") return Status::error("--order must be seq or any");
  if (o.repeat < 1) return Status::error("--repeat must be positive");
  *out = o;
  return Status::ok();
}

}  // namespace finnsplit
