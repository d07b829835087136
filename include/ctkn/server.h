/*
 * server.h - `ctkn serve`: one reader replica behind Paddle's HTTP API.
 *
 * A server follows the topic into its own LMDB projection (a projector on
 * a thread of its own), serves reads from that projection on libmicrohttpd
 * worker threads, and appends commands through a ledger on a command
 * thread that runs them in batches. A request that has to wait (a write
 * for its projection, a read for X-Ctkn-Min-Position) is suspended, never
 * parked on a worker thread, and resumed when its answer is ready.
 *
 * Routes: POST/GET /client-tokens, GET/PATCH /client-tokens/{id},
 * GET /client-tokens/verify?token=, POST/GET /notification-settings,
 * GET/PATCH/DELETE /notification-settings/{id}, GET /healthz,
 * GET /metrics. Every response carries X-Request-Id (and, with a body,
 * meta.request_id); token writes carry their log position as
 * X-Ctkn-Position: PARTITION:OFFSET. Notification-setting writes run on a
 * thread of their own (ctkn_settings_execute()), never delaying token
 * writes; creating one needs the deployment key (secret_key_file), without
 * which POST /notification-settings answers 503 service_unavailable.
 *
 * Errors:   CTKN_EUSAGE for a bad configuration (naming it), CTKN_EIO for
 *           a key file or TLS file that cannot be read, ctkn_key_load()'s
 *           errors for a secret_key_file that does not load, CTKN_EIO when the
 *           address cannot be bound, and whatever stopped the projection
 *           for good (CTKN_ECONFLICT for a re-created topic, ...).
 */
#ifndef CTKN_SERVER_H
#define CTKN_SERVER_H

#include <signal.h>
#include <stdint.h>

#include "ctkn/error.h"
#include "ctkn/log.h"
#include "ctkn/store.h"
#include "ctkn/token.h"

#define CTKN_SERVER_MAX_BODY (64 * 1024) /* larger bodies get 413 */

struct ctkn_server_config {
  const char *listen;     /* "127.0.0.1:8080" or "[::1]:8080" */
  const char *public_url; /* base of next links, e.g. "https://api.example" */
  const char *api_keys;   /* key file (apikey.h), reloaded on *reload */
  const char *tls_cert;   /* PEM files: both or neither */
  const char *tls_key;
  const char *secret_key_file; /* deployment key (crypto.h), or NULL */
  double rate_limit;           /* requests/s per key; 0: no limit */
  int threads;                 /* HTTP worker threads */
  int64_t max_lag;      /* /healthz is ready while the lag is at most this */
  int position_wait_ms; /* bound on an X-Ctkn-Min-Position wait */
  int client_timeout_s; /* an idle or slow connection is closed after */
  int status_ms;        /* how often the lag is measured */
  const struct ctkn_log_config *log;
  ctkn_env env;
};

/* listen 127.0.0.1:8080, 2 threads, max_lag 1000, waits 5 s, clients
 * 30 s, lag every 1 s, no rate limit. */
void ctkn_server_config_init(struct ctkn_server_config *cfg);

/*
 * Serve until *stop becomes non-zero (a signal handler sets it), then stop
 * accepting, finish every request in flight, and return CTKN_OK. Each time
 * *reload is non-zero it is cleared and the key file is read again (a
 * file that no longer loads leaves the old keys in force). st must be
 * open for writing and bound to the topic. Structured logs, one JSON
 * object a line, go to stderr: an access line per request, and lifecycle
 * lines. Key material is never logged.
 */
int ctkn_server_run(ctkn_store *st, const struct ctkn_server_config *cfg,
                    volatile sig_atomic_t *stop, volatile sig_atomic_t *reload,
                    struct ctkn_err *err);

#endif /* CTKN_SERVER_H */
