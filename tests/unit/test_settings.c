/*
 * test_settings.c - notification destinations: the command setters, the
 * plan (IDs, endpoint secrets, sealing, the version and clock rules), the
 * quarantine check, the apply rule, the protobuf and msgpack codecs,
 * Paddle's JSON shape and the settings topic's name.
 *
 * Malformed protobuf is made by appending fields to a valid encoding:
 * protobuf keeps the last value of a scalar field and merges a repeated
 * message field, so each test changes exactly one thing.
 */
#include <jansson.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "ctkn/codec.h"
#include "ctkn/crypto.h"
#include "ctkn/error.h"
#include "ctkn/event.h"
#include "ctkn/settings.h"
#include "ctkn/token.h"
#include "json_assert.h"

#define T0         INT64_C(1750948574695521) /* 2025-06-26T14:36:14.695521Z */
#define URL        "https://hooks.example.com/paddle"
#define REQUEST_ID "1681f87f-9c36-4557-a1da-bbb622afa0cc"
#define GOOD_ID    "ntfset_01h04vsbhqbpsdbkn6g5ya2r2k"
#define EV_CREATED (1u << CTKN_EVENT_CREATED)
#define EV_UPDATED (1u << CTKN_EVENT_UPDATED)
#define EV_REVOKED (1u << CTKN_EVENT_REVOKED)

#define assert_contains(hay, needle)                                           \
  do {                                                                         \
    if (strstr((hay), (needle)) == NULL)                                       \
      fail_msg("\"%s\" does not contain \"%s\"", (hay), (needle));             \
  } while (0)

static uint8_t key_a[CTKN_KEY_LEN], key_b[CTKN_KEY_LEN];

static int group_setup(void **state)
{
  (void)state;
  for (int i = 0; i < CTKN_KEY_LEN; i++) {
    key_a[i] = (uint8_t)(i * 7 + 1);
    key_b[i] = (uint8_t)(i * 7 + 2);
  }
  return 0;
}

/* ---- helpers ---------------------------------------------------------- */

static struct ctkn_setting_event *new_event(void)
{
  struct ctkn_setting_event *ev = calloc(1, sizeof(*ev));

  assert_non_null(ev);
  return ev;
}

static bool contains(const void *hay, size_t hlen, const void *needle,
                     size_t nlen)
{
  for (size_t i = 0; i + nlen <= hlen; i++) {
    if (memcmp((const uint8_t *)hay + i, needle, nlen) == 0)
      return true;
  }
  return false;
}

static void add_cmd(struct ctkn_dest_command *c, const char *url,
                    const char *events)
{
  struct ctkn_err err = {0};

  ctkn_dest_command_init(c, CTKN_DEST_ADD);
  if (ctkn_dest_command_set_url(c, url, &err) != CTKN_OK)
    fail_msg("url %s: %s", url, err.msg);
  if (ctkn_dest_command_set_events(c, events, &err) != CTKN_OK)
    fail_msg("events %s: %s", events, err.msg);
}

/* Plan an add with key_a at now and start offsets {5, 0, 42}. */
static void plan_add(struct ctkn_setting_event *ev, char *secret,
                     const char *desc, int64_t now)
{
  static const int64_t start[3] = {5, 0, 42};
  struct ctkn_dest_command c;
  struct ctkn_err err = {0};
  char scratch[CTKN_SECRET_BUF];
  int rc;

  add_cmd(&c, URL, "client_token.created,client_token.revoked");
  if (desc != NULL)
    assert_int_equal(
        ctkn_dest_command_set_description(&c, desc, strlen(desc), &err),
        CTKN_OK);
  rc = ctkn_settings_plan(NULL, &c, key_a, start, 3, now, ev,
                          secret ? secret : scratch, &err);
  if (rc != CTKN_PLAN_APPEND)
    fail_msg("plan add: %s: %s", ctkn_strerror(rc), err.msg);
}

static void update_cmd(struct ctkn_dest_command *c, const char *id)
{
  ctkn_dest_command_init(c, CTKN_DEST_UPDATE);
  assert_int_equal(ctkn_dest_command_set_id(c, id, NULL), CTKN_OK);
}

/* Plan cmd against cur (no key: not an add). */
static int plan(const struct ctkn_destination *cur,
                const struct ctkn_dest_command *c, int64_t now,
                struct ctkn_setting_event *ev, struct ctkn_err *err)
{
  return ctkn_settings_plan(cur, c, NULL, NULL, 0, now, ev, NULL, err);
}

static void assert_dest_equal(const struct ctkn_destination *a,
                              const struct ctkn_destination *b)
{
  assert_string_equal(a->id, b->id);
  assert_int_equal(a->has_description, b->has_description);
  assert_string_equal(a->description, b->description);
  assert_string_equal(a->url, b->url);
  assert_int_equal(a->active, b->active);
  assert_int_equal(a->events, b->events);
  assert_int_equal(a->traffic, b->traffic);
  assert_memory_equal(a->sealed, b->sealed, sizeof(a->sealed));
  assert_int_equal(a->created_at, b->created_at);
  assert_int_equal(a->updated_at, b->updated_at);
  assert_int_equal(a->version, b->version);
  assert_int_equal(a->deleted, b->deleted);
}

static void assert_event_equal(const struct ctkn_setting_event *a,
                               const struct ctkn_setting_event *b)
{
  assert_string_equal(a->event_id, b->event_id);
  assert_int_equal(a->type, b->type);
  assert_int_equal(a->occurred_at, b->occurred_at);
  assert_int_equal(a->version, b->version);
  assert_dest_equal(&a->data, &b->data);
  assert_int_equal(a->nstart, b->nstart);
  for (int32_t p = 0; p < a->nstart; p++)
    assert_int_equal(a->start[p], b->start[p]);
}

/* ---- where a destination may point -------------------------------------- */

/* url under env with allow (a comma-separated list of CIDRs, or NULL):
 * OK when rule is NULL, else CTKN_EINVAL on "destination" saying rule. */
static void expect_url_policy(const char *url, ctkn_env env, const char *allow,
                              const char *rule)
{
  struct ctkn_cidr nets[4];
  struct ctkn_dest_policy p = {.env = env, .allow = nets};
  struct ctkn_err err = {0};
  char list[128];

  if (allow != NULL) {
    snprintf(list, sizeof(list), "%s", allow);
    for (char *save = NULL, *t = strtok_r(list, ",", &save); t;
         t = strtok_r(NULL, ",", &save))
      assert_int_equal(ctkn_cidr_parse(t, &nets[p.nallow++], NULL), CTKN_OK);
  }
  int rc = ctkn_dest_url_check(url, &p, &err);
  if (rule == NULL && rc != CTKN_OK)
    fail_msg("%s (%s, allow %s) refused: %s", url, ctkn_env_str(env),
             allow ? allow : "-", err.msg);
  if (rule == NULL)
    return;
  if (rc != CTKN_EINVAL)
    fail_msg("%s (%s, allow %s) accepted, want \"%s\"", url, ctkn_env_str(env),
             allow ? allow : "-", rule);
  assert_string_equal(err.field, "destination");
  assert_contains(err.msg, rule);
}

static void test_url_policy_schemes_user_info_and_live(void **st)
{
  const ctkn_env S = CTKN_ENV_SANDBOX, L = CTKN_ENV_LIVE;
  struct ctkn_err err = {0};
  (void)st;

  expect_url_policy("https://hooks.example.com/x", L, NULL, NULL);
  expect_url_policy("HTTPS://hooks.example.com/x", L, NULL, NULL);
  expect_url_policy("http://hooks.example.com/x", S, NULL, NULL);
  expect_url_policy("http://hooks.example.com/x", L, NULL,
                    "must be an https:// URL in the live environment");
  expect_url_policy("ftp://hooks.example.com/x", S, NULL,
                    "http:// or https://");
  expect_url_policy("https://user:pw@hooks.example.com/", S, NULL,
                    "must not carry user info");
  expect_url_policy("https://user@hooks.example.com/", L, NULL, "user info");
  expect_url_policy("https://a:@hooks.example.com/", S, NULL, "user info");
  expect_url_policy("https://hooks.example.com@127.0.0.1/", S, NULL,
                    "user info");
  /* '@' past the authority is not user info. */
  expect_url_policy("https://hooks.example.com/a@b", S, NULL, NULL);
  expect_url_policy("https://hooks.example.com?to=a@b", S, NULL, NULL);
  expect_url_policy("https://hooks.example.com#a@b", S, NULL, NULL);
  expect_url_policy("https://hooks.example.com:8443/x", L, NULL, NULL);
  /* Brackets only around an IPv6 address, followed only by a port (a
   * client that reads the URL back, as URL parsers do, refuses others). */
  expect_url_policy("https://hooks[.example.com/", S, NULL, "enclose");
  expect_url_policy("https://hooks].example.com/", S, NULL, "enclose");
  expect_url_policy("https://[2606:4700::1]x/", S, NULL, "enclose");
  expect_url_policy("https://[2606:4700::1]]/", S, NULL, "enclose");
  expect_url_policy("https://[2606:4700::1]:8443/", S, NULL, NULL);
  expect_url_policy("https://hooks.example.com/[a]", S, NULL, NULL);
  /* A port is 1-65535, in digits. */
  expect_url_policy("https://hooks.example.com:1/", S, NULL, NULL);
  expect_url_policy("https://hooks.example.com:65535", S, NULL, NULL);
  static const char *const bad_ports[] = {
      "https://example.com:abc/",   "https://example.com:0/",
      "https://example.com:-1/",    "https://example.com:/",
      "https://example.com:65536/", "https://example.com:99999999999999999999/",
      "https://example.com:+80/",   "https://[2606:4700::1]:/",
      "https://example.com:80:80/"};
  for (size_t i = 0; i < sizeof(bad_ports) / sizeof(*bad_ports); i++)
    expect_url_policy(bad_ports[i], S, NULL, "port after the host");
  /* No policy is the strictest: live, nothing allowed. */
  assert_int_equal(ctkn_dest_url_check("http://hooks.example.com/", NULL, &err),
                   CTKN_EINVAL);
  assert_contains(err.msg, "https://");
  assert_int_equal(ctkn_dest_url_check("https://127.0.0.1/", NULL, &err),
                   CTKN_EINVAL);
  assert_int_equal(ctkn_dest_url_check("https://8.8.8.8/", NULL, &err),
                   CTKN_OK);
}

static void test_url_policy_literal_addresses(void **st)
{
  const ctkn_env S = CTKN_ENV_SANDBOX;
  const char *lo = "127.0.0.0/8";
  (void)st;

  expect_url_policy("http://127.0.0.1:8080/h", S, NULL,
                    "destination address 127.0.0.1 is not globally reachable "
                    "(loopback 127.0.0.0/8); allow it with "
                    "--allow-destination-network");
  expect_url_policy("http://127.0.0.1:8080/h", S, lo, NULL);
  expect_url_policy("http://127.0.0.1:8080/h", S, "10.0.0.0/8,127.0.0.1/32",
                    NULL);
  expect_url_policy("http://127.0.0.2/h", S, "127.0.0.1/32", "127.0.0.2");
  expect_url_policy("http://0:9/", S, NULL, "0.0.0.0 is not globally");
  expect_url_policy("http://0.0.0.0/", S, lo, "unspecified");
  expect_url_policy("http://2130706433/", S, NULL, "127.0.0.1 is not");
  expect_url_policy("http://0x7f.1/", S, NULL, "127.0.0.1 is not");
  expect_url_policy("http://017700000001/", S, NULL, "127.0.0.1 is not");
  expect_url_policy("http://127.1/", S, NULL, "127.0.0.1 is not");
  expect_url_policy("http://127.0.0.1./", S, NULL, "127.0.0.1 is not");
  expect_url_policy("http://2130706433/", S, lo, NULL);
  expect_url_policy("http://169.254.169.254/latest/meta-data/", S, NULL,
                    "169.254.169.254 is not globally reachable (link-local");
  expect_url_policy("http://10.1.2.3/", S, NULL, "private-use");
  expect_url_policy("http://100.64.0.1/", S, NULL, "CGNAT");
  expect_url_policy("http://[::1]:8080/", S, NULL,
                    "::1 is not globally reachable (loopback ::1/128)");
  expect_url_policy("http://[::1]:8080/", S, lo, "::1 is not");
  expect_url_policy("http://[::1]:8080/", S, "::1/128", NULL);
  expect_url_policy("http://[::]/", S, NULL, "unspecified ::/128");
  /* A v4 allowance does not admit v6 spellings of the same address. */
  expect_url_policy("http://[::ffff:127.0.0.1]/", S, lo,
                    "::ffff:127.0.0.1 is not globally reachable "
                    "(IPv4-mapped");
  expect_url_policy("http://[::ffff:127.0.0.1]/", S, "::ffff:0:0/96", NULL);
  expect_url_policy("http://[::127.0.0.1]/", S, NULL, "IPv4-compatible");
  expect_url_policy("http://[64:ff9b::7f00:1]/", S, NULL, "translation");
  expect_url_policy("http://[2002:7f00:1::1]/", S, NULL, "6to4");
  expect_url_policy("http://[2001::1]/", S, NULL, "Teredo");
  expect_url_policy("http://[fe80::1%25eth0]/", S, NULL, "link-local");
  expect_url_policy("http://[fd00::1]/", S, NULL, "unique local");
  expect_url_policy("http://[127.0.0.1]/", S, NULL, "holds an IPv6");
  expect_url_policy("http://[::1/", S, NULL, "holds an IPv6");
  /* Global addresses and names pass; names are judged at connect time. */
  expect_url_policy("http://8.8.8.8/", S, NULL, NULL);
  expect_url_policy("http://[2606:4700:4700::1111]/", S, NULL, NULL);
  expect_url_policy("http://localhost:8080/", S, NULL, NULL);
  expect_url_policy("http://127.0.0.1.nip.io/", S, NULL, NULL);
}

static void test_addr_allowed_says_why(void **st)
{
  struct ctkn_cidr lo;
  struct ctkn_dest_policy p = {.env = CTKN_ENV_LIVE};
  struct ctkn_ip a = {.family = 4, .b = {127, 0, 0, 1}};
  struct ctkn_ip g = {.family = 4, .b = {8, 8, 8, 8}};
  char why[256] = "";
  (void)st;

  assert_true(ctkn_dest_addr_allowed(&g, NULL, why, sizeof(why)));
  assert_string_equal(why, "");
  assert_false(ctkn_dest_addr_allowed(&a, &p, why, sizeof(why)));
  assert_string_equal(why, "destination address 127.0.0.1 is not globally "
                           "reachable (loopback 127.0.0.0/8); allow it with "
                           "--allow-destination-network");
  assert_int_equal(ctkn_cidr_parse("127.0.0.0/8", &lo, NULL), CTKN_OK);
  p.allow = &lo;
  p.nallow = 1;
  assert_true(ctkn_dest_addr_allowed(&a, &p, why, sizeof(why)));
}

/* ---- command setters ---------------------------------------------------- */

static void expect_bad_url(const char *url, const char *rule)
{
  struct ctkn_dest_command c;
  struct ctkn_err err = {0};

  ctkn_dest_command_init(&c, CTKN_DEST_ADD);
  if (ctkn_dest_command_set_url(&c, url, &err) != CTKN_EINVAL)
    fail_msg("url \"%.80s\" was accepted", url);
  assert_string_equal(err.field, "destination");
  assert_contains(err.msg, rule);
  assert_false(c.set_url);
}

static void test_set_url_accepts_http_and_https_with_a_host(void **st)
{
  static const char *const good[] = {
      "http://example.com", "https://hooks.example.com:8443/paddle?x=1#f",
      "HTTPS://EXAMPLE.COM/", "http://127.0.0.1:8080/hook",
      "https://user@example.com/x"};
  struct ctkn_dest_command c;
  struct ctkn_err err = {0};
  (void)st;

  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
    ctkn_dest_command_init(&c, CTKN_DEST_ADD);
    if (ctkn_dest_command_set_url(&c, good[i], &err) != CTKN_OK)
      fail_msg("%s refused: %s", good[i], err.msg);
    assert_true(c.set_url);
    assert_string_equal(c.url, good[i]);
  }
}

static void test_set_url_refuses_other_schemes_and_missing_hosts(void **st)
{
  (void)st;
  expect_bad_url("ftp://example.com/x", "http:// or https://");
  expect_bad_url("javascript:alert(1)", "http:// or https://");
  expect_bad_url("example.com/hook", "http:// or https://");
  expect_bad_url("httpx://example.com", "http:// or https://");
  expect_bad_url("", "http:// or https://");
  expect_bad_url("https://", "host");
  expect_bad_url("http://", "host");
  expect_bad_url("https:///x", "host");
  expect_bad_url("http://:80", "host");
  expect_bad_url("http://?q", "host");
}

static void test_set_url_refuses_invisible_and_non_ascii(void **st)
{
  (void)st;
  expect_bad_url("https://example.com/a b", "visible ASCII");
  expect_bad_url("https://example.com/\tx", "visible ASCII");
  expect_bad_url("https://example.com/\x7f", "visible ASCII");
  expect_bad_url("https://ex\nample.com", "visible ASCII");
  expect_bad_url("https://b\xc3\xbc"
                 "cher.example/",
                 "visible ASCII");
}

static void test_set_url_length_limit_is_2048_bytes(void **st)
{
  char *url = malloc(CTKN_URL_MAX + 2);
  struct ctkn_dest_command c;
  struct ctkn_err err = {0};
  (void)st;

  assert_non_null(url);
  strcpy(url, "https://example.com/");
  memset(url + strlen(url), 'a', CTKN_URL_MAX + 1 - strlen(url));
  url[CTKN_URL_MAX] = '\0'; /* exactly 2048 bytes */
  ctkn_dest_command_init(&c, CTKN_DEST_ADD);
  assert_int_equal(ctkn_dest_command_set_url(&c, url, &err), CTKN_OK);
  assert_int_equal(strlen(c.url), CTKN_URL_MAX);
  url[CTKN_URL_MAX] = 'a';
  url[CTKN_URL_MAX + 1] = '\0'; /* 2049 */
  expect_bad_url(url, "2048");
  free(url);
}

static void test_set_events_parses_names_into_the_mask(void **st)
{
  struct ctkn_dest_command c;
  struct ctkn_err err = {0};
  (void)st;

  ctkn_dest_command_init(&c, CTKN_DEST_ADD);
  assert_int_equal(ctkn_dest_command_set_events(
                       &c, "client_token.created,client_token.revoked", &err),
                   CTKN_OK);
  assert_true(c.set_events);
  assert_int_equal(c.events, EV_CREATED | EV_REVOKED);

  ctkn_dest_command_init(&c, CTKN_DEST_ADD);
  assert_int_equal(
      ctkn_dest_command_set_events(&c, "client_token.updated", &err), CTKN_OK);
  assert_int_equal(c.events, EV_UPDATED);

  assert_int_equal(
      ctkn_dest_command_set_events(&c,
                                   "client_token.revoked,client_token.updated,"
                                   "client_token.created",
                                   &err),
      CTKN_OK);
  assert_int_equal(c.events, CTKN_DEST_TOKEN_EVENTS);

  /* The API keys' events, by the settings event codes (issue #14). */
  assert_int_equal(ctkn_dest_command_set_events(
                       &c,
                       "api_key.created,api_key.updated,api_key.revoked,"
                       "api_key.expiring,api_key.expired",
                       &err),
                   CTKN_OK);
  assert_int_equal(c.events, CTKN_DEST_AKEY_EVENTS);
  assert_int_equal(ctkn_dest_command_set_events(
                       &c, "client_token.created,api_key.revoked", &err),
                   CTKN_OK);
  assert_int_equal(c.events, EV_CREATED | (1u << CTKN_DEST_AKEY_REVOKED));
  for (int t = CTKN_DEST_AKEY_CREATED; t <= CTKN_DEST_AKEY_EXPIRED; t++) {
    assert_int_equal(ctkn_settings_event_code(ctkn_dest_event_str(t)), t);
    assert_int_equal(ctkn_dest_event_parse(ctkn_dest_event_str(t)), t);
  }
  assert_null(ctkn_dest_event_str(4));
  assert_int_equal(ctkn_dest_event_parse("api_key.used"), 0);
  assert_int_equal(ctkn_dest_event_parse("api_key.rotated"), 0);
}

static void expect_bad_events(const char *csv, const char *rule)
{
  struct ctkn_dest_command c;
  struct ctkn_err err = {0};

  ctkn_dest_command_init(&c, CTKN_DEST_ADD);
  if (ctkn_dest_command_set_events(&c, csv, &err) != CTKN_EINVAL)
    fail_msg("events \"%s\" were accepted", csv);
  assert_string_equal(err.field, "subscribed_events");
  assert_contains(err.msg, rule);
  assert_false(c.set_events);
  assert_int_equal(c.events, 0);
}

static void test_set_events_refuses_bad_lists(void **st)
{
  (void)st;
  expect_bad_events("", "is not one of client_token.created");
  expect_bad_events("client_token.foo", "\"client_token.foo\" is not");
  expect_bad_events("client_token.created,client_token.created",
                    "\"client_token.created\" is named twice");
  expect_bad_events("client_token.created,", "is not one of");
  expect_bad_events(",client_token.created", "is not one of");
  expect_bad_events("client_token.created, client_token.revoked",
                    "is not one of");
  expect_bad_events("notification_setting.created", "is not");
  expect_bad_events("api_key.used", "is not");
  expect_bad_events("api_key.revoked,api_key.revoked", "is named twice");
}

static void test_set_event_mask_refuses_empty_and_unknown_bits(void **st)
{
  struct ctkn_dest_command c;
  struct ctkn_err err = {0};
  (void)st;

  ctkn_dest_command_init(&c, CTKN_DEST_ADD);
  assert_int_equal(ctkn_dest_command_set_event_mask(&c, 0, &err), CTKN_EINVAL);
  assert_string_equal(err.field, "subscribed_events");
  assert_int_equal(ctkn_dest_command_set_event_mask(&c, EV_CREATED | 1u, &err),
                   CTKN_EINVAL);
  assert_int_equal(ctkn_dest_command_set_event_mask(&c, 1u << 4, &err),
                   CTKN_EINVAL);
  assert_int_equal(ctkn_dest_command_set_event_mask(&c, 1u << 11, &err),
                   CTKN_EINVAL);
  assert_false(c.set_events);
  assert_int_equal(ctkn_dest_command_set_event_mask(&c, EV_REVOKED, &err),
                   CTKN_OK);
  assert_true(c.set_events);
  assert_int_equal(c.events, EV_REVOKED);
}

static void test_set_id_refuses_bad_ids(void **st)
{
  static const char *const bad[] = {
      "",
      "ntfset_",
      "ntfset_01h04vsbhqbpsdbkn6g5ya2r2",   /* 25 */
      "ntfset_01h04vsbhqbpsdbkn6g5ya2r2kk", /* 27 */
      "ntfset_01H04VSBHQBPSDBKN6G5YA2R2K",  /* uppercase */
      "ntfset_01h04vsbhqbpsdbkn6g5ya2r2u",  /* u: not Crockford */
      "ctkn_01h04vsbhqbpsdbkn6g5ya2r2k",
      "ntf_01h04vsbhqbpsdbkn6g5ya2r2k",
      "NTFSET_01h04vsbhqbpsdbkn6g5ya2r2k"};
  struct ctkn_dest_command c;
  struct ctkn_err err = {0};
  (void)st;

  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    ctkn_dest_command_init(&c, CTKN_DEST_UPDATE);
    if (ctkn_dest_command_set_id(&c, bad[i], &err) != CTKN_EINVAL)
      fail_msg("id \"%s\" was accepted", bad[i]);
    assert_string_equal(err.field, "id");
    assert_contains(err.msg, "ntfset_");
    assert_string_equal(c.id, "");
  }
  assert_int_equal(ctkn_dest_command_set_id(&c, GOOD_ID, &err), CTKN_OK);
  assert_string_equal(c.id, GOOD_ID);
}

static void test_set_description_null_and_limits(void **st)
{
  char big[502];
  struct ctkn_dest_command c;
  struct ctkn_err err = {0};
  (void)st;

  ctkn_dest_command_init(&c, CTKN_DEST_UPDATE);
  assert_int_equal(ctkn_dest_command_set_description(&c, "Main", 4, &err),
                   CTKN_OK);
  assert_true(c.set_description);
  assert_true(c.has_description);
  assert_string_equal(c.description, "Main");
  assert_int_equal(ctkn_dest_command_set_description(&c, NULL, 0, &err),
                   CTKN_OK);
  assert_true(c.set_description);
  assert_false(c.has_description);

  memset(big, 'x', sizeof(big));
  ctkn_dest_command_init(&c, CTKN_DEST_UPDATE);
  assert_int_equal(ctkn_dest_command_set_description(&c, big, 501, &err),
                   CTKN_EINVAL);
  assert_string_equal(err.field, "description");
  assert_false(c.set_description);
  assert_int_equal(ctkn_dest_command_set_description(&c, big, 500, &err),
                   CTKN_OK);
  assert_int_equal(strlen(c.description), 500);
}

static void test_command_check_names_the_missing_field(void **st)
{
  struct ctkn_dest_command c;
  struct ctkn_err err = {0};
  (void)st;

  ctkn_dest_command_init(&c, CTKN_DEST_ADD);
  assert_int_equal(
      ctkn_dest_command_set_events(&c, "client_token.created", NULL), CTKN_OK);
  assert_int_equal(ctkn_dest_command_check(&c, &err), CTKN_EINVAL);
  assert_string_equal(err.field, "destination");
  assert_contains(err.msg, "required");

  ctkn_dest_command_init(&c, CTKN_DEST_ADD);
  assert_int_equal(ctkn_dest_command_set_url(&c, URL, NULL), CTKN_OK);
  assert_int_equal(ctkn_dest_command_check(&c, &err), CTKN_EINVAL);
  assert_string_equal(err.field, "subscribed_events");
  assert_contains(err.msg, "required");

  add_cmd(&c, URL, "client_token.created");
  assert_int_equal(ctkn_dest_command_check(&c, &err), CTKN_OK);

  /* An update without an ID, then one that changes nothing. */
  ctkn_dest_command_init(&c, CTKN_DEST_UPDATE);
  ctkn_dest_command_set_active(&c, false);
  assert_int_equal(ctkn_dest_command_check(&c, &err), CTKN_EINVAL);
  assert_string_equal(err.field, "id");
  update_cmd(&c, GOOD_ID);
  assert_int_equal(ctkn_dest_command_check(&c, &err), CTKN_EBADREQ);
  assert_contains(err.msg, "nothing to update");
  ctkn_dest_command_set_active(&c, true);
  assert_int_equal(ctkn_dest_command_check(&c, &err), CTKN_OK);

  ctkn_dest_command_init(&c, CTKN_DEST_REMOVE);
  assert_int_equal(ctkn_dest_command_check(&c, &err), CTKN_EINVAL);
  assert_string_equal(err.field, "id");
  assert_int_equal(ctkn_dest_command_set_id(&c, GOOD_ID, NULL), CTKN_OK);
  assert_int_equal(ctkn_dest_command_check(&c, &err), CTKN_OK);
}

/* ---- plan --------------------------------------------------------------- */

static void test_plan_add_generates_id_and_sealed_secret(void **st)
{
  struct ctkn_setting_event *ev = new_event(), *ev2 = new_event();
  char secret[CTKN_SECRET_BUF], secret2[CTKN_SECRET_BUF];
  char opened[CTKN_SECRET_BUF];
  struct ctkn_destination moved;
  struct ctkn_err err = {0};
  regex_t re;
  (void)st;

  plan_add(ev, secret, NULL, T0);
  assert_true(ctkn_id_valid("ntfset_", ev->data.id));
  assert_true(ctkn_id_valid("evt_", ev->event_id));
  assert_int_equal(ctkn_id_time_ms("ntfset_", ev->data.id), T0 / 1000);

  assert_int_equal(regcomp(&re, "^pdl_ntfset_[a-z0-9]{26}_[a-zA-Z0-9]{32}$",
                           REG_EXTENDED | REG_NOSUB),
                   0);
  if (regexec(&re, secret, 0, NULL, 0) != 0)
    fail_msg("secret \"%s\" has the wrong shape", secret);
  assert_int_equal(strlen(secret), CTKN_SECRET_LEN);
  assert_memory_equal(secret + 11, ev->data.id + 7, CTKN_ULID_LEN);

  /* Sealed: the random part is not there in the clear; it opens with the
   * key it was sealed under only, and only under its own ID. */
  assert_false(contains(ev->data.sealed, sizeof(ev->data.sealed),
                        secret + 12 + CTKN_ULID_LEN, 32));
  assert_int_equal(ctkn_destination_secret(&ev->data, key_a, opened, &err),
                   CTKN_OK);
  assert_string_equal(opened, secret);
  assert_int_equal(ctkn_destination_secret(&ev->data, key_b, opened, &err),
                   CTKN_EINVAL);
  assert_string_equal(opened, "");
  assert_contains(err.msg, ev->data.id);
  moved = ev->data;
  memcpy(moved.id, GOOD_ID, sizeof(moved.id));
  assert_int_equal(ctkn_destination_secret(&moved, key_a, opened, NULL),
                   CTKN_EINVAL);

  /* Another add: another ID and another secret. */
  plan_add(ev2, secret2, NULL, T0);
  if (regexec(&re, secret2, 0, NULL, 0) != 0)
    fail_msg("secret \"%s\" has the wrong shape", secret2);
  assert_string_not_equal(ev2->data.id, ev->data.id);
  assert_string_not_equal(secret2 + 12 + CTKN_ULID_LEN,
                          secret + 12 + CTKN_ULID_LEN);
  assert_memory_not_equal(ev2->data.sealed, ev->data.sealed,
                          sizeof(ev->data.sealed));
  regfree(&re);
  free(ev);
  free(ev2);
}

static void test_plan_add_fills_the_created_event(void **st)
{
  struct ctkn_setting_event *ev = new_event();
  struct ctkn_dest_command c;
  struct ctkn_err err = {0};
  char secret[CTKN_SECRET_BUF];
  int64_t start[2] = {17, 3};
  (void)st;

  plan_add(ev, NULL, NULL, T0);
  assert_int_equal(ev->type, CTKN_SETTING_CREATED);
  assert_int_equal(ev->version, 1);
  assert_int_equal(ev->data.version, 1);
  assert_false(ev->data.deleted);
  assert_true(ev->data.active);
  assert_false(ev->data.has_description);
  assert_string_equal(ev->data.url, URL);
  assert_int_equal(ev->data.events, EV_CREATED | EV_REVOKED);
  /* traffic_source: Paddle's default. */
  assert_int_equal(ev->data.traffic, CTKN_TRAFFIC_PLATFORM);
  assert_int_equal(ev->data.created_at, T0);
  assert_int_equal(ev->data.updated_at, T0);
  assert_int_equal(ev->occurred_at, T0);
  assert_int_equal(ev->nstart, 3);
  assert_int_equal(ev->start[0], 5);
  assert_int_equal(ev->start[1], 0);
  assert_int_equal(ev->start[2], 42);
  assert_int_equal(ctkn_setting_event_check(ev, &err), CTKN_OK);

  /* Paused at creation, with a description, other offsets, all traffic. */
  add_cmd(&c, "http://localhost:9000/h", "client_token.updated");
  ctkn_dest_command_set_active(&c, false);
  assert_int_equal(ctkn_dest_command_set_traffic(&c, "all", NULL), CTKN_OK);
  assert_int_equal(ctkn_dest_command_set_description(&c, "Ops", 3, NULL),
                   CTKN_OK);
  assert_int_equal(
      ctkn_settings_plan(NULL, &c, key_a, start, 2, T0, ev, secret, &err),
      CTKN_PLAN_APPEND);
  assert_false(ev->data.active);
  assert_true(ev->data.has_description);
  assert_string_equal(ev->data.description, "Ops");
  assert_string_equal(ev->data.url, "http://localhost:9000/h");
  assert_int_equal(ev->data.events, EV_UPDATED);
  assert_int_equal(ev->data.traffic, CTKN_TRAFFIC_ALL);
  assert_int_equal(ev->nstart, 2);
  assert_int_equal(ev->start[0], 17);
  assert_int_equal(ev->start[1], 3);

  /* An add needs the key. */
  assert_int_equal(
      ctkn_settings_plan(NULL, &c, NULL, start, 2, T0, ev, secret, &err),
      CTKN_EINTERNAL);
  free(ev);
}

static void test_plan_update_that_changes_nothing_is_a_noop(void **st)
{
  struct ctkn_setting_event *ev = new_event(), *up = new_event();
  struct ctkn_dest_command c;
  struct ctkn_err err = {0};
  (void)st;

  plan_add(ev, NULL, NULL, T0);
  update_cmd(&c, ev->data.id);
  assert_int_equal(ctkn_dest_command_set_url(&c, URL, NULL), CTKN_OK);
  assert_int_equal(plan(&ev->data, &c, T0 + 10, up, &err), CTKN_PLAN_NOOP);
  update_cmd(&c, ev->data.id);
  ctkn_dest_command_set_active(&c, true);
  assert_int_equal(ctkn_dest_command_set_events(
                       &c, "client_token.revoked,client_token.created", NULL),
                   CTKN_OK);
  assert_int_equal(ctkn_dest_command_set_description(&c, NULL, 0, NULL),
                   CTKN_OK);
  assert_int_equal(ctkn_dest_command_set_traffic(&c, "platform", NULL),
                   CTKN_OK);
  assert_int_equal(plan(&ev->data, &c, T0 + 10, up, &err), CTKN_PLAN_NOOP);
  assert_dest_equal(&up->data, &ev->data);

  /* One real change among the same values is not a no-op: traffic_source,
   * then active. */
  assert_int_equal(ctkn_dest_command_set_traffic(&c, "all", NULL), CTKN_OK);
  assert_int_equal(plan(&ev->data, &c, T0 + 10, up, &err), CTKN_PLAN_APPEND);
  assert_int_equal(up->data.traffic, CTKN_TRAFFIC_ALL);
  assert_int_equal(ctkn_dest_command_set_traffic(&c, "platform", NULL),
                   CTKN_OK);
  ctkn_dest_command_set_active(&c, false);
  assert_int_equal(plan(&ev->data, &c, T0 + 10, up, &err), CTKN_PLAN_APPEND);
  /* A traffic_source change alone is an update; simulation is refused. */
  update_cmd(&c, ev->data.id);
  assert_int_equal(ctkn_dest_command_check(&c, &err), CTKN_EBADREQ);
  assert_int_equal(ctkn_dest_command_set_traffic(&c, "simulation", &err),
                   CTKN_EINVAL);
  assert_string_equal(err.field, "traffic_source");
  assert_false(c.set_traffic);
  assert_int_equal(ctkn_dest_command_set_traffic(&c, "all", NULL), CTKN_OK);
  assert_int_equal(ctkn_dest_command_check(&c, &err), CTKN_OK);
  free(ev);
  free(up);
}

static void test_plan_update_changes_fields_and_bumps_version(void **st)
{
  struct ctkn_setting_event *ev = new_event(), *up = new_event();
  struct ctkn_destination next;
  struct ctkn_dest_command c;
  struct ctkn_err err = {0};
  char reason[256];
  (void)st;

  plan_add(ev, NULL, NULL, T0);
  update_cmd(&c, ev->data.id);
  assert_int_equal(
      ctkn_dest_command_set_url(&c, "http://other.example/x", NULL), CTKN_OK);
  assert_int_equal(
      ctkn_dest_command_set_events(&c, "client_token.updated", NULL), CTKN_OK);
  assert_int_equal(ctkn_dest_command_set_description(&c, "Backup", 6, NULL),
                   CTKN_OK);
  ctkn_dest_command_set_active(&c, false);
  assert_int_equal(plan(&ev->data, &c, T0 + 5000, up, &err), CTKN_PLAN_APPEND);
  assert_int_equal(up->type, CTKN_SETTING_UPDATED);
  assert_true(ctkn_id_valid("evt_", up->event_id));
  assert_string_not_equal(up->event_id, ev->event_id);
  assert_string_equal(up->data.id, ev->data.id);
  assert_string_equal(up->data.url, "http://other.example/x");
  assert_int_equal(up->data.events, EV_UPDATED);
  assert_true(up->data.has_description);
  assert_string_equal(up->data.description, "Backup");
  assert_false(up->data.active);
  assert_int_equal(up->version, 2);
  assert_int_equal(up->data.version, 2);
  assert_int_equal(up->data.created_at, T0);
  assert_int_equal(up->data.updated_at, T0 + 5000);
  assert_int_equal(up->occurred_at, T0 + 5000);
  assert_memory_equal(up->data.sealed, ev->data.sealed,
                      sizeof(ev->data.sealed));
  assert_int_equal(up->nstart, 0);
  assert_int_equal(ctkn_setting_event_check(up, &err), CTKN_OK);
  assert_int_equal(
      ctkn_settings_apply(&ev->data, up, &next, reason, sizeof(reason)),
      CTKN_APPLIED);

  /* Back to null: a change. */
  update_cmd(&c, next.id);
  assert_int_equal(ctkn_dest_command_set_description(&c, NULL, 0, NULL),
                   CTKN_OK);
  assert_int_equal(plan(&next, &c, T0 + 6000, up, &err), CTKN_PLAN_APPEND);
  assert_false(up->data.has_description);
  assert_int_equal(up->version, 3);
  free(ev);
  free(up);
}

static void test_plan_updated_at_never_goes_backwards(void **st)
{
  struct ctkn_setting_event *ev = new_event(), *up = new_event();
  struct ctkn_destination cur;
  struct ctkn_dest_command c;
  struct ctkn_err err = {0};
  (void)st;

  plan_add(ev, NULL, NULL, T0);
  cur = ev->data;
  cur.updated_at = T0 + 1000000;
  update_cmd(&c, cur.id);
  ctkn_dest_command_set_active(&c, false);
  /* A clock behind the stored state. */
  assert_int_equal(plan(&cur, &c, T0 + 10, up, &err), CTKN_PLAN_APPEND);
  assert_int_equal(up->data.updated_at, T0 + 1000001);
  assert_int_equal(up->occurred_at, T0 + 1000001);
  assert_int_equal(up->data.created_at, T0);
  /* The same instant also moves forwards. */
  assert_int_equal(plan(&cur, &c, T0 + 1000000, up, &err), CTKN_PLAN_APPEND);
  assert_int_equal(up->data.updated_at, T0 + 1000001);
  free(ev);
  free(up);
}

static void test_plan_remove_makes_a_deleted_event(void **st)
{
  struct ctkn_setting_event *ev = new_event(), *rm = new_event();
  struct ctkn_destination next;
  struct ctkn_dest_command c;
  struct ctkn_err err = {0};
  char reason[256];
  (void)st;

  plan_add(ev, NULL, "Main", T0);
  ctkn_dest_command_init(&c, CTKN_DEST_REMOVE);
  assert_int_equal(ctkn_dest_command_set_id(&c, ev->data.id, NULL), CTKN_OK);
  assert_int_equal(plan(&ev->data, &c, T0 + 7, rm, &err), CTKN_PLAN_APPEND);
  assert_int_equal(rm->type, CTKN_SETTING_DELETED);
  assert_true(rm->data.deleted);
  assert_int_equal(rm->version, 2);
  assert_int_equal(rm->data.updated_at, T0 + 7);
  assert_string_equal(rm->data.url, URL);
  assert_string_equal(rm->data.description, "Main");
  assert_int_equal(ctkn_setting_event_check(rm, &err), CTKN_OK);
  assert_int_equal(
      ctkn_settings_apply(&ev->data, rm, &next, reason, sizeof(reason)),
      CTKN_APPLIED);
  assert_true(next.deleted);

  /* Gone: neither update nor remove finds it. */
  assert_int_equal(plan(&next, &c, T0 + 8, rm, &err), CTKN_ENOTFOUND);
  update_cmd(&c, next.id);
  ctkn_dest_command_set_active(&c, false);
  assert_int_equal(plan(&next, &c, T0 + 8, rm, &err), CTKN_ENOTFOUND);
  free(ev);
  free(rm);
}

static void test_plan_change_to_missing_destination_is_not_found(void **st)
{
  struct ctkn_setting_event *ev = new_event();
  struct ctkn_dest_command c;
  struct ctkn_err err = {0};
  (void)st;

  update_cmd(&c, GOOD_ID);
  ctkn_dest_command_set_active(&c, false);
  assert_int_equal(plan(NULL, &c, T0, ev, &err), CTKN_ENOTFOUND);
  assert_contains(err.msg, GOOD_ID);
  ctkn_dest_command_init(&c, CTKN_DEST_REMOVE);
  assert_int_equal(ctkn_dest_command_set_id(&c, GOOD_ID, NULL), CTKN_OK);
  assert_int_equal(plan(NULL, &c, T0, ev, &err), CTKN_ENOTFOUND);
  /* An incomplete command fails its check first. */
  ctkn_dest_command_init(&c, CTKN_DEST_UPDATE);
  assert_int_equal(ctkn_dest_command_set_id(&c, GOOD_ID, NULL), CTKN_OK);
  assert_int_equal(plan(NULL, &c, T0, ev, &err), CTKN_EBADREQ);
  free(ev);
}

/* ---- the quarantine check ---------------------------------------------- */

static void expect_bad_event(const struct ctkn_setting_event *ev,
                             const char *field)
{
  struct ctkn_err err = {0};

  if (ctkn_setting_event_check(ev, &err) != CTKN_EINVAL)
    fail_msg("event accepted; expected a complaint about %s", field);
  assert_string_equal(err.field, field);
  assert_true(err.msg[0] != '\0');
}

static void test_event_check_quarantines_impossible_events(void **st)
{
  struct ctkn_setting_event *good = new_event(), *up = new_event();
  struct ctkn_setting_event *ev = new_event();
  struct ctkn_dest_command c;
  (void)st;

  plan_add(good, NULL, NULL, T0);
  update_cmd(&c, good->data.id);
  ctkn_dest_command_set_active(&c, false);
  assert_int_equal(plan(&good->data, &c, T0 + 1, up, NULL), CTKN_PLAN_APPEND);
  assert_int_equal(ctkn_setting_event_check(good, NULL), CTKN_OK);
  assert_int_equal(ctkn_setting_event_check(up, NULL), CTKN_OK);

  *ev = *good;
  strcpy(ev->event_id, "evt_short");
  expect_bad_event(ev, "event_id");
  *ev = *good;
  strcpy(ev->event_id, "ctkn_01h04vsbhqbpsdbkn6g5ya2r2k");
  expect_bad_event(ev, "event_id");

  *ev = *good;
  strcpy(ev->data.id, "ntfset_1");
  expect_bad_event(ev, "data.id");

  *ev = *good;
  strcpy(ev->data.url, "ftp://example.com");
  expect_bad_event(ev, "destination");
  *ev = *good;
  strcpy(ev->data.url, "https://");
  expect_bad_event(ev, "destination");

  *ev = *good;
  ev->data.events = 0;
  expect_bad_event(ev, "data.subscribed_events");
  *ev = *good;
  ev->data.events |= 1u << 5;
  expect_bad_event(ev, "data.subscribed_events");

  *ev = *good;
  ev->data.has_description = true;
  ev->data.description[0] = '\0';
  expect_bad_event(ev, "description");

  *ev = *good;
  ev->version = ev->data.version = 2; /* created, but not version 1 */
  expect_bad_event(ev, "version");
  *ev = *good;
  ev->version = 0;
  expect_bad_event(ev, "version");
  *ev = *up;
  ev->version = ev->data.version = 1; /* updated, but version 1 */
  expect_bad_event(ev, "version");

  *ev = *good;
  ev->occurred_at = good->data.updated_at + 1;
  expect_bad_event(ev, "occurred_at");
  *ev = *up;
  ev->occurred_at = up->data.updated_at - 1;
  expect_bad_event(ev, "occurred_at");
  *ev = *good;
  ev->data.updated_at = ev->occurred_at = T0 + 1; /* create: must be equal */
  expect_bad_event(ev, "occurred_at");
  *ev = *up;
  ev->data.updated_at = ev->occurred_at = T0 - 1; /* before created_at */
  expect_bad_event(ev, "occurred_at");
  *ev = *good;
  ev->data.created_at = ev->data.updated_at = ev->occurred_at = 0;
  expect_bad_event(ev, "occurred_at");

  *ev = *up;
  ev->nstart = 1;
  ev->start[0] = 3;
  expect_bad_event(ev, "start_offsets");
  *ev = *good;
  ev->start[1] = -1;
  expect_bad_event(ev, "start_offsets");

  free(good);
  free(up);
  free(ev);
}

/* ---- apply -------------------------------------------------------------- */

static void test_apply_created_on_existing_is_rejected(void **st)
{
  struct ctkn_setting_event *ev = new_event();
  struct ctkn_destination next, before;
  char reason[256] = "";
  (void)st;

  plan_add(ev, NULL, NULL, T0);
  assert_int_equal(ctkn_settings_apply(NULL, ev, &next, reason, sizeof(reason)),
                   CTKN_APPLIED);
  assert_dest_equal(&next, &ev->data);
  before = next;
  assert_int_equal(
      ctkn_settings_apply(&before, ev, &next, reason, sizeof(reason)),
      CTKN_REJECTED);
  assert_contains(reason, "exists already");
  /* Nor may an ID be created again after its removal. */
  before.deleted = true;
  before.version = 2;
  assert_int_equal(
      ctkn_settings_apply(&before, ev, &next, reason, sizeof(reason)),
      CTKN_REJECTED);
  free(ev);
}

static void test_apply_enforces_the_version_rule(void **st)
{
  struct ctkn_setting_event *ev = new_event(), *up = new_event();
  struct ctkn_destination cur, next;
  struct ctkn_dest_command c;
  char reason[256] = "";
  (void)st;

  plan_add(ev, NULL, NULL, T0);
  assert_int_equal(ctkn_settings_apply(NULL, ev, &cur, reason, sizeof(reason)),
                   CTKN_APPLIED);
  update_cmd(&c, cur.id);
  ctkn_dest_command_set_active(&c, false);
  assert_int_equal(plan(&cur, &c, T0 + 10, up, NULL), CTKN_PLAN_APPEND);

  /* Skipped: version 3 after 1. */
  up->version = up->data.version = 3;
  assert_int_equal(ctkn_settings_apply(&cur, up, &next, reason, sizeof(reason)),
                   CTKN_REJECTED);
  assert_contains(reason, "version");

  /* In order: applied; the same event again is stale. */
  up->version = up->data.version = 2;
  assert_int_equal(ctkn_settings_apply(&cur, up, &next, reason, sizeof(reason)),
                   CTKN_APPLIED);
  assert_int_equal(next.version, 2);
  assert_false(next.active);
  cur = next;
  reason[0] = '\0';
  assert_int_equal(ctkn_settings_apply(&cur, up, &next, reason, sizeof(reason)),
                   CTKN_REJECTED);
  assert_contains(reason, "version");

  /* A change to a destination that never existed. */
  assert_int_equal(ctkn_settings_apply(NULL, up, &next, reason, sizeof(reason)),
                   CTKN_REJECTED);
  assert_contains(reason, "no destination");
  free(ev);
  free(up);
}

static void test_apply_refuses_changes_to_immutable_fields(void **st)
{
  struct ctkn_setting_event *ev = new_event(), *up = new_event();
  struct ctkn_setting_event *bad = new_event();
  struct ctkn_destination cur, next;
  struct ctkn_dest_command c;
  char reason[256] = "";
  (void)st;

  plan_add(ev, NULL, NULL, T0);
  assert_int_equal(ctkn_settings_apply(NULL, ev, &cur, reason, sizeof(reason)),
                   CTKN_APPLIED);
  update_cmd(&c, cur.id);
  ctkn_dest_command_set_active(&c, false);
  assert_int_equal(plan(&cur, &c, T0 + 10, up, NULL), CTKN_PLAN_APPEND);

  *bad = *up;
  bad->data.created_at = T0 - 1;
  assert_int_equal(
      ctkn_settings_apply(&cur, bad, &next, reason, sizeof(reason)),
      CTKN_REJECTED);
  assert_contains(reason, "created_at");

  *bad = *up;
  bad->data.sealed[CTKN_SEAL_NONCE + 3] ^= 0x40;
  assert_int_equal(
      ctkn_settings_apply(&cur, bad, &next, reason, sizeof(reason)),
      CTKN_REJECTED);
  assert_contains(reason, "secret");

  /* updated_at must move forwards. */
  *bad = *up;
  bad->data.updated_at = bad->occurred_at = T0;
  assert_int_equal(
      ctkn_settings_apply(&cur, bad, &next, reason, sizeof(reason)),
      CTKN_REJECTED);
  assert_contains(reason, "updated_at");

  assert_int_equal(ctkn_settings_apply(&cur, up, &next, reason, sizeof(reason)),
                   CTKN_APPLIED);
  free(ev);
  free(up);
  free(bad);
}

static void test_apply_chain_created_updated_deleted(void **st)
{
  struct ctkn_setting_event *ev = new_event(), *up = new_event();
  struct ctkn_setting_event *rm = new_event();
  struct ctkn_destination cur, next;
  struct ctkn_dest_command c;
  char reason[256] = "";
  (void)st;

  plan_add(ev, NULL, NULL, T0);
  assert_int_equal(ctkn_settings_apply(NULL, ev, &cur, reason, sizeof(reason)),
                   CTKN_APPLIED);
  assert_int_equal(cur.version, 1);
  assert_false(cur.deleted);

  update_cmd(&c, cur.id);
  assert_int_equal(ctkn_dest_command_set_url(&c, "https://b.example/", NULL),
                   CTKN_OK);
  assert_int_equal(plan(&cur, &c, T0 + 10, up, NULL), CTKN_PLAN_APPEND);
  assert_int_equal(ctkn_settings_apply(&cur, up, &next, reason, sizeof(reason)),
                   CTKN_APPLIED);
  assert_string_equal(next.url, "https://b.example/");
  assert_int_equal(next.version, 2);
  assert_false(next.deleted);
  cur = next;

  ctkn_dest_command_init(&c, CTKN_DEST_REMOVE);
  assert_int_equal(ctkn_dest_command_set_id(&c, cur.id, NULL), CTKN_OK);
  assert_int_equal(plan(&cur, &c, T0 + 20, rm, NULL), CTKN_PLAN_APPEND);
  /* The deleted flag comes from the event type, not from the data. */
  rm->data.deleted = false;
  assert_int_equal(ctkn_settings_apply(&cur, rm, &next, reason, sizeof(reason)),
                   CTKN_APPLIED);
  assert_true(next.deleted);
  assert_int_equal(next.version, 3);
  cur = next;

  /* After the delete: an update with the next version is refused. */
  up->version = up->data.version = 4;
  up->data.updated_at = up->occurred_at = T0 + 30;
  assert_int_equal(ctkn_settings_apply(&cur, up, &next, reason, sizeof(reason)),
                   CTKN_REJECTED);
  assert_contains(reason, "removed");
  free(ev);
  free(up);
  free(rm);
}

/* ---- codec: protobuf --------------------------------------------------- */

static void encode_event(const struct ctkn_setting_event *ev, uint8_t **buf,
                         size_t *len)
{
  struct ctkn_err err = {0};
  int rc = ctkn_setting_event_encode(ev, buf, len, &err);

  if (rc != CTKN_OK)
    fail_msg("encode: %s", err.msg);
}

static void test_setting_event_round_trips(void **st)
{
  struct ctkn_setting_event *ev = new_event(), *back = new_event();
  struct ctkn_setting_event *up = new_event();
  struct ctkn_destination cur;
  struct ctkn_dest_command c;
  struct ctkn_err err = {0};
  uint8_t *buf;
  size_t len;
  (void)st;

  /* Created: null description, start offsets, two event types. */
  plan_add(ev, NULL, NULL, T0);
  encode_event(ev, &buf, &len);
  assert_int_equal(ctkn_setting_event_decode(buf, len, back, &err), CTKN_OK);
  free(buf);
  assert_event_equal(back, ev);
  assert_false(back->data.has_description);
  assert_int_equal(back->nstart, 3);
  assert_int_equal(back->start[2], 42);

  /* Updated: a description, every event type, paused, no offsets. */
  update_cmd(&c, ev->data.id);
  assert_int_equal(
      ctkn_dest_command_set_description(&c, "Ünïcode ok", 12, NULL), CTKN_OK);
  assert_int_equal(
      ctkn_dest_command_set_event_mask(&c, CTKN_DEST_EVENTS_ALL, NULL),
      CTKN_OK);
  ctkn_dest_command_set_active(&c, false);
  assert_int_equal(ctkn_dest_command_set_traffic(&c, "all", NULL), CTKN_OK);
  assert_int_equal(plan(&ev->data, &c, T0 + 99, up, NULL), CTKN_PLAN_APPEND);
  encode_event(up, &buf, &len);
  assert_int_equal(ctkn_setting_event_decode(buf, len, back, &err), CTKN_OK);
  free(buf);
  assert_event_equal(back, up);
  assert_int_equal(back->data.traffic, CTKN_TRAFFIC_ALL);
  assert_string_equal(back->data.description, "Ünïcode ok");
  assert_int_equal(back->data.events, CTKN_DEST_EVENTS_ALL);
  assert_false(back->data.active);
  assert_int_equal(back->nstart, 0);

  /* Deleted: the flag comes back from the type. */
  ctkn_dest_command_init(&c, CTKN_DEST_REMOVE);
  assert_int_equal(ctkn_dest_command_set_id(&c, ev->data.id, NULL), CTKN_OK);
  cur = up->data;
  assert_int_equal(plan(&cur, &c, T0 + 100, up, NULL), CTKN_PLAN_APPEND);
  encode_event(up, &buf, &len);
  assert_int_equal(ctkn_setting_event_decode(buf, len, back, &err), CTKN_OK);
  free(buf);
  assert_int_equal(back->type, CTKN_SETTING_DELETED);
  assert_true(back->data.deleted);
  assert_event_equal(back, up);

  /* Encoding refuses an unknown type. */
  up->type = (ctkn_setting_type)7;
  assert_int_equal(ctkn_setting_event_encode(up, &buf, &len, &err),
                   CTKN_EINVAL);
  assert_null(buf);
  free(ev);
  free(back);
  free(up);
}

/* The encoding of a created event with extra bytes appended. */
static uint8_t *encode_with(const uint8_t *extra, size_t elen, size_t *len)
{
  struct ctkn_setting_event *ev = new_event();
  uint8_t *buf, *out;
  size_t n;

  plan_add(ev, NULL, NULL, T0);
  encode_event(ev, &buf, &n);
  out = malloc(n + elen);
  assert_non_null(out);
  memcpy(out, buf, n);
  if (elen > 0)
    memcpy(out + n, extra, elen);
  *len = n + elen;
  free(buf);
  free(ev);
  return out;
}

static void test_setting_event_decode_rejects_garbage(void **st)
{
  static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
  /* field 2 (event_type): "notification_setting.renamed" */
  static const char renamed[] = "notification_setting.renamed";
  /* field 5 (data) holding field 6 (sealed_secret) of 5 bytes */
  static const uint8_t short_seal[] = {0x2a, 0x07, 0x32, 0x05, 1, 2, 3, 4, 5};
  struct ctkn_setting_event *back = new_event();
  struct ctkn_err err = {0};
  uint8_t extra[64], *buf;
  size_t len;
  (void)st;

  assert_int_equal(ctkn_setting_event_decode(junk, sizeof(junk), back, &err),
                   CTKN_EDECODE);
  assert_int_equal(ctkn_setting_event_decode("", 0, back, &err), CTKN_EDECODE);
  assert_int_equal(ctkn_setting_event_decode("hello, world", 12, back, &err),
                   CTKN_EDECODE);

  /* The unchanged encoding decodes; a truncated one does not. */
  buf = encode_with(NULL, 0, &len);
  assert_int_equal(ctkn_setting_event_decode(buf, len, back, &err), CTKN_OK);
  assert_int_equal(ctkn_setting_event_decode(buf, len - 1, back, &err),
                   CTKN_EDECODE);
  free(buf);

  extra[0] = 0x12;
  extra[1] = (uint8_t)(sizeof(renamed) - 1);
  memcpy(extra + 2, renamed, sizeof(renamed) - 1);
  buf = encode_with(extra, 2 + sizeof(renamed) - 1, &len);
  assert_int_equal(ctkn_setting_event_decode(buf, len, back, &err),
                   CTKN_EDECODE);
  assert_contains(err.msg, "event_type");
  free(buf);

  buf = encode_with(short_seal, sizeof(short_seal), &len);
  assert_int_equal(ctkn_setting_event_decode(buf, len, back, &err),
                   CTKN_EDECODE);
  assert_contains(err.msg, "sealed_secret");
  free(buf);
  free(back);
}

/* ---- codec: msgpack ------------------------------------------------------ */

static void test_destination_round_trips(void **st)
{
  struct ctkn_setting_event *ev = new_event();
  struct ctkn_destination d, back;
  struct ctkn_err err = {0};
  uint8_t *buf;
  size_t len;
  (void)st;

  plan_add(ev, NULL, NULL, T0);
  d = ev->data;
  assert_int_equal(ctkn_destination_encode(&d, &buf, &len, &err), CTKN_OK);
  assert_int_equal(ctkn_destination_decode(buf, len, &back, &err), CTKN_OK);
  free(buf);
  assert_dest_equal(&back, &d);
  assert_false(back.has_description);

  d.has_description = true;
  strcpy(d.description, "Main endpoint");
  d.active = false;
  d.events = EV_UPDATED;
  d.updated_at = T0 + 123456;
  d.version = 300;
  d.deleted = true;
  d.traffic = CTKN_TRAFFIC_ALL;
  assert_int_equal(ctkn_destination_encode(&d, &buf, &len, &err), CTKN_OK);
  assert_int_equal(ctkn_destination_decode(buf, len, &back, &err), CTKN_OK);
  free(buf);
  assert_dest_equal(&back, &d);
  free(ev);
}

static void test_destination_decode_is_strict(void **st)
{
  struct ctkn_setting_event *ev = new_event();
  struct ctkn_destination back;
  struct ctkn_err err = {0};
  uint8_t *buf, *longer;
  size_t len;
  msgpack_sbuffer sb;
  msgpack_packer pk;
  (void)st;

  plan_add(ev, NULL, NULL, T0);
  assert_int_equal(ctkn_destination_encode(&ev->data, &buf, &len, &err),
                   CTKN_OK);
  assert_int_equal(ctkn_destination_decode(buf, len, &back, &err), CTKN_OK);

  /* Truncated anywhere. */
  for (size_t n = 0; n < len; n++) {
    if (ctkn_destination_decode(buf, n, &back, &err) != CTKN_EDECODE)
      fail_msg("a destination truncated to %zu of %zu bytes decoded", n, len);
    assert_string_equal(back.id, "");
  }
  /* Trailing bytes. */
  longer = malloc(len + 1);
  assert_non_null(longer);
  memcpy(longer, buf, len);
  longer[len] = 0xc0;
  assert_int_equal(ctkn_destination_decode(longer, len + 1, &back, &err),
                   CTKN_EDECODE);
  /* Another layout number (2 is current; 1 has a field fewer). */
  memcpy(longer, buf, len);
  assert_int_equal(longer[1], 2);
  longer[1] = 3;
  assert_int_equal(ctkn_destination_decode(longer, len, &back, &err),
                   CTKN_EDECODE);
  assert_contains(err.msg, "not a stored destination");
  longer[1] = 1;
  assert_int_equal(ctkn_destination_decode(longer, len, &back, &err),
                   CTKN_EDECODE);
  assert_contains(err.msg, "not a stored destination");
  free(longer);
  free(buf);

  /* The right layout number with the wrong shape: 10 elements; a string
   * where the sealed secret's bytes go; an unknown event bit. */
  for (int variant = 0; variant < 3; variant++) {
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, variant == 0 ? 10 : 11);
    msgpack_pack_uint8(&pk, 1);
    msgpack_pack_str_with_body(&pk, GOOD_ID, strlen(GOOD_ID));
    msgpack_pack_nil(&pk);
    msgpack_pack_str_with_body(&pk, URL, strlen(URL));
    msgpack_pack_true(&pk);
    msgpack_pack_unsigned_int(&pk, variant == 2 ? 1u << 5 : EV_CREATED);
    if (variant == 1) {
      msgpack_pack_str_with_body(&pk, (const char *)ev->data.sealed,
                                 sizeof(ev->data.sealed));
    } else {
      msgpack_pack_bin_with_body(&pk, ev->data.sealed, sizeof(ev->data.sealed));
    }
    msgpack_pack_int64(&pk, T0);
    msgpack_pack_int64(&pk, T0);
    msgpack_pack_uint64(&pk, 1);
    if (variant != 0)
      msgpack_pack_false(&pk);
    assert_int_equal(ctkn_destination_decode(sb.data, sb.size, &back, &err),
                     CTKN_EDECODE);
    msgpack_sbuffer_destroy(&sb);
  }
  /* ... and the same builder with none of those faults decodes: layout
   * 1, from before traffic_source was kept, reads as platform. */
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, 11);
  msgpack_pack_uint8(&pk, 1);
  msgpack_pack_str_with_body(&pk, GOOD_ID, strlen(GOOD_ID));
  msgpack_pack_nil(&pk);
  msgpack_pack_str_with_body(&pk, URL, strlen(URL));
  msgpack_pack_true(&pk);
  msgpack_pack_unsigned_int(&pk, EV_CREATED);
  msgpack_pack_bin_with_body(&pk, ev->data.sealed, sizeof(ev->data.sealed));
  msgpack_pack_int64(&pk, T0);
  msgpack_pack_int64(&pk, T0);
  msgpack_pack_uint64(&pk, 1);
  msgpack_pack_false(&pk);
  assert_int_equal(ctkn_destination_decode(sb.data, sb.size, &back, &err),
                   CTKN_OK);
  assert_string_equal(back.id, GOOD_ID);
  assert_int_equal(back.traffic, CTKN_TRAFFIC_PLATFORM);
  msgpack_sbuffer_destroy(&sb);

  /* Layout 2 holds traffic: 0 or 1, nothing else; 12 elements exactly. */
  for (int variant = 0; variant < 4; variant++) {
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, variant == 3 ? 11 : 12);
    msgpack_pack_uint8(&pk, 2);
    msgpack_pack_str_with_body(&pk, GOOD_ID, strlen(GOOD_ID));
    msgpack_pack_nil(&pk);
    msgpack_pack_str_with_body(&pk, URL, strlen(URL));
    msgpack_pack_true(&pk);
    msgpack_pack_unsigned_int(&pk, EV_CREATED);
    msgpack_pack_bin_with_body(&pk, ev->data.sealed, sizeof(ev->data.sealed));
    msgpack_pack_int64(&pk, T0);
    msgpack_pack_int64(&pk, T0);
    msgpack_pack_uint64(&pk, 1);
    msgpack_pack_false(&pk);
    if (variant != 3)
      msgpack_pack_uint8(&pk, variant == 2 ? 2 : (uint8_t)variant);
    assert_int_equal(ctkn_destination_decode(sb.data, sb.size, &back, &err),
                     variant < 2 ? CTKN_OK : CTKN_EDECODE);
    if (variant < 2)
      assert_int_equal(back.traffic, variant);
    msgpack_sbuffer_destroy(&sb);
  }
  free(ev);
}

/* ---- JSON ---------------------------------------------------------------- */

static void check_event_type(json_t *e, const char *name)
{
  static const char *const keys[] = {"name", "description", "group",
                                     "available_versions"};
  json_t *v;

  assert_keys(e, keys, 4);
  assert_string_equal(jstr(e, "name"), name);
  assert_true(strlen(jstr(e, "description")) > 0);
  assert_string_equal(jstr(e, "group"), "Client token");
  v = json_object_get(e, "available_versions");
  assert_true(json_is_array(v));
  assert_int_equal(json_array_size(v), 1);
  assert_true(json_is_integer(json_array_get(v, 0)));
  assert_int_equal(json_integer_value(json_array_get(v, 0)), 1);
}

static void test_json_destination_has_paddles_shape(void **st)
{
  static const char *const keys[] = {"id",
                                     "description",
                                     "type",
                                     "destination",
                                     "active",
                                     "api_version",
                                     "include_sensitive_fields",
                                     "subscribed_events",
                                     "traffic_source"};
  static const char *const keys_secret[] = {"id",
                                            "description",
                                            "type",
                                            "destination",
                                            "active",
                                            "api_version",
                                            "include_sensitive_fields",
                                            "subscribed_events",
                                            "endpoint_secret_key",
                                            "traffic_source"};
  struct ctkn_setting_event *ev = new_event();
  char secret[CTKN_SECRET_BUF];
  json_t *doc, *d, *evs;
  char *text;
  (void)st;

  plan_add(ev, secret, NULL, T0);
  text = ctkn_json_destination(&ev->data, NULL, REQUEST_ID);
  assert_non_null(text);
  assert_null(strstr(text, secret + 12 + CTKN_ULID_LEN));
  doc = parse(text);
  assert_string_equal(jstr(json_object_get(doc, "meta"), "request_id"),
                      REQUEST_ID);
  d = json_object_get(doc, "data");
  assert_keys(d, keys, sizeof(keys) / sizeof(keys[0]));
  assert_string_equal(jstr(d, "id"), ev->data.id);
  assert_true(json_is_null(json_object_get(d, "description")));
  assert_string_equal(jstr(d, "type"), "url");
  assert_string_equal(jstr(d, "destination"), URL);
  assert_true(json_is_true(json_object_get(d, "active")));
  assert_true(json_is_integer(json_object_get(d, "api_version")));
  assert_int_equal(json_integer_value(json_object_get(d, "api_version")), 1);
  assert_true(json_is_false(json_object_get(d, "include_sensitive_fields")));
  assert_string_equal(jstr(d, "traffic_source"), "platform");
  evs = json_object_get(d, "subscribed_events");
  assert_true(json_is_array(evs));
  assert_int_equal(json_array_size(evs), 2);
  check_event_type(json_array_get(evs, 0), "client_token.created");
  check_event_type(json_array_get(evs, 1), "client_token.revoked");
  json_decref(doc);

  /* At creation: the secret, once; paused and described. */
  ev->data.active = false;
  ev->data.has_description = true;
  strcpy(ev->data.description, "Main \"endpoint\"");
  ev->data.events = EV_UPDATED;
  ev->data.traffic = CTKN_TRAFFIC_ALL;
  doc = parse(ctkn_json_destination(&ev->data, secret, REQUEST_ID));
  d = json_object_get(doc, "data");
  assert_string_equal(jstr(d, "traffic_source"), "all");
  assert_keys(d, keys_secret, sizeof(keys_secret) / sizeof(keys_secret[0]));
  assert_string_equal(jstr(d, "endpoint_secret_key"), secret);
  assert_string_equal(jstr(d, "description"), "Main \"endpoint\"");
  assert_true(json_is_false(json_object_get(d, "active")));
  evs = json_object_get(d, "subscribed_events");
  assert_int_equal(json_array_size(evs), 1);
  check_event_type(json_array_get(evs, 0), "client_token.updated");
  json_decref(doc);
  free(ev);
}

static void test_json_destinations_lists_without_secrets(void **st)
{
  struct ctkn_setting_event *ev = new_event();
  struct ctkn_destination d[2];
  json_t *doc, *a;
  (void)st;

  plan_add(ev, NULL, NULL, T0);
  d[0] = ev->data;
  plan_add(ev, NULL, "second", T0 + 1000);
  d[1] = ev->data;
  doc = parse(ctkn_json_destinations(d, 2, REQUEST_ID));
  a = json_object_get(doc, "data");
  assert_true(json_is_array(a));
  assert_int_equal(json_array_size(a), 2);
  assert_string_equal(jstr(json_array_get(a, 0), "id"), d[0].id);
  assert_string_equal(jstr(json_array_get(a, 1), "id"), d[1].id);
  assert_string_equal(jstr(json_array_get(a, 1), "description"), "second");
  for (size_t i = 0; i < 2; i++)
    assert_null(json_object_get(json_array_get(a, i), "endpoint_secret_key"));
  assert_string_equal(jstr(json_object_get(doc, "meta"), "request_id"),
                      REQUEST_ID);
  json_decref(doc);

  doc = parse(ctkn_json_destinations(NULL, 0, REQUEST_ID));
  assert_int_equal(json_array_size(json_object_get(doc, "data")), 0);
  json_decref(doc);
  free(ev);
}

static void test_json_destinations_page_shows_the_secrets_given(void **st)
{
  struct ctkn_setting_event *ev = new_event();
  struct ctkn_destination d[2];
  struct ctkn_pagination page = {.per_page = 2,
                                 .next = "https://x/notification-settings",
                                 .has_more = false,
                                 .estimated_total = 2};
  const char *secrets[2] = {NULL, "pdl_ntfset_x"};
  json_t *doc, *a;
  (void)st;

  plan_add(ev, NULL, NULL, T0);
  d[0] = ev->data;
  plan_add(ev, NULL, NULL, T0 + 1000);
  d[1] = ev->data;
  doc = parse(ctkn_json_destinations_page(d, secrets, 2, &page, REQUEST_ID));
  a = json_object_get(doc, "data");
  assert_null(json_object_get(json_array_get(a, 0), "endpoint_secret_key"));
  assert_string_equal(jstr(json_array_get(a, 1), "endpoint_secret_key"),
                      "pdl_ntfset_x");
  json_decref(doc);
  doc = parse(ctkn_json_destinations_page(d, NULL, 2, &page, REQUEST_ID));
  a = json_object_get(doc, "data");
  for (size_t i = 0; i < 2; i++)
    assert_null(json_object_get(json_array_get(a, i), "endpoint_secret_key"));
  assert_string_equal(
      jstr(json_object_get(json_object_get(doc, "meta"), "pagination"), "next"),
      "https://x/notification-settings");
  json_decref(doc);
  free(ev);
}

/* ---- the settings topic's name --------------------------------------------
 */

static void test_settings_topic_appends_suffix_within_kafkas_limit(void **st)
{
  char topic[300], out[300];
  struct ctkn_err err = {0};
  (void)st;

  assert_int_equal(ctkn_settings_topic("ctkn.tokens", out, sizeof(out), &err),
                   CTKN_OK);
  assert_string_equal(out, "ctkn.tokens_settings");

  /* 240 + 9 = 249: the longest that fits. */
  memset(topic, 't', 240);
  topic[240] = '\0';
  assert_int_equal(ctkn_settings_topic(topic, out, sizeof(out), &err), CTKN_OK);
  assert_int_equal(strlen(out), 249);
  assert_string_equal(out + 240, "_settings");

  topic[240] = 't';
  topic[241] = '\0';
  strcpy(out, "untouched");
  assert_int_equal(ctkn_settings_topic(topic, out, sizeof(out), &err),
                   CTKN_EINVAL);
  assert_string_equal(err.field, "topic");
  assert_contains(err.msg, "249");
  assert_string_equal(out, "untouched");

  /* Nor does it overrun a short buffer. */
  assert_int_equal(ctkn_settings_topic("abc", out, 13, &err), CTKN_OK);
  assert_string_equal(out, "abc_settings");
  assert_int_equal(ctkn_settings_topic("abcd", out, 13, &err), CTKN_EINVAL);
}

/* The name rule comes first, before any broker is asked; a broker that
 * cannot be reached is an error within the timeout, naming the settings
 * topic. (Creating it is exercised against a real broker by the
 * integration tests, which run `ctkn init`.) */
static void test_create_topic_names_the_settings_topic(void **st)
{
  struct ctkn_log_config cfg;
  struct ctkn_err err = {0};
  bool created = true;
  int32_t n = -1;
  (void)st;

  ctkn_log_config_init(&cfg);
  snprintf(cfg.brokers, sizeof(cfg.brokers), "127.0.0.1:1");
  cfg.timeout_ms = 300;
  memset(cfg.topic, 't', 241);
  cfg.topic[241] = '\0';
  assert_int_equal(ctkn_settings_create_topic(&cfg, 1, &created, &n, &err),
                   CTKN_EINVAL);
  assert_string_equal(err.field, "topic");
  assert_false(created);
  assert_int_equal(n, 0);

  snprintf(cfg.topic, sizeof(cfg.topic), "tokens");
  int rc = ctkn_settings_create_topic(&cfg, 1, &created, &n, &err);
  assert_true(rc == CTKN_EKAFKA || rc == CTKN_ETIMEOUT);
  assert_false(created);
  assert_contains(err.msg, "tokens_settings");
  ctkn_log_config_free(&cfg);
}

static void test_setting_type_names(void **st)
{
  (void)st;
  assert_string_equal(ctkn_setting_type_str(CTKN_SETTING_CREATED),
                      "notification_setting.created");
  assert_string_equal(ctkn_setting_type_str(CTKN_SETTING_UPDATED),
                      "notification_setting.updated");
  assert_string_equal(ctkn_setting_type_str(CTKN_SETTING_DELETED),
                      "notification_setting.deleted");
  assert_null(ctkn_setting_type_str((ctkn_setting_type)0));
  assert_null(ctkn_setting_type_str((ctkn_setting_type)4));
  for (int t = CTKN_SETTING_CREATED; t <= CTKN_SETTING_DELETED; t++)
    assert_int_equal(
        ctkn_setting_type_parse(ctkn_setting_type_str((ctkn_setting_type)t)),
        t);
  assert_int_equal(ctkn_setting_type_parse("client_token.created"), 0);
  assert_int_equal(ctkn_setting_type_parse(NULL), 0);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_url_policy_schemes_user_info_and_live),
      cmocka_unit_test(test_url_policy_literal_addresses),
      cmocka_unit_test(test_addr_allowed_says_why),
      cmocka_unit_test(test_set_url_accepts_http_and_https_with_a_host),
      cmocka_unit_test(test_set_url_refuses_other_schemes_and_missing_hosts),
      cmocka_unit_test(test_set_url_refuses_invisible_and_non_ascii),
      cmocka_unit_test(test_set_url_length_limit_is_2048_bytes),
      cmocka_unit_test(test_set_events_parses_names_into_the_mask),
      cmocka_unit_test(test_set_events_refuses_bad_lists),
      cmocka_unit_test(test_set_event_mask_refuses_empty_and_unknown_bits),
      cmocka_unit_test(test_set_id_refuses_bad_ids),
      cmocka_unit_test(test_set_description_null_and_limits),
      cmocka_unit_test(test_command_check_names_the_missing_field),
      cmocka_unit_test(test_plan_add_generates_id_and_sealed_secret),
      cmocka_unit_test(test_plan_add_fills_the_created_event),
      cmocka_unit_test(test_plan_update_that_changes_nothing_is_a_noop),
      cmocka_unit_test(test_plan_update_changes_fields_and_bumps_version),
      cmocka_unit_test(test_plan_updated_at_never_goes_backwards),
      cmocka_unit_test(test_plan_remove_makes_a_deleted_event),
      cmocka_unit_test(test_plan_change_to_missing_destination_is_not_found),
      cmocka_unit_test(test_event_check_quarantines_impossible_events),
      cmocka_unit_test(test_apply_created_on_existing_is_rejected),
      cmocka_unit_test(test_apply_enforces_the_version_rule),
      cmocka_unit_test(test_apply_refuses_changes_to_immutable_fields),
      cmocka_unit_test(test_apply_chain_created_updated_deleted),
      cmocka_unit_test(test_setting_event_round_trips),
      cmocka_unit_test(test_setting_event_decode_rejects_garbage),
      cmocka_unit_test(test_destination_round_trips),
      cmocka_unit_test(test_destination_decode_is_strict),
      cmocka_unit_test(test_json_destination_has_paddles_shape),
      cmocka_unit_test(test_json_destinations_lists_without_secrets),
      cmocka_unit_test(test_json_destinations_page_shows_the_secrets_given),
      cmocka_unit_test(test_settings_topic_appends_suffix_within_kafkas_limit),
      cmocka_unit_test(test_setting_type_names),
      cmocka_unit_test(test_create_topic_names_the_settings_topic),
  };
  return cmocka_run_group_tests(tests, group_setup, NULL);
}
