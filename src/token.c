/*
 * token.c - the entity's value rules: IDs, token strings, text and time.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "ctkn/token.h"
#include "internal.h"

#define US_PER_SEC 1000000LL
/* 9999-12-31T23:59:59.999999Z: RFC 3339 has four-digit years. */
#define MAX_US     253402300799999999LL

static const char crockford[] = "0123456789abcdefghjkmnpqrstvwxyz";
/* In ASCII order, so a base62 string sorts as the number it encodes. */
static const char base62[] =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

const char *ctkn_status_str(ctkn_status s)
{
  switch (s) {
  case CTKN_STATUS_ACTIVE:
    return "active";
  case CTKN_STATUS_REVOKED:
    return "revoked";
  }
  return NULL;
}

int ctkn_status_parse(const char *s, ctkn_status *out, struct ctkn_err *err)
{
  if (strcmp(s, "active") == 0)
    *out = CTKN_STATUS_ACTIVE;
  else if (strcmp(s, "revoked") == 0)
    *out = CTKN_STATUS_REVOKED;
  else
    return ctkn__err_field(err, CTKN_EINVAL, "status",
                           "must be one of active, revoked");
  return CTKN_OK;
}

const char *ctkn_env_str(ctkn_env e)
{
  switch (e) {
  case CTKN_ENV_SANDBOX:
    return "sandbox";
  case CTKN_ENV_LIVE:
    return "live";
  }
  return NULL;
}

int ctkn_env_parse(const char *s, ctkn_env *out, struct ctkn_err *err)
{
  if (strcmp(s, "sandbox") == 0)
    *out = CTKN_ENV_SANDBOX;
  else if (strcmp(s, "live") == 0)
    *out = CTKN_ENV_LIVE;
  else
    return ctkn__err_field(err, CTKN_EINVAL, "environment",
                           "must be one of sandbox, live");
  return CTKN_OK;
}

const char *ctkn_env_token_prefix(ctkn_env e)
{
  return e == CTKN_ENV_LIVE ? "live_" : "test_";
}

/* ---- time ---------------------------------------------------------- */

int64_t ctkn_now_us(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * US_PER_SEC + ts.tv_nsec / 1000;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil), so no time zone or libc state is involved. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  *d = (int)(doy - (153 * mp + 2) / 5 + 1);
  *m = (int)(mp < 10 ? mp + 3 : mp - 9);
  *y = (int)(yoe + era * 400 + (*m <= 2));
}

/* Write v as exactly n decimal digits (v < 10^n). */
static void put_digits(char *p, int64_t v, int n)
{
  for (int i = n - 1; i >= 0; i--) {
    p[i] = (char)('0' + v % 10);
    v /= 10;
  }
}

int ctkn_time_format(int64_t us, char out[CTKN_TIME_BUF])
{
  if (us < 0 || us > MAX_US) {
    out[0] = '\0';
    return CTKN_EINVAL;
  }
  int64_t secs = us / US_PER_SEC;
  int64_t days = secs / 86400;
  int64_t sod = secs % 86400;
  int y, m, d;

  civil_from_days(days, &y, &m, &d);
  memcpy(out, "0000-00-00T00:00:00.000000Z", CTKN_TIME_BUF);
  put_digits(out, y, 4);
  put_digits(out + 5, m, 2);
  put_digits(out + 8, d, 2);
  put_digits(out + 11, sod / 3600, 2);
  put_digits(out + 14, sod / 60 % 60, 2);
  put_digits(out + 17, sod % 60, 2);
  put_digits(out + 20, us % US_PER_SEC, 6);
  return CTKN_OK;
}

/* Read exactly n decimal digits. */
static bool digits(const char **p, int n, int *out)
{
  int v = 0;

  for (int i = 0; i < n; i++) {
    char c = (*p)[i];
    if (c < '0' || c > '9')
      return false;
    v = v * 10 + (c - '0');
  }
  *p += n;
  *out = v;
  return true;
}

static bool expect(const char **p, char c)
{
  if (**p != c)
    return false;
  (*p)++;
  return true;
}

static int days_in_month(int y, int m)
{
  static const int dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : dim[m - 1];
}

/* RFC 3339's grammar, one condition per piece, then the calendar's ranges:
 * kept whole, above CCN 15, because the format reads best as one walk from
 * left to right. */
int ctkn_time_parse(const char *s, int64_t *us, struct ctkn_err *err)
{
  const char *p = s;
  int y, mo, d, h, mi, sec, frac = 0, oh = 0, om = 0, sign = 0;

  if (!digits(&p, 4, &y) || !expect(&p, '-') || !digits(&p, 2, &mo) ||
      !expect(&p, '-') || !digits(&p, 2, &d) ||
      !(expect(&p, 'T') || expect(&p, 't')) || !digits(&p, 2, &h) ||
      !expect(&p, ':') || !digits(&p, 2, &mi) || !expect(&p, ':') ||
      !digits(&p, 2, &sec))
    goto bad;
  if (*p == '.') {
    int n = 0;
    p++;
    if (*p < '0' || *p > '9')
      goto bad;
    for (; *p >= '0' && *p <= '9'; p++, n++) {
      if (n < 6)
        frac = frac * 10 + (*p - '0');
    }
    for (; n < 6; n++)
      frac *= 10;
  }
  if (*p == 'Z' || *p == 'z') {
    p++;
  } else if (*p == '+' || *p == '-') {
    sign = *p == '-' ? -1 : 1;
    p++;
    if (!digits(&p, 2, &oh) || !expect(&p, ':') || !digits(&p, 2, &om) ||
        oh > 23 || om > 59)
      goto bad;
  } else {
    goto bad;
  }
  if (*p != '\0')
    goto bad;
  if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 ||
      mi > 59 || sec > 59)
    return ctkn__err_field(err, CTKN_EINVAL, "time",
                           "\"%.40s\" is not a valid date and time", s);

  int64_t t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
  t -= (int64_t)sign * (oh * 3600 + om * 60);
  t = t * US_PER_SEC + frac;
  if (t < 0 || t > MAX_US)
    return ctkn__err_field(err, CTKN_EINVAL, "time",
                           "\"%.40s\" is outside 1970-9999", s);
  *us = t;
  return CTKN_OK;
bad:
  return ctkn__err_field(err, CTKN_EINVAL, "time",
                         "\"%.40s\" is not RFC 3339 "
                         "(YYYY-MM-DDTHH:MM:SS[.ffffff]Z)",
                         s);
}

/* ---- randomness ---------------------------------------------------- */

int ctkn_random(void *buf, size_t len)
{
  unsigned char *p = buf;

  while (len > 0) {
    ssize_t n = getrandom(p, len, 0);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return CTKN_EIO;
    }
    p += n;
    len -= (size_t)n;
  }
  return CTKN_OK;
}

/* ---- ULIDs --------------------------------------------------------- */

/*
 * One generator per process, so IDs from any thread are strictly
 * increasing. The mutex guards last_ms and last_rand only.
 */
static pthread_mutex_t ulid_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t ulid_last_ms = -1;
static unsigned char ulid_last_rand[10];

/* Increment an 80-bit big-endian number; false when it wraps to zero. */
static bool incr80(unsigned char r[10])
{
  for (int i = 9; i >= 0; i--) {
    if (++r[i] != 0)
      return true;
  }
  return false;
}

static void ulid_encode(int64_t ms, const unsigned char r[10], char *out)
{
  /* 128 bits = 48-bit time + 80-bit random, as 26 base32 digits from the
   * top (the first digit carries only 3 bits): hi holds bits 64-127. */
  uint64_t hi = (uint64_t)ms << 16 | (uint64_t)r[0] << 8 | r[1], lo = 0;

  for (int i = 2; i < 10; i++)
    lo = lo << 8 | r[i];
  for (int i = 25, shift = 0; i >= 0; i--, shift += 5) {
    uint64_t v;
    if (shift >= 64)
      v = hi >> (shift - 64);
    else if (shift > 59)
      v = lo >> shift | hi << (64 - shift);
    else
      v = lo >> shift;
    out[i] = crockford[v & 31];
  }
  out[26] = '\0';
}

int ctkn_id_generate(const char *prefix, int64_t ms, char *out, size_t outsz)
{
  size_t plen = strlen(prefix);
  unsigned char r[10];
  int rc = CTKN_OK;

  if (outsz < plen + CTKN_ULID_LEN + 1 || ms < 0 || ms >= (1LL << 48))
    return CTKN_EINVAL;
  pthread_mutex_lock(&ulid_lock);
  if (ms <= ulid_last_ms) {
    /* Same millisecond, or the clock stepped back: stay on the last
     * millisecond and count up, so the order holds. Only a new
     * millisecond (or a wrap) draws random bits: many IDs a millisecond
     * cost no system call (create --batch, a busy serve). */
    ms = ulid_last_ms;
    memcpy(r, ulid_last_rand, sizeof(r));
    if (!incr80(r)) {
      ms++;
      rc = ms < (1LL << 48) ? ctkn_random(r, sizeof(r)) : CTKN_EINVAL;
    }
  } else {
    rc = ctkn_random(r, sizeof(r));
  }
  if (rc == CTKN_OK) {
    ulid_last_ms = ms;
    memcpy(ulid_last_rand, r, sizeof(r));
  }
  pthread_mutex_unlock(&ulid_lock);
  if (rc != CTKN_OK)
    return rc;

  memcpy(out, prefix, plen);
  ulid_encode(ms, r, out + plen);
  return CTKN_OK;
}

int ctkn_id_derive(const char *prefix, int64_t ms, const uint8_t r[10],
                   char *out, size_t outsz)
{
  size_t plen = strlen(prefix);

  if (outsz < plen + CTKN_ULID_LEN + 1 || ms < 0 || ms >= (1LL << 48))
    return CTKN_EINVAL;
  memcpy(out, prefix, plen);
  ulid_encode(ms, r, out + plen);
  return CTKN_OK;
}

/* The value of a lowercase Crockford digit, or -1. IDs are checked on
 * every event the projector reads, so this is a table, not a search; it
 * holds value + 1 so that every other byte is 0. */
static int crockford_val(char c)
{
  static const unsigned char table[256] = {
      ['0'] = 1,  ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,
      ['6'] = 7,  ['7'] = 8,  ['8'] = 9,  ['9'] = 10, ['a'] = 11, ['b'] = 12,
      ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16, ['g'] = 17, ['h'] = 18,
      ['j'] = 19, ['k'] = 20, ['m'] = 21, ['n'] = 22, ['p'] = 23, ['q'] = 24,
      ['r'] = 25, ['s'] = 26, ['t'] = 27, ['v'] = 28, ['w'] = 29, ['x'] = 30,
      ['y'] = 31, ['z'] = 32};
  return (int)table[(unsigned char)c] - 1;
}

bool ctkn_id_valid(const char *prefix, const char *s)
{
  size_t plen = strlen(prefix);

  if (strncmp(s, prefix, plen) != 0)
    return false;
  s += plen;
  for (int i = 0; i < CTKN_ULID_LEN; i++) {
    if (crockford_val(s[i]) < 0)
      return false;
  }
  /* The first digit holds the top 3 of 128 bits. */
  return s[CTKN_ULID_LEN] == '\0' && crockford_val(s[0]) <= 7;
}

int64_t ctkn_id_time_ms(const char *prefix, const char *s)
{
  int64_t ms = 0;

  if (!ctkn_id_valid(prefix, s))
    return -1;
  s += strlen(prefix);
  for (int i = 0; i < 10; i++)
    ms = ms << 5 | crockford_val(s[i]);
  return ms;
}

/* ---- token strings ------------------------------------------------- */

int ctkn_token_generate(ctkn_env env, int64_t now_us, char out[CTKN_TOKEN_BUF])
{
  const char *prefix = ctkn_env_token_prefix(env);
  int64_t ms = now_us / 1000;
  unsigned char pool[64];
  size_t used = sizeof(pool);
  int rc;

  if (ms < 0)
    return CTKN_EINVAL;
  memcpy(out, prefix, 5);
  /* 8 base62 digits of the millisecond: 62^8 ms lasts past year 8900. */
  for (int i = 12; i >= 5; i--) {
    out[i] = base62[ms % 62];
    ms /= 62;
  }
  /* 19 random digits. A byte below 248 = 4 * 62 maps to byte % 62 with
   * no bias; larger bytes are thrown away. */
  for (int i = 13; i < CTKN_TOKEN_LEN;) {
    if (used == sizeof(pool)) {
      if ((rc = ctkn_random(pool, sizeof(pool))) != CTKN_OK)
        return rc;
      used = 0;
    }
    unsigned char b = pool[used++];
    if (b < 248)
      out[i++] = base62[b % 62];
  }
  out[CTKN_TOKEN_LEN] = '\0';
  return CTKN_OK;
}

static bool is_alnum(char c)
{
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
         (c >= 'A' && c <= 'Z');
}

bool ctkn_token_valid(const char *s, ctkn_env *env)
{
  ctkn_env e;

  if (strncmp(s, "test_", 5) == 0)
    e = CTKN_ENV_SANDBOX;
  else if (strncmp(s, "live_", 5) == 0)
    e = CTKN_ENV_LIVE;
  else
    return false;
  for (int i = 5; i < CTKN_TOKEN_LEN; i++) {
    if (!is_alnum(s[i]))
      return false;
  }
  if (s[CTKN_TOKEN_LEN] != '\0')
    return false;
  if (env)
    *env = e;
  return true;
}

/* ---- text ---------------------------------------------------------- */

/* UTF-8 decoded by hand, beside ctkn__utf8_seq(), because the rules need
 * each code point (control characters) and the byte offset of a fault;
 * kept whole, above CCN 15, as one pass that reads as RFC 3629's table. */
int ctkn_text_check(const char *field, const char *s, size_t len,
                    size_t *codepoints, struct ctkn_err *err)
{
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0, n = 0;

  while (i < len) {
    unsigned c = p[i];
    uint32_t cp;
    size_t need;

    if (c < 0x80) {
      cp = c;
      need = 0;
    } else if (c >= 0xc2 && c <= 0xdf) {
      cp = c & 0x1f;
      need = 1;
    } else if (c >= 0xe0 && c <= 0xef) {
      cp = c & 0x0f;
      need = 2;
    } else if (c >= 0xf0 && c <= 0xf4) {
      cp = c & 0x07;
      need = 3;
    } else {
      goto bad_utf8;
    }
    if (len - i - 1 < need)
      goto bad_utf8;
    for (size_t k = 1; k <= need; k++) {
      if ((p[i + k] & 0xc0) != 0x80)
        goto bad_utf8;
      cp = cp << 6 | (p[i + k] & 0x3f);
    }
    /* Overlong forms, surrogates and values past U+10FFFF. */
    if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) ||
        (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
      goto bad_utf8;
    if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
      return ctkn__err_field(err, CTKN_EINVAL, field,
                             "must not contain control characters "
                             "(U+%04X at byte %zu)",
                             (unsigned)cp, i);
    i += need + 1;
    n++;
  }
  if (codepoints)
    *codepoints = n;
  return CTKN_OK;
bad_utf8:
  return ctkn__err_field(err, CTKN_EINVAL, field,
                         "must be valid UTF-8 (bad byte at offset %zu)", i);
}

static int check_length(const char *field, const char *s, size_t len,
                        size_t max, struct ctkn_err *err)
{
  size_t n;
  int rc;

  if ((rc = ctkn_text_check(field, s, len, &n, err)) != CTKN_OK)
    return rc;
  if (n < 1 || n > max)
    return ctkn__err_field(err, CTKN_EINVAL, field,
                           "must be 1-%zu characters long (got %zu)", max, n);
  return CTKN_OK;
}

int ctkn_validate_name(const char *s, size_t len, struct ctkn_err *err)
{
  return check_length("name", s, len, CTKN_NAME_MAX, err);
}

int ctkn_validate_description(const char *s, size_t len, struct ctkn_err *err)
{
  return check_length("description", s, len, CTKN_DESC_MAX, err);
}

/* One rule per condition, each with its own message, in field order: kept
 * as one list, above CCN 15, so that the rules a token obeys read in one
 * place. */
int ctkn_token_check(const struct ctkn_token *t, ctkn_env env,
                     struct ctkn_err *err)
{
  ctkn_env tenv;
  int rc;

  if (!ctkn_id_valid("ctkn_", t->id))
    return ctkn__err_field(err, CTKN_EINVAL, "id", CTKN_ID_RULE("ctkn_"));
  if (!ctkn_token_valid(t->token, &tenv))
    return ctkn__err_field(err, CTKN_EINVAL, "token",
                           "must match ^(test|live)_[a-zA-Z0-9]{27}$");
  if (env != 0 && tenv != env)
    return ctkn__err_field(err, CTKN_EINVAL, "token",
                           "prefix does not match the %s environment",
                           ctkn_env_str(env));
  if ((rc = ctkn_validate_name(t->name, strlen(t->name), err)) != CTKN_OK)
    return rc;
  if (t->has_description &&
      (rc = ctkn_validate_description(t->description, strlen(t->description),
                                      err)) != CTKN_OK)
    return rc;
  if (ctkn_status_str(t->status) == NULL)
    return ctkn__err_field(err, CTKN_EINVAL, "status",
                           "must be one of active, revoked");
  if (t->created_at <= 0 || t->created_at > MAX_US || t->updated_at > MAX_US)
    return ctkn__err_field(err, CTKN_EINVAL, "created_at",
                           "must be between 1970 and 9999");
  if (t->updated_at < t->created_at)
    return ctkn__err_field(err, CTKN_EINVAL, "updated_at",
                           "must not be before created_at");
  if (t->status == CTKN_STATUS_REVOKED && t->revoked_at != t->updated_at)
    return ctkn__err_field(err, CTKN_EINVAL, "revoked_at",
                           "must equal updated_at on a revoked token");
  if (t->status == CTKN_STATUS_ACTIVE && t->revoked_at != 0)
    return ctkn__err_field(err, CTKN_EINVAL, "revoked_at",
                           "must be null on an active token");
  return CTKN_OK;
}

bool ctkn_token_equal(const struct ctkn_token *a, const struct ctkn_token *b)
{
  return strcmp(a->id, b->id) == 0 && strcmp(a->token, b->token) == 0 &&
         strcmp(a->name, b->name) == 0 &&
         a->has_description == b->has_description &&
         (!a->has_description || strcmp(a->description, b->description) == 0) &&
         a->status == b->status && a->created_at == b->created_at &&
         a->updated_at == b->updated_at && a->revoked_at == b->revoked_at;
}
