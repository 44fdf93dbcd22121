/* Key to partition mapping, identical to Kafka's DefaultPartitioner. */
#include "broker/state.h"

uint32_t murmur2(const uint8_t *data, size_t len)
{
    const uint32_t m = 0x5bd1e995;
    const int r = 24;
    uint32_t h = 0x9747b28cu ^ (uint32_t)len;
    size_t i, n4 = len / 4;

    for (i = 0; i < n4; i++) {
        const uint8_t *p = data + i * 4;
        uint32_t k = (uint32_t)p[0] | (uint32_t)p[1] << 8 |
                     (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        k *= m;
        k ^= k >> r;
        k *= m;
        h *= m;
        h ^= k;
    }
    switch (len % 4) {
    case 3: h ^= (uint32_t)data[(len & ~3u) + 2] << 16; /* fall through */
    case 2: h ^= (uint32_t)data[(len & ~3u) + 1] << 8;  /* fall through */
    case 1:
        h ^= data[len & ~3u];
        h *= m;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return h;
}

uint32_t state_partition_for_key(const uint8_t *key, size_t len, uint32_t n)
{
    return (murmur2(key, len) & 0x7fffffffu) % n;
}
