/*
 * json_assert.h - cmocka assertions over rendered JSON, shared by the unit
 * tests of the renderers (include after cmocka.h and jansson.h).
 */
#ifndef CTKN_TEST_JSON_ASSERT_H
#define CTKN_TEST_JSON_ASSERT_H

#include <stdlib.h>
#include <string.h>

/* Parse a renderer's output (one compact line, no duplicate keys) and
 * free it. */
static inline json_t *parse(char *text)
{
  json_error_t je;
  json_t *j;

  assert_non_null(text);
  assert_null(strchr(text, '\n'));
  j = json_loads(text, JSON_REJECT_DUPLICATES, &je);
  if (j == NULL)
    fail_msg("not JSON (%s): %s", je.text, text);
  free(text);
  return j;
}

/* o is an object with exactly these keys, in this order. */
static inline void assert_keys(json_t *o, const char *const *keys, size_t n)
{
  size_t i = 0;

  assert_true(json_is_object(o));
  for (void *it = json_object_iter(o); it != NULL;
       it = json_object_iter_next(o, it), i++) {
    if (i >= n)
      fail_msg("unexpected key %s", json_object_iter_key(it));
    assert_string_equal(json_object_iter_key(it), keys[i]);
  }
  assert_int_equal(i, n);
}

/* The string member k of o (failing when it is not a string). */
static inline const char *jstr(json_t *o, const char *k)
{
  json_t *v = json_object_get(o, k);

  if (!json_is_string(v))
    fail_msg("%s is not a string", k);
  return json_string_value(v);
}

#endif /* CTKN_TEST_JSON_ASSERT_H */
