// Crc32: the CRC-32 of zlib (polynomial 0xEDB88320, reflected), slice-by-8, so Python's
// zlib.crc32 computes the same frame checksums (docs/protocol.md).
// Thread safety: pure functions; the tables are built at static initialisation.
#pragma once

#include <cstddef>
#include <cstdint>

namespace finnsplit {

// Continues a CRC: crc32Update(crc32Update(0, a), b) == CRC-32 of a followed by b.
uint32_t crc32Update(uint32_t crc, const void* data, size_t length);

}  // namespace finnsplit
