#include "Log.h"

#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <ctime>

namespace finnsplit {
namespace {

char gNode[64] = "server";
LogLevel gMinLevel = LogLevel::kInfo;
const char* const kLevelNames[] = {"DEBUG", "INFO", "WARN", "ERROR"};

}  // namespace

std::string printable(const std::string& text, size_t limit) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < text.size() && out.size() < limit; ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      out += "\\x";
      out.push_back(kDigits[c >> 4]);
      out.push_back(kDigits[c & 15]);
    }
  }
  if (out.size() >= limit && text.size() > limit) out += "...";
  return out;
}

void logConfigure(const char* node, LogLevel minLevel) {
  std::snprintf(gNode, sizeof(gNode), "%s", node);
  gMinLevel = minLevel;
}

void logMessage(LogLevel level, const char* format, ...) {
  if (level < gMinLevel) return;
  char line[1024];
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  tm parts{};
  gmtime_r(&now.tv_sec, &parts);
  int used = std::snprintf(line, sizeof(line), "%02d:%02d:%02d.%03ld %s %s ", parts.tm_hour, parts.tm_min,
                           parts.tm_sec, now.tv_nsec / 1000000, gNode, kLevelNames[static_cast<int>(level)]);
  va_list args;
  va_start(args, format);
  int body = std::vsnprintf(line + used, sizeof(line) - used - 1, format, args);
  va_end(args);
  size_t length = static_cast<size_t>(used) + (body < 0 ? 0 : static_cast<size_t>(body));
  if (length > sizeof(line) - 2) length = sizeof(line) - 2;
  line[length++] = '\n';
  ssize_t written;
  do {
    written = ::write(STDERR_FILENO, line, length);
  } while (written < 0 && errno == EINTR);
}

}  // namespace finnsplit
