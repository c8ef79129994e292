// Log: leveled log lines on stderr ("<time> <node> <LEVEL> message").
// Thread safety: every function is thread safe; each line is written with one write(2).
#pragma once

#include <cstddef>
#include <string>

namespace finnsplit {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// Sets the node name printed on every line and the minimum level; call before starting threads.
void logConfigure(const char* node, LogLevel minLevel);
void logMessage(LogLevel level, const char* format, ...) __attribute__((format(printf, 2, 3)));
// Text a peer sent, safe to log: printable ASCII kept, every other byte (and the backslash) as \xNN,
// cut to `limit` bytes; so a peer cannot forge log lines or send terminal escapes.
std::string printable(const std::string& text, size_t limit = 300);

}  // namespace finnsplit

#define LOG_DEBUG(...) ::finnsplit::logMessage(::finnsplit::LogLevel::kDebug, __VA_ARGS__)
#define LOG_INFO(...) ::finnsplit::logMessage(::finnsplit::LogLevel::kInfo, __VA_ARGS__)
#define LOG_WARN(...) ::finnsplit::logMessage(::finnsplit::LogLevel::kWarn, __VA_ARGS__)
#define LOG_ERROR(...) ::finnsplit::logMessage(::finnsplit::LogLevel::kError, __VA_ARGS__)
