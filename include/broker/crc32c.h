/* CRC32C (Castagnoli), as used by Kafka and iSCSI. */
#ifndef BROKER_CRC32C_H
#define BROKER_CRC32C_H
#include <stddef.h>
#include <stdint.h>

/* Extend @crc (0 to start) over @len bytes of @buf.
 * crc32c(0, "123456789", 9) == 0xE3069283. Any thread. */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

#endif
