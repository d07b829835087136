/* test_error.c - the error map: codes, API names, HTTP and exit statuses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ctkn/error.h"
#include "internal.h"

static void test_codes_map_to_paddle_codes_and_exits(void **state)
{
  (void)state;
  assert_string_equal(ctkn_error_code(CTKN_EINVAL), "invalid_field");
  assert_string_equal(ctkn_error_code(CTKN_EBADREQ), "bad_request");
  assert_string_equal(ctkn_error_code(CTKN_ENOTFOUND), "not_found");
  assert_string_equal(ctkn_error_code(CTKN_ECONFLICT), "conflict");
  assert_string_equal(ctkn_error_code(CTKN_EKAFKA), "service_unavailable");
  assert_int_equal(ctkn_error_http_status(CTKN_EINVAL), 400);
  assert_int_equal(ctkn_error_http_status(CTKN_ENOTFOUND), 404);
  assert_int_equal(ctkn_error_http_status(CTKN_ECONFLICT), 409);
  assert_int_equal(ctkn_error_http_status(CTKN_ESTORE), 503);
  assert_int_equal(ctkn_error_exit(CTKN_OK), 0);
  assert_int_equal(ctkn_error_exit(CTKN_EINVAL), 1);
  assert_int_equal(ctkn_error_exit(CTKN_ECONFLICT), 1);
  assert_int_equal(ctkn_error_exit(CTKN_EUSAGE), 2);
  assert_int_equal(ctkn_error_exit(CTKN_EKAFKA), 3);
  assert_int_equal(ctkn_error_exit(CTKN_ETIMEOUT), 3);
  assert_int_equal(ctkn_error_exit(CTKN_ESTORE), 3);
  /* A full map is not acknowledged (retry); an event appended but not yet
   * applied is acknowledged: exit 4, never the retryable 3. */
  assert_int_equal(ctkn_error_exit(CTKN_EMAPFULL), 3);
  assert_int_equal(ctkn_error_exit(CTKN_EAPPENDED), 4);
  assert_string_equal(ctkn_error_code(CTKN_EAPPENDED), "service_unavailable");
  assert_int_equal(ctkn_error_http_status(CTKN_EAPPENDED), 503);
  /* The API's own failures: Paddle's codes and statuses. */
  assert_string_equal(ctkn_error_code(CTKN_EAUTHMISSING),
                      "authentication_missing");
  assert_string_equal(ctkn_error_code(CTKN_EAUTHMALFORMED),
                      "authentication_malformed");
  assert_string_equal(ctkn_error_code(CTKN_EBADKEY), "invalid_token");
  assert_string_equal(ctkn_error_code(CTKN_EFORBIDDEN), "forbidden");
  assert_int_equal(ctkn_error_http_status(CTKN_EAUTHMISSING), 403);
  assert_int_equal(ctkn_error_http_status(CTKN_EBADKEY), 403);
  assert_int_equal(ctkn_error_http_status(CTKN_EFORBIDDEN), 403);
  assert_string_equal(ctkn_error_code(CTKN_ERATELIMIT), "too_many_requests");
  assert_int_equal(ctkn_error_http_status(CTKN_ERATELIMIT), 429);
  assert_string_equal(ctkn_error_code(CTKN_ETOOLARGE),
                      "request_body_too_large");
  assert_int_equal(ctkn_error_http_status(CTKN_ETOOLARGE), 413);
  assert_int_equal(ctkn_error_http_status(CTKN_EMETHOD), 405);
  /* Paddle's limit of 10 active notification settings. */
  assert_string_equal(ctkn_error_code(CTKN_EMAXACTIVE),
                      "notification_maximum_active_settings_reached");
  assert_int_equal(ctkn_error_http_status(CTKN_EMAXACTIVE), 400);
  assert_int_equal(ctkn_error_exit(CTKN_EMAXACTIVE), 1);
  assert_string_equal(ctkn_error_code(CTKN_EURITOOLONG), "uri_too_long");
  assert_int_equal(ctkn_error_http_status(CTKN_EURITOOLONG), 414);
  assert_string_equal(ctkn_error_code(CTKN_EHEADERSTOOLARGE),
                      "request_header_fields_too_large");
  assert_int_equal(ctkn_error_http_status(CTKN_EHEADERSTOOLARGE), 431);
  /* Kafka refused the principal (an ACL is missing): unavailable, but not
   * retryable, so not the 3 of "retry", and a code of its own. */
  assert_string_equal(ctkn_error_code(CTKN_EKAFKADENIED),
                      "kafka_authorization_failed");
  assert_int_equal(ctkn_error_http_status(CTKN_EKAFKADENIED), 503);
  assert_int_equal(ctkn_error_exit(CTKN_EKAFKADENIED), 1);
  assert_false(ctkn__transient(CTKN_EKAFKADENIED));
}

static void test_every_code_has_distinct_text(void **state)
{
  static const int codes[] = {
#define X(name, val, api, http, ex, text) CTKN_E##name,
      CTKN_ERRNO_MAP(X)
#undef X
  };
  (void)state;
  for (size_t i = 0; i < CTKN__ARRAY_LEN(codes); i++) {
    assert_true(codes[i] < 0);
    for (size_t j = i + 1; j < CTKN__ARRAY_LEN(codes); j++) {
      assert_int_not_equal(codes[i], codes[j]);
      assert_string_not_equal(ctkn_strerror(codes[i]), ctkn_strerror(codes[j]));
    }
  }
  assert_string_equal(ctkn_strerror(-9999), "unknown error");
  assert_string_equal(ctkn_strerror(CTKN_OK), "success");
}

static void test_err_helpers_fill_detail_and_return_code(void **state)
{
  struct ctkn_err err;
  (void)state;

  assert_int_equal(
      ctkn__err_field(&err, CTKN_EINVAL, "name", "must be %d", 150),
      CTKN_EINVAL);
  assert_int_equal(err.code, CTKN_EINVAL);
  assert_string_equal(err.field, "name");
  assert_string_equal(err.msg, "must be 150");
  assert_int_equal(ctkn__err(&err, CTKN_ESTORE, "disk"), CTKN_ESTORE);
  assert_string_equal(err.field, "");
  assert_int_equal(ctkn__err(NULL, CTKN_ESTORE, "no crash"), CTKN_ESTORE);
  ctkn_err_clear(&err);
  assert_int_equal(err.code, CTKN_OK);
  assert_string_equal(err.msg, "");
  ctkn_err_clear(NULL);
}

static void test_strlcpy_truncates_and_terminates(void **state)
{
  char buf[4];
  (void)state;

  assert_int_equal(ctkn__strlcpy(buf, "abcdef", sizeof(buf)), 6);
  assert_string_equal(buf, "abc");
  assert_int_equal(ctkn__strlcpy(buf, "ab", sizeof(buf)), 2);
  assert_string_equal(buf, "ab");
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_codes_map_to_paddle_codes_and_exits),
      cmocka_unit_test(test_every_code_has_distinct_text),
      cmocka_unit_test(test_err_helpers_fill_detail_and_return_code),
      cmocka_unit_test(test_strlcpy_truncates_and_terminates),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
