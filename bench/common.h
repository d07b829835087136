/*
 * common.h - what every benchmark program shares: a monotonic clock, the
 * figure line ({"name","value","unit","limit","ratio"}, limit null for a
 * figure that is itself a limit) and dying with the program's name.
 * Define BENCH_NAME before including it.
 */
#ifndef CTKN_BENCH_COMMON_H
#define CTKN_BENCH_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#ifndef BENCH_NAME
#error "define BENCH_NAME before including bench/common.h"
#endif

static inline double now_s(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline void figure(const char *name, double value, const char *unit,
                          double limit)
{
  printf("{\"name\":\"%s\",\"value\":%.3f,\"unit\":\"%s\",", name, value, unit);
  if (limit > 0)
    printf("\"limit\":%.3f,\"ratio\":%.3f}\n", limit, value / limit);
  else
    printf("\"limit\":null,\"ratio\":null}\n");
  fflush(stdout);
}

static inline _Noreturn void die(const char *what)
{
  fprintf(stderr, BENCH_NAME ": %s\n", what);
  exit(1);
}

#endif /* CTKN_BENCH_COMMON_H */
