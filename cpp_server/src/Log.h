// Log: leveled log lines on stderr ("<time> <node> <LEVEL> message").
// Thread safety: every function is thread safe; each line is written with one write(2).
#pragma once

namespace finnsplit {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// Sets the node name printed on every line and the minimum level; call before starting threads.
void logConfigure(const char* node, LogLevel minLevel);
void logMessage(LogLevel level, const char* format, ...) __attribute__((format(printf, 2, 3)));

}  // namespace finnsplit

#define LOG_DEBUG(...) ::finnsplit::logMessage(::finnsplit::LogLevel::kDebug, __VA_ARGS__)
#define LOG_INFO(...) ::finnsplit::logMessage(::finnsplit::LogLevel::kInfo, __VA_ARGS__)
#define LOG_WARN(...) ::finnsplit::logMessage(::finnsplit::LogLevel::kWarn, __VA_ARGS__)
#define LOG_ERROR(...) ::finnsplit::logMessage(::finnsplit::LogLevel::kError, __VA_ARGS__)
