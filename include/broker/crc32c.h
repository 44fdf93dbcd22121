/* CRC32C (Castagnoli), as used by Kafka and iSCSI. */
#ifndef BROKER_CRC32C_H
#define BROKER_CRC32C_H
#include <stddef.h>
#include <stdint.h>

/* Extend @crc (0 to start) over @len bytes of @buf.
 * crc32c(0, "123456789", 9) == 0xE3069283. Any thread. */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

/* The two implementations behind crc32c(), for tests and benchmarks.
 * crc32c_sw: slice-by-8 tables, any CPU. crc32c_hw: the SSE4.2 crc32
 * instruction; falls back to crc32c_sw when crc32c_hw_available() is 0. */
uint32_t crc32c_sw(uint32_t crc, const void *buf, size_t len);
uint32_t crc32c_hw(uint32_t crc, const void *buf, size_t len);
int crc32c_hw_available(void);

#endif
