// SelfTest: built-in checks of the parts that depend on the target (byte order, word size, the
// compiler's vectorisation, threads and sockets): CRC, packing, framing, handshake, the emulator
// against a naive reference, and a loopback pipeline. CI runs the armhf build's self-test under
// qemu-arm-static. Prints one line per check on stdout.
// Thread safety: run() is called once from the main thread.
#pragma once

namespace finnsplit {

class SelfTest {
 public:
  // Returns the process exit code: 0 if every check passed.
  static int run();
};

}  // namespace finnsplit
