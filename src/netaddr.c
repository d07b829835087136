/*
 * netaddr.c - IP literals in every form a resolver accepts, CIDR
 * networks, and the special-purpose ranges (netaddr.h).
 *
 * The ranges are IANA's IPv4 and IPv6 Special-Purpose Address Registries
 * (the entries whose "Globally Reachable" is False or N/A), plus multicast
 * and the v6 forms that carry a v4 address. A few registry entries that
 * are globally reachable but sit inside a refused block (192.0.0.9/32 and
 * 192.0.0.10/32 in 192.0.0.0/24; AMT, AS112, ORCHIDv2 and the drone
 * prefixes in 2001::/23) are refused with their block: no webhook
 * receiver lives there, and a shorter table is easier to trust.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "ctkn/netaddr.h"
#include "internal.h"

#define FIELD "allow-destination-network"

/* One range: its family, prefix bytes, length and what to call it. */
struct range {
  int family;
  uint8_t p[16];
  int len;
  const char *name;
};

/* Most specific first: the first match names the address. */
static const struct range ranges[] = {
    {4, {0, 0, 0, 0}, 32, "unspecified 0.0.0.0/32"},
    {4, {0}, 8, "\"this network\" 0.0.0.0/8"},
    {4, {10}, 8, "private-use 10.0.0.0/8"},
    {4, {100, 64}, 10, "shared address space (CGNAT) 100.64.0.0/10"},
    {4, {127}, 8, "loopback 127.0.0.0/8"},
    {4, {169, 254}, 16, "link-local 169.254.0.0/16"},
    {4, {172, 16}, 12, "private-use 172.16.0.0/12"},
    {4, {192, 0, 0}, 24, "IETF protocol assignments 192.0.0.0/24"},
    {4, {192, 0, 2}, 24, "documentation 192.0.2.0/24"},
    {4, {192, 88, 99}, 24, "6to4 relay anycast 192.88.99.0/24"},
    {4, {192, 168}, 16, "private-use 192.168.0.0/16"},
    {4, {198, 18}, 15, "benchmarking 198.18.0.0/15"},
    {4, {198, 51, 100}, 24, "documentation 198.51.100.0/24"},
    {4, {203, 0, 113}, 24, "documentation 203.0.113.0/24"},
    {4, {224}, 4, "multicast 224.0.0.0/4"},
    {4, {255, 255, 255, 255}, 32, "limited broadcast 255.255.255.255/32"},
    {4, {240}, 4, "reserved 240.0.0.0/4"},
    {6, {0}, 128, "unspecified ::/128"},
    {6, {[15] = 1}, 128, "loopback ::1/128"},
    {6, {[10] = 0xff, [11] = 0xff}, 96, "IPv4-mapped ::ffff:0:0/96"},
    {6, {0}, 96, "IPv4-compatible ::/96"},
    {6, {0, 0x64, 0xff, 0x9b}, 96, "IPv4/IPv6 translation 64:ff9b::/96"},
    {6,
     {0, 0x64, 0xff, 0x9b, 0, 1},
     48,
     "local-use translation 64:ff9b:1::/48"},
    {6, {1}, 64, "discard-only 100::/64"},
    {6, {0x20, 0x01, 0, 0}, 32, "Teredo 2001::/32"},
    {6, {0x20, 0x01, 0, 2, 0, 0}, 48, "benchmarking 2001:2::/48"},
    {6, {0x20, 0x01}, 23, "IETF protocol assignments 2001::/23"},
    {6, {0x20, 0x01, 0x0d, 0xb8}, 32, "documentation 2001:db8::/32"},
    {6, {0x20, 0x02}, 16, "6to4 2002::/16"},
    {6, {0x3f, 0xff}, 20, "documentation 3fff::/20"},
    {6, {0x5f, 0x00}, 16, "segment routing SIDs 5f00::/16"},
    {6, {0xfc}, 7, "unique local fc00::/7"},
    {6, {0xfe, 0x80}, 10, "link-local fe80::/10"},
    {6, {0xfe, 0xc0}, 10, "site-local fec0::/10"},
    {6, {0xff}, 8, "multicast ff00::/8"},
};

/* Whether the first len bits of a and p are equal. */
static bool prefix_eq(const uint8_t *a, const uint8_t *p, int len)
{
  int whole = len / 8, rest = len % 8;

  if (memcmp(a, p, (size_t)whole) != 0)
    return false;
  if (rest == 0)
    return true;
  uint8_t mask = (uint8_t)(0xff << (8 - rest));
  return (a[whole] & mask) == (p[whole] & mask);
}

const char *ctkn_ip_special(const struct ctkn_ip *a)
{
  for (size_t i = 0; i < sizeof(ranges) / sizeof(*ranges); i++) {
    if (ranges[i].family == a->family &&
        prefix_eq(a->b, ranges[i].p, ranges[i].len))
      return ranges[i].name;
  }
  /* IANA allocates global unicast from 2000::/3 only. */
  if (a->family == 6 && (a->b[0] & 0xe0) != 0x20)
    return "not global unicast (outside 2000::/3)";
  return NULL;
}

bool ctkn_cidr_contains(const struct ctkn_cidr *c, const struct ctkn_ip *a)
{
  return c->net.family == a->family && prefix_eq(a->b, c->net.b, c->len);
}

void ctkn_ip_str(const struct ctkn_ip *a, char out[CTKN_IP_STR])
{
  if (inet_ntop(a->family == 4 ? AF_INET : AF_INET6, a->b, out, CTKN_IP_STR) ==
      NULL)
    snprintf(out, CTKN_IP_STR, "?");
}

/* ---- literals as resolvers read them --------------------------------------
 */

/* One part of a v4 literal (n > 0 bytes): decimal, octal (0...) or hex
 * (0x...), into *v. false when it is not a number, or passes 2^32. */
static bool v4_part(const char *s, size_t n, uint64_t *v)
{
  unsigned base = 10;
  size_t i = 0;

  if (n >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    base = 16;
    i = 2;
  } else if (n >= 2 && s[0] == '0') {
    base = 8;
    i = 1;
  }
  *v = 0;
  for (; i < n; i++) {
    char ch = s[i];
    unsigned d;
    if (ch >= '0' && ch <= '9')
      d = (unsigned)(ch - '0');
    else if (base == 16 && ch >= 'a' && ch <= 'f')
      d = (unsigned)(ch - 'a' + 10);
    else if (base == 16 && ch >= 'A' && ch <= 'F')
      d = (unsigned)(ch - 'A' + 10);
    else
      return false;
    if (d >= base)
      return false;
    *v = *v * base + d;
    if (*v > UINT32_MAX)
      return false;
  }
  return true;
}

/* inet_aton()'s forms: 1-4 parts, the last filling what is left. */
static bool v4_literal(const char *s, size_t n, struct ctkn_ip *out)
{
  uint64_t part[4];
  int np = 0;
  size_t i = 0;

  if (n > 0 && s[n - 1] == '.')
    n--; /* one trailing dot: "127.0.0.1." */
  if (n == 0)
    return false;
  while (i <= n) {
    size_t j = i;
    while (j < n && s[j] != '.')
      j++;
    if (j == i || np == 4 || !v4_part(s + i, j - i, &part[np]))
      return false;
    np++;
    i = j + 1;
  }
  uint64_t v = 0;
  for (int k = 0; k < np - 1; k++) {
    if (part[k] > 255)
      return false;
    v |= part[k] << (8 * (3 - k));
  }
  if (part[np - 1] > (UINT32_MAX >> (8 * (np - 1))))
    return false;
  v |= part[np - 1];
  memset(out, 0, sizeof(*out));
  out->family = 4;
  for (int k = 0; k < 4; k++)
    out->b[k] = (uint8_t)(v >> (8 * (3 - k)));
  return true;
}

/* "[v6]" or "[v6%zone]" (zone as "%25..." in URLs, or "%..."). */
static bool v6_literal(const char *s, size_t n, struct ctkn_ip *out)
{
  char buf[64];
  size_t k;

  if (n < 3 || s[0] != '[' || s[n - 1] != ']')
    return false;
  s++;
  n -= 2;
  for (k = 0; k < n && s[k] != '%'; k++)
    ;
  if (k >= sizeof(buf))
    return false;
  memcpy(buf, s, k);
  buf[k] = '\0';
  memset(out, 0, sizeof(*out));
  out->family = 6;
  return inet_pton(AF_INET6, buf, out->b) == 1;
}

bool ctkn_ip_from_host(const char *host, size_t n, struct ctkn_ip *out)
{
  if (n > 0 && host[0] == '[')
    return v6_literal(host, n, out);
  return v4_literal(host, n, out);
}

/* ---- networks as operators write them -------------------------------------
 */

/* The prefix length after '/': a decimal 0..max, no sign or leading 0. */
static bool prefix_len(const char *s, int max, int *len)
{
  size_t n = strlen(s);

  if (n == 0 || n > 3 || (n > 1 && s[0] == '0'))
    return false;
  *len = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return false;
    *len = *len * 10 + (s[i] - '0');
  }
  return *len <= max;
}

int ctkn_cidr_parse(const char *s, struct ctkn_cidr *out, struct ctkn_err *err)
{
  const char *slash = strchr(s, '/');
  size_t n = slash ? (size_t)(slash - s) : strlen(s);
  char addr[64];
  bool v6 = memchr(s, ':', n) != NULL;
  int max = v6 ? 128 : 32;

  memset(out, 0, sizeof(*out));
  out->net.family = v6 ? 6 : 4;
  if (n >= sizeof(addr))
    return ctkn__err_field(err, CTKN_EINVAL, FIELD,
                           "\"%.60s\" is not an address", s);
  memcpy(addr, s, n);
  addr[n] = '\0';
  /* inet_pton() takes dotted quads of decimals only, unlike inet_aton(). */
  if (inet_pton(v6 ? AF_INET6 : AF_INET, addr, out->net.b) != 1)
    return ctkn__err_field(err, CTKN_EINVAL, FIELD,
                           "\"%.60s\" is not an IPv4 address (a.b.c.d) or an "
                           "IPv6 address",
                           addr);
  out->len = max;
  if (slash != NULL && !prefix_len(slash + 1, max, &out->len))
    return ctkn__err_field(err, CTKN_EINVAL, FIELD,
                           "the prefix length of \"%.60s\" must be 0-%d", s,
                           max);
  struct ctkn_ip masked = out->net;
  for (int bit = out->len; bit < max; bit++)
    masked.b[bit / 8] &= (uint8_t) ~(0x80 >> (bit % 8));
  if (memcmp(masked.b, out->net.b, sizeof(masked.b)) != 0) {
    char net[CTKN_IP_STR];
    ctkn_ip_str(&masked, net);
    return ctkn__err_field(err, CTKN_EINVAL, FIELD,
                           "\"%.60s\" has bits set past its prefix (did you "
                           "mean %s/%d?)",
                           s, net, out->len);
  }
  return CTKN_OK;
}
