// finnsplit-server: the board's data plane (docs/protocol.md). See Options.h for the commands.
#include <cstdio>
#include <cstring>

#include "Options.h"
#include "SelfTest.h"
#include "Tools.h"

int main(int argc, char** argv) {
  finnsplit::Options options;
  finnsplit::Status st = finnsplit::Options::parse(argc, argv, &options);
  if (!st) {
    if (st.message() != "help") std::fprintf(stderr, "finnsplit-server: %s\n", st.message().c_str());
    std::fputs(finnsplit::Options::usage(), stderr);
    return st.message() == "help" ? 0 : 2;
  }
  if (options.command == "self-test") return finnsplit::SelfTest::run();
  if (options.command == "run") return finnsplit::Tools::runProgram(options);
  if (options.command == "convert") return finnsplit::Tools::convert(options);
  return finnsplit::Tools::serve(options);
}
