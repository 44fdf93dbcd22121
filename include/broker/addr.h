/* Network addresses given to us by configuration or by other nodes:
 * validation of "host:port" before it is stored, logged or called. */
#ifndef BROKER_ADDR_H
#define BROKER_ADDR_H
#include <stdbool.h>
#include <stddef.h>

/* Longest accepted "host:port", NUL excluded (fits the 256-byte member
 * table and command fields). */
#define ADDR_MAX_LEN 255

/* True when @s is "host:port": host a DNS name (labels of letters,
 * digits, '-' and '_', 1..63 bytes each, 253 in all), a dotted IPv4
 * literal or a bracketed IPv6 literal ("[::1]:9092"); port 1..65535 in
 * decimal digits; at most ADDR_MAX_LEN bytes; nothing else (no spaces,
 * control characters, userinfo or path). NULL is not valid. */
bool addr_http_valid(const char *s);

/* Copy the host of a valid "host:port" into @host (brackets of an IPv6
 * literal removed). False when @s is not valid or @cap is too small. */
bool addr_host(const char *s, char *host, size_t cap);

#endif
