/*
 * test_netaddr.c - IP literals as resolvers read them, CIDR networks, and
 * the special-purpose ranges (netaddr.h).
 *
 * Table-driven: every range's first and last address is in it, and the
 * addresses just outside each end are classified as they really are
 * (global, or the neighbouring range), so a wrong prefix length or a
 * wrong table order fails here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>

#include "ctkn/error.h"
#include "ctkn/netaddr.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* An address in presentation form (inet_pton: dotted quad or v6). */
static struct ctkn_ip ip(const char *s)
{
  struct ctkn_ip a = {0};

  if (strchr(s, ':') != NULL) {
    a.family = 6;
    if (inet_pton(AF_INET6, s, a.b) != 1)
      fail_msg("bad v6 in the test: %s", s);
  } else {
    a.family = 4;
    if (inet_pton(AF_INET, s, a.b) != 1)
      fail_msg("bad v4 in the test: %s", s);
  }
  return a;
}

/* The address, and the start of the range's name (NULL: global). */
struct want {
  const char *addr;
  const char *range;
};

static void check_table(const struct want *t, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    struct ctkn_ip a = ip(t[i].addr);
    const char *got = ctkn_ip_special(&a);
    if (t[i].range == NULL && got != NULL)
      fail_msg("%s: want global, got \"%s\"", t[i].addr, got);
    if (t[i].range != NULL &&
        (got == NULL || strncmp(got, t[i].range, strlen(t[i].range)) != 0))
      fail_msg("%s: want \"%s\", got \"%s\"", t[i].addr, t[i].range,
               got ? got : "(global)");
  }
}

static void test_v4_ranges_and_their_boundaries(void **st)
{
  static const struct want t[] = {
      {"0.0.0.0", "unspecified 0.0.0.0/32"},
      {"0.0.0.1", "\"this network\" 0.0.0.0/8"},
      {"0.255.255.255", "\"this network\""},
      {"1.0.0.0", NULL},
      {"9.255.255.255", NULL},
      {"10.0.0.0", "private-use 10.0.0.0/8"},
      {"10.255.255.255", "private-use 10.0.0.0/8"},
      {"11.0.0.0", NULL},
      {"100.63.255.255", NULL},
      {"100.64.0.0", "shared address space (CGNAT) 100.64.0.0/10"},
      {"100.127.255.255", "shared address space (CGNAT)"},
      {"100.128.0.0", NULL},
      {"126.255.255.255", NULL},
      {"127.0.0.0", "loopback 127.0.0.0/8"},
      {"127.0.0.1", "loopback 127.0.0.0/8"},
      {"127.255.255.255", "loopback 127.0.0.0/8"},
      {"128.0.0.0", NULL},
      {"169.253.255.255", NULL},
      {"169.254.0.0", "link-local 169.254.0.0/16"},
      {"169.254.169.254", "link-local 169.254.0.0/16"},
      {"169.254.255.255", "link-local"},
      {"169.255.0.0", NULL},
      {"172.15.255.255", NULL},
      {"172.16.0.0", "private-use 172.16.0.0/12"},
      {"172.31.255.255", "private-use 172.16.0.0/12"},
      {"172.32.0.0", NULL},
      {"191.255.255.255", NULL},
      {"192.0.0.0", "IETF protocol assignments 192.0.0.0/24"},
      {"192.0.0.255", "IETF protocol assignments"},
      {"192.0.1.0", NULL},
      {"192.0.1.255", NULL},
      {"192.0.2.0", "documentation 192.0.2.0/24"},
      {"192.0.2.255", "documentation 192.0.2.0/24"},
      {"192.0.3.0", NULL},
      {"192.88.98.255", NULL},
      {"192.88.99.0", "6to4 relay anycast 192.88.99.0/24"},
      {"192.88.99.255", "6to4 relay anycast"},
      {"192.88.100.0", NULL},
      {"192.167.255.255", NULL},
      {"192.168.0.0", "private-use 192.168.0.0/16"},
      {"192.168.255.255", "private-use 192.168.0.0/16"},
      {"192.169.0.0", NULL},
      {"198.17.255.255", NULL},
      {"198.18.0.0", "benchmarking 198.18.0.0/15"},
      {"198.19.255.255", "benchmarking 198.18.0.0/15"},
      {"198.20.0.0", NULL},
      {"198.51.99.255", NULL},
      {"198.51.100.0", "documentation 198.51.100.0/24"},
      {"198.51.100.255", "documentation 198.51.100.0/24"},
      {"198.51.101.0", NULL},
      {"203.0.112.255", NULL},
      {"203.0.113.0", "documentation 203.0.113.0/24"},
      {"203.0.113.255", "documentation 203.0.113.0/24"},
      {"203.0.114.0", NULL},
      {"223.255.255.255", NULL},
      {"224.0.0.0", "multicast 224.0.0.0/4"},
      {"239.255.255.255", "multicast 224.0.0.0/4"},
      {"240.0.0.0", "reserved 240.0.0.0/4"},
      {"255.255.255.254", "reserved 240.0.0.0/4"},
      {"255.255.255.255", "limited broadcast 255.255.255.255/32"},
      {"8.8.8.8", NULL},
      {"1.1.1.1", NULL},
      {"93.184.215.14", NULL},
  };
  (void)st;
  check_table(t, N(t));
}

static void test_v6_ranges_and_their_boundaries(void **st)
{
  static const struct want t[] = {
      {"::", "unspecified ::/128"},
      {"::1", "loopback ::1/128"},
      {"::2", "IPv4-compatible ::/96"},
      {"::127.0.0.1", "IPv4-compatible ::/96"},
      {"::ffff:ffff", "IPv4-compatible ::/96"},
      {"::1:0:0", "not global unicast"},
      {"::fffe:ffff:ffff", "not global unicast"},
      {"::ffff:0:0", "IPv4-mapped ::ffff:0:0/96"},
      {"::ffff:127.0.0.1", "IPv4-mapped ::ffff:0:0/96"},
      {"::ffff:8.8.8.8", "IPv4-mapped"},
      {"::ffff:ffff:ffff", "IPv4-mapped"},
      {"::1:0:0:0", "not global unicast"},
      {"64:ff9a:ffff:ffff:ffff:ffff:ffff:ffff", "not global unicast"},
      {"64:ff9b::", "IPv4/IPv6 translation 64:ff9b::/96"},
      {"64:ff9b::7f00:1", "IPv4/IPv6 translation 64:ff9b::/96"},
      {"64:ff9b::ffff:ffff", "IPv4/IPv6 translation"},
      {"64:ff9b::1:0:0", "not global unicast"},
      {"64:ff9b:1::", "local-use translation 64:ff9b:1::/48"},
      {"64:ff9b:1:ffff:ffff:ffff:ffff:ffff", "local-use translation"},
      {"64:ff9b:2::", "not global unicast"},
      {"100::", "discard-only 100::/64"},
      {"100::ffff:ffff:ffff:ffff", "discard-only 100::/64"},
      {"100:0:0:1::", "not global unicast"},
      {"1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "not global unicast"},
      {"2000::", NULL},
      {"2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff", NULL},
      {"2001::", "Teredo 2001::/32"},
      {"2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo 2001::/32"},
      {"2001:0:ffff:ffff:ffff:ffff:ffff:ffff", "Teredo"},
      {"2001:1::", "IETF protocol assignments 2001::/23"},
      {"2001:1:ffff:ffff:ffff:ffff:ffff:ffff", "IETF protocol assignments"},
      {"2001:2::", "benchmarking 2001:2::/48"},
      {"2001:2:0:ffff:ffff:ffff:ffff:ffff", "benchmarking 2001:2::/48"},
      {"2001:2:1::", "IETF protocol assignments"},
      {"2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff", "IETF protocol assignments"},
      {"2001:200::", NULL},
      {"2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", NULL},
      {"2001:db8::", "documentation 2001:db8::/32"},
      {"2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "documentation 2001:db8::/32"},
      {"2001:db9::", NULL},
      {"2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff", NULL},
      {"2002::", "6to4 2002::/16"},
      {"2002:7f00:1::", "6to4 2002::/16"},
      {"2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "6to4"},
      {"2003::", NULL},
      {"2606:4700:4700::1111", NULL},
      {"3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", NULL},
      {"3fff::", "documentation 3fff::/20"},
      {"3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff", "documentation 3fff::/20"},
      {"3fff:1000::", NULL},
      {"3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", NULL},
      {"4000::", "not global unicast (outside 2000::/3)"},
      {"5eff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "not global unicast"},
      {"5f00::", "segment routing SIDs 5f00::/16"},
      {"5f00:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "segment routing SIDs"},
      {"5f01::", "not global unicast"},
      {"fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "not global unicast"},
      {"fc00::", "unique local fc00::/7"},
      {"fd12:3456::1", "unique local fc00::/7"},
      {"fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "unique local"},
      {"fe00::", "not global unicast"},
      {"fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "not global unicast"},
      {"fe80::", "link-local fe80::/10"},
      {"fe80::1", "link-local fe80::/10"},
      {"febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "link-local fe80::/10"},
      {"fec0::", "site-local fec0::/10"},
      {"feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "site-local"},
      {"ff00::", "multicast ff00::/8"},
      {"ff02::1", "multicast ff00::/8"},
      {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "multicast"},
  };
  (void)st;
  check_table(t, N(t));
}

/* ---- literals ------------------------------------------------------------ */

static void test_host_literal_forms(void **st)
{
  /* host, and the address it is (NULL: a name, not a literal) */
  static const struct {
    const char *host, *addr;
  } t[] = {
      {"127.0.0.1", "127.0.0.1"},
      {"0", "0.0.0.0"},
      {"0.0.0.0", "0.0.0.0"},
      {"2130706433", "127.0.0.1"},
      {"0x7f000001", "127.0.0.1"},
      {"0x7F000001", "127.0.0.1"},
      {"0x7f.1", "127.0.0.1"},
      {"0X7F.0X0.0X0.0X1", "127.0.0.1"},
      {"017700000001", "127.0.0.1"},
      {"0177.0.0.1", "127.0.0.1"},
      {"0177.0.0.01", "127.0.0.1"},
      {"127.1", "127.0.0.1"},
      {"127.0.1", "127.0.0.1"},
      {"127.0.0.1.", "127.0.0.1"},
      {"169.254.43518", "169.254.169.254"},
      {"0xa9fea9fe", "169.254.169.254"},
      {"2852039166", "169.254.169.254"},
      {"10.1", "10.0.0.1"},
      {"4294967295", "255.255.255.255"},
      {"1.16777215", "1.255.255.255"},
      {"1.2.65535", "1.2.255.255"},
      {"0x", "0.0.0.0"},
      {"8.8.8.8", "8.8.8.8"},
      {"[::1]", "::1"},
      {"[::]", "::"},
      {"[0:0:0:0:0:0:0:1]", "::1"},
      {"[::ffff:127.0.0.1]", "::ffff:127.0.0.1"},
      {"[::ffff:7f00:1]", "::ffff:127.0.0.1"},
      {"[::127.0.0.1]", "::127.0.0.1"},
      {"[64:ff9b::7f00:1]", "64:ff9b::7f00:1"},
      {"[2002:7f00:1::]", "2002:7f00:1::"},
      {"[fe80::1%25eth0]", "fe80::1"},
      {"[fe80::1%eth0]", "fe80::1"},
      {"[2001:db8::1]", "2001:db8::1"},
      /* names */
      {"4294967296", NULL},
      {"1.16777216", NULL},
      {"1.2.65536", NULL},
      {"256.0.0.1", NULL},
      {"1.2.3.256", NULL},
      {"1.2.3.4.5", NULL},
      {"1..2", NULL},
      {"127.0.0.1..", NULL},
      {".1", NULL},
      {".", NULL},
      {"", NULL},
      {"08.0.0.1", NULL},
      {"0x7g.1", NULL},
      {"1e3", NULL},
      {"example.com", NULL},
      {"localhost", NULL},
      {"127.0.0.1.example.com", NULL},
      {"0x7f.example", NULL},
      {"99999999999999999999", NULL},
      {"::1", NULL},
      {"[127.0.0.1]", NULL},
      {"[]", NULL},
      {"[::1", NULL},
      {"[hello]", NULL},
  };
  (void)st;

  for (size_t i = 0; i < N(t); i++) {
    struct ctkn_ip a;
    char text[CTKN_IP_STR];
    bool lit = ctkn_ip_from_host(t[i].host, strlen(t[i].host), &a);
    if (t[i].addr == NULL) {
      if (lit)
        fail_msg("\"%s\" read as an address", t[i].host);
      continue;
    }
    if (!lit)
      fail_msg("\"%s\" not read as an address", t[i].host);
    ctkn_ip_str(&a, text);
    if (strcmp(text, t[i].addr) != 0)
      fail_msg("\"%s\" read as %s, want %s", t[i].host, text, t[i].addr);
  }
}

static void test_host_length_is_the_given_bytes(void **st)
{
  struct ctkn_ip a;
  char text[CTKN_IP_STR];
  (void)st;

  /* A URL's authority goes on past the host: only n bytes count. */
  assert_true(ctkn_ip_from_host("127.0.0.1:8080/x", 9, &a));
  ctkn_ip_str(&a, text);
  assert_string_equal(text, "127.0.0.1");
  assert_true(ctkn_ip_from_host("[::1]:8080", 5, &a));
  assert_int_equal(a.family, 6);
  assert_false(ctkn_ip_from_host("127.0.0.1:8080", 14, &a));
}

/* ---- networks ----------------------------------------------------------- */

static void test_cidr_parse_accepts_networks_and_addresses(void **st)
{
  static const struct {
    const char *s, *net;
    int len;
  } t[] = {
      {"127.0.0.0/8", "127.0.0.0", 8},
      {"10.0.0.0/8", "10.0.0.0", 8},
      {"192.168.1.0/24", "192.168.1.0", 24},
      {"0.0.0.0/0", "0.0.0.0", 0},
      {"127.0.0.1", "127.0.0.1", 32},
      {"127.0.0.1/32", "127.0.0.1", 32},
      {"::1", "::1", 128},
      {"::/0", "::", 0},
      {"fc00::/7", "fc00::", 7},
      {"::ffff:0:0/96", "::ffff:0.0.0.0", 96},
      {"2001:db8::/32", "2001:db8::", 32},
  };
  (void)st;

  for (size_t i = 0; i < N(t); i++) {
    struct ctkn_cidr c;
    struct ctkn_err err = {0};
    char text[CTKN_IP_STR];
    if (ctkn_cidr_parse(t[i].s, &c, &err) != CTKN_OK)
      fail_msg("\"%s\" refused: %s", t[i].s, err.msg);
    ctkn_ip_str(&c.net, text);
    if (strcmp(text, t[i].net) != 0 || c.len != t[i].len)
      fail_msg("\"%s\" read as %s/%d", t[i].s, text, c.len);
  }
}

static void test_cidr_parse_refuses_with_the_rule(void **st)
{
  static const struct {
    const char *s, *rule;
  } t[] = {
      {"127.0.0.1/8", "did you mean 127.0.0.0/8?"},
      {"fc00::1/7", "did you mean fc00::/7?"},
      {"127.1/8", "is not an IPv4 address"},
      {"0x7f.0.0.0/8", "is not an IPv4 address"},
      {"2130706433", "is not an IPv4 address"},
      {"example.com/8", "is not an IPv4 address"},
      {"", "is not an IPv4 address"},
      {"127.0.0.0/33", "must be 0-32"},
      {"::/129", "must be 0-128"},
      {"10.0.0.0/", "must be 0-32"},
      {"10.0.0.0/-1", "must be 0-32"},
      {"10.0.0.0/+8", "must be 0-32"},
      {"10.0.0.0/08", "must be 0-32"},
      {"10.0.0.0/8x", "must be 0-32"},
      {"10.0.0.0/8/8", "must be 0-32"},
      {"[::1]/128", "is not an IPv4 address"},
  };
  (void)st;

  for (size_t i = 0; i < N(t); i++) {
    struct ctkn_cidr c;
    struct ctkn_err err = {0};
    if (ctkn_cidr_parse(t[i].s, &c, &err) != CTKN_EINVAL)
      fail_msg("\"%s\" accepted", t[i].s);
    assert_string_equal(err.field, "allow-destination-network");
    if (strstr(err.msg, t[i].rule) == NULL)
      fail_msg("\"%s\": \"%s\" does not say \"%s\"", t[i].s, err.msg,
               t[i].rule);
  }
}

static void test_cidr_contains_by_prefix_and_family(void **st)
{
  static const struct {
    const char *net, *addr;
    bool in;
  } t[] = {
      {"127.0.0.0/8", "127.0.0.0", true},
      {"127.0.0.0/8", "127.0.0.1", true},
      {"127.0.0.0/8", "127.255.255.255", true},
      {"127.0.0.0/8", "126.255.255.255", false},
      {"127.0.0.0/8", "128.0.0.0", false},
      {"127.0.0.0/8", "::ffff:127.0.0.1", false}, /* v6, however spelt */
      {"127.0.0.0/8", "::1", false},
      {"10.1.2.3/32", "10.1.2.3", true},
      {"10.1.2.3/32", "10.1.2.2", false},
      {"10.1.2.3/32", "10.1.2.4", false},
      {"172.16.0.0/12", "172.31.255.255", true},
      {"172.16.0.0/12", "172.32.0.0", false},
      {"0.0.0.0/0", "8.8.8.8", true},
      {"0.0.0.0/0", "::1", false},
      {"::/0", "::1", true},
      {"::/0", "1.2.3.4", false},
      {"::1", "::1", true},
      {"::1", "::2", false},
      {"fc00::/7", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true},
      {"fc00::/7", "fe00::", false},
      {"fc00::/7", "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false},
      {"::ffff:0:0/96", "::ffff:127.0.0.1", true},
  };
  (void)st;

  for (size_t i = 0; i < N(t); i++) {
    struct ctkn_cidr c;
    struct ctkn_ip a = ip(t[i].addr);
    assert_int_equal(ctkn_cidr_parse(t[i].net, &c, NULL), CTKN_OK);
    if (ctkn_cidr_contains(&c, &a) != t[i].in)
      fail_msg("%s in %s: want %s", t[i].addr, t[i].net,
               t[i].in ? "yes" : "no");
  }
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_v4_ranges_and_their_boundaries),
      cmocka_unit_test(test_v6_ranges_and_their_boundaries),
      cmocka_unit_test(test_host_literal_forms),
      cmocka_unit_test(test_host_length_is_the_given_bytes),
      cmocka_unit_test(test_cidr_parse_accepts_networks_and_addresses),
      cmocka_unit_test(test_cidr_parse_refuses_with_the_rule),
      cmocka_unit_test(test_cidr_contains_by_prefix_and_family),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
