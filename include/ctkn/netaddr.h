/*
 * netaddr.h - IP addresses as webhook destinations: every literal form a
 * URL's host may take, CIDR networks, and which addresses are not globally
 * reachable.
 *
 * A webhook destination is a URL a user typed, and a notifier connects to
 * what its host resolves to. An address in one of IANA's special-purpose
 * ranges that are not globally reachable (loopback, private-use, CGNAT,
 * link-local with the cloud metadata address 169.254.169.254, multicast,
 * documentation, benchmarking, reserved, ...) or in a v6 range that embeds
 * a v4 address (IPv4-mapped, IPv4-compatible, NAT64, 6to4, Teredo) is not
 * a place a webhook should go unless an operator admits its network.
 * ctkn_ip_special() is the one classification: setting.h applies it to a
 * literal host when a destination is created, and the notifier (notify.h)
 * to every address it is about to connect to, after DNS.
 *
 * The literal forms are those a resolver accepts, not only dotted quads:
 * "0", "2130706433", "0x7f.1", "017700000001", "127.1", "127.0.0.1.",
 * "[::1]", "[::ffff:127.0.0.1]" and "[fe80::1%25eth0]" are all addresses.
 *
 * Lifetime: plain values; nothing allocates.
 * Errors:   ctkn_cidr_parse() returns CTKN_EINVAL with err->field
 *           "allow-destination-network"; the rest cannot fail.
 * Thread:   all functions are thread-safe.
 * Not here: what a destination URL may be (setting.h); connecting
 *           (notify.h).
 */
#ifndef CTKN_NETADDR_H
#define CTKN_NETADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctkn/error.h"

#define CTKN_IP_STR 48 /* "ffff:ffff:...:255.255.255.255" + NUL, at most */

/* An IPv4 or IPv6 address, in network byte order. */
struct ctkn_ip {
  int family;    /* 4 or 6 */
  uint8_t b[16]; /* v4: the first 4 bytes; the rest are 0 */
};

/* A network: an address whose bits past len are 0, and len. */
struct ctkn_cidr {
  struct ctkn_ip net;
  int len; /* 0-32 (v4) or 0-128 (v6) */
};

/*
 * Whether n bytes of host (a URL's host, brackets included for v6) are an
 * IP literal, into *out when they are. v4 is as inet_aton() reads it: one
 * to four parts separated by dots, each decimal, octal (a leading 0) or
 * hex (0x), the last filling the bytes left, with one trailing dot
 * allowed. v6 is in brackets, with an optional zone ("%25eth0" or
 * "%eth0") that is ignored. Anything else is a name: false. Borrows host
 * for the call. Errors: none.
 */
bool ctkn_ip_from_host(const char *host, size_t n, struct ctkn_ip *out);

/*
 * A network as an operator writes it into *out: "10.0.0.0/8",
 * "fd00::/8", or a bare address for just that one ("127.0.0.1" is
 * 127.0.0.1/32). v4 is a dotted quad of decimals only; the bits past the
 * prefix must be 0. Borrows s for the call.
 * Errors: CTKN_EINVAL (field "allow-destination-network", the rule in
 * err->msg).
 */
int ctkn_cidr_parse(const char *s, struct ctkn_cidr *out, struct ctkn_err *err);

/* Whether a is in c: same family, and the first c->len bits equal.
 * Errors: none. */
bool ctkn_cidr_contains(const struct ctkn_cidr *c, const struct ctkn_ip *a);

/*
 * NULL when a is globally reachable; otherwise the special-purpose range
 * it is in, named and written out, e.g. "loopback 127.0.0.0/8" or
 * "IPv4-mapped ::ffff:0:0/96" (a static string). Every v6 address outside
 * global unicast 2000::/3 is special. Errors: none.
 */
const char *ctkn_ip_special(const struct ctkn_ip *a);

/* a as text ("127.0.0.1", "::ffff:127.0.0.1") into out. Errors: none. */
void ctkn_ip_str(const struct ctkn_ip *a, char out[CTKN_IP_STR]);

#endif /* CTKN_NETADDR_H */
