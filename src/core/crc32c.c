/* CRC32C (Castagnoli): SSE4.2 crc32 instruction when available, else
 * slice-by-8 tables. Both paths give identical results. */
#include "broker/crc32c.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#define CRC32C_HAVE_X86 1
#else
#define CRC32C_HAVE_X86 0
#endif

#define CRC32C_POLY 0x82F63B78u /* reflected Castagnoli polynomial */

static uint32_t crc_table[8][256];
static bool crc_use_hw;
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    uint32_t i;
    uint32_t crc;
    int bit;
    int k;

    for (i = 0; i < 256; i++) {
        crc = i;
        for (bit = 0; bit < 8; bit++) {
            crc = (crc >> 1) ^ ((crc & 1u) ? CRC32C_POLY : 0);
        }
        crc_table[0][i] = crc;
    }
    /* Table k advances a byte that is followed by k zero bytes, which lets
     * the main loop fold eight input bytes per step. */
    for (i = 0; i < 256; i++) {
        for (k = 1; k < 8; k++) {
            crc = crc_table[k - 1][i];
            crc_table[k][i] = (crc >> 8) ^ crc_table[0][crc & 0xff];
        }
    }
#if CRC32C_HAVE_X86
    crc_use_hw = __builtin_cpu_supports("sse4.2");
#endif
}

static uint32_t load_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static uint32_t crc_sw_update(uint32_t crc, const unsigned char *p,
                              size_t len)
{
    uint32_t lo;
    uint32_t hi;

    /* Bytes are assembled explicitly so the loop is endian-neutral. */
    while (len >= 8) {
        lo = crc ^ load_le32(p);
        hi = load_le32(p + 4);
        crc = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
              crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^
              crc_table[3][hi & 0xff] ^ crc_table[2][(hi >> 8) & 0xff] ^
              crc_table[1][(hi >> 16) & 0xff] ^ crc_table[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len > 0) {
        crc = (crc >> 8) ^ crc_table[0][(crc ^ *p) & 0xff];
        p++;
        len--;
    }
    return crc;
}

#if CRC32C_HAVE_X86
__attribute__((target("sse4.2"))) static uint32_t crc_hw_update(
    uint32_t crc, const unsigned char *p, size_t len)
{
    uint64_t crc64;
    uint64_t word;

    /* Align to 8 bytes first: unaligned 8-byte loads are legal on x86 but
     * may straddle cache lines on every step. */
    while (len > 0 && ((uintptr_t)p & 7) != 0) {
        crc = _mm_crc32_u8(crc, *p);
        p++;
        len--;
    }
    crc64 = crc;
    while (len >= 8) {
        memcpy(&word, p, sizeof word);
        crc64 = _mm_crc32_u64(crc64, word);
        p += 8;
        len -= 8;
    }
    crc = (uint32_t)crc64;
    while (len > 0) {
        crc = _mm_crc32_u8(crc, *p);
        p++;
        len--;
    }
    return crc;
}
#endif

uint32_t crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&crc_once, crc_init);
    return ~crc_sw_update(~crc, buf, len);
}

int crc32c_hw_available(void)
{
    pthread_once(&crc_once, crc_init);
    return crc_use_hw ? 1 : 0;
}

uint32_t crc32c_hw(uint32_t crc, const void *buf, size_t len)
{
#if CRC32C_HAVE_X86
    if (crc32c_hw_available()) {
        return ~crc_hw_update(~crc, buf, len);
    }
#endif
    return crc32c_sw(crc, buf, len);
}

uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&crc_once, crc_init);
#if CRC32C_HAVE_X86
    if (crc_use_hw) {
        return ~crc_hw_update(~crc, buf, len);
    }
#endif
    return ~crc_sw_update(~crc, buf, len);
}
