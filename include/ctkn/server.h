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
 * GET /metrics. Every response carries Request-Id and X-Request-Id (and,
 * with a body, meta.request_id); token writes carry their log position as
 * X-Ctkn-Position: PARTITION:OFFSET. Notification-setting writes run on a
 * thread of their own (ctkn_settings_execute()), never delaying token
 * writes; creating one needs the deployment key (secret_key_file), without
 * which POST /notification-settings answers 503 service_unavailable. With
 * it, every answer carrying a notification setting (to a key that holds
 * notification_setting.read, which every route that answers one needs)
 * includes its endpoint_secret_key, as Paddle's do, unless
 * redact_endpoint_secrets; without it reads omit the secret.
 *
 * Logs: diagnostics (diag.h), component "http": an access line per
 * request {"msg":"request","request_id","method","path","route",
 * "status","duration_ms","key"[,"aborted"]}, and lifecycle lines
 * ("listening", "api keys loaded", "stopping", "stopped", and errors).
 * Key material is never logged.
 *
 * Lifetime: ctkn_server_config_init() -> set the fields ->
 *           ctkn_server_run(), which returns once the server has stopped.
 * Errors:   see ctkn_server_run().
 * Thread:   ctkn_server_run() blocks its caller; *stop and *reload may be
 *           set from a signal handler.
 * Not here: the projection (projector.h), commands (ledger.h), reads
 *           (query.h), notification settings (settings.h).
 */
#ifndef CTKN_SERVER_H
#define CTKN_SERVER_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "ctkn/akey.h"
#include "ctkn/crypto.h"
#include "ctkn/error.h"
#include "ctkn/log.h"
#include "ctkn/netaddr.h"
#include "ctkn/store.h"
#include "ctkn/token.h"

#define CTKN_SERVER_MAX_BODY         (64 * 1024) /* larger bodies get 413 */
/* The largest TLS certificate or key file read (a regular file). */
#define CTKN_SERVER_MAX_TLS_FILE     (1024 * 1024)
/* A request target (path and query) longer than this gets 414, and a
 * request line with headers larger than this 431, both in Paddle's
 * envelope; beyond CTKN_SERVER_MAX_HEAD, libmicrohttpd's own memory limit
 * per connection, libmicrohttpd answers by itself (HTML). */
#define CTKN_SERVER_MAX_URI          (8 * 1024)
#define CTKN_SERVER_MAX_HEADERS      (16 * 1024)
#define CTKN_SERVER_MAX_HEAD         (32 * 1024)
/* A request's headers must all arrive within this many seconds of its
 * request line, and the request line within --client-timeout and this of
 * the connection or the previous answer; a client still sending is cut
 * off (one header line every few seconds would reset --client-timeout). */
#define CTKN_SERVER_HEADER_TIMEOUT_S 10

struct ctkn_server_config {
  const char *listen;     /* "127.0.0.1:8080" or "[::1]:8080" */
  const char *public_url; /* base of next links, e.g. "https://api.example" */
  const char *api_keys;   /* key file (apikey.h), reloaded on *reload */
  const char *tls_cert;   /* PEM files: both or neither */
  const char *tls_key;
  const char *secret_key_file; /* deployment key (crypto.h), or NULL */
  /* With the deployment key, reads (GET, list, PATCH) return each
   * notification setting's endpoint_secret_key, as Paddle's do; true
   * leaves it out of every answer but a create's. */
  bool redact_endpoint_secrets;
  double rate_limit;    /* requests/s per key; 0: no limit */
  int threads;          /* HTTP worker threads, 1 to 64 */
  int64_t max_lag;      /* /healthz is ready while the lag is at most this */
  int position_wait_ms; /* bound on an X-Ctkn-Min-Position wait */
  int client_timeout_s; /* an idle or slow connection is closed after */
  int status_ms;        /* how often the lag is measured */
  const struct ctkn_log_config *log;
  ctkn_env env;
  /* Trust (trust.h): the root's public key (CTKN_SIGN_PUB_LEN bytes), or
   * NULL; this replica's writer key, or NULL (read-only on the log's
   * trust: its writes are unsigned without one); its heartbeat period;
   * and how old a partition's newest checkpoint may be before answers
   * from it fail closed (0: not checked). */
  const uint8_t *trust_root;
  const ctkn_seckey *writer_key;
  int heartbeat_ms;
  int64_t max_staleness_ms;
  /* Notification settings: networks a destination may point into
   * although not globally reachable (setting.h), and the active ones at
   * most (0: CTKN_DEST_MAX_ACTIVE). */
  const struct ctkn_cidr *allow_destination;
  size_t nallow_destination;
  int max_active_destinations;
  /* API keys on the log: how often this replica appends a key's "used"
   * record at most (last_used_at), in ms; 0: never; and the writer key
   * that signs those records (one scoped api_key.used alone), or NULL
   * for writer_key. */
  int64_t key_used_interval_ms;
  const ctkn_seckey *usage_key;
  /* Due notices: this replica appends api_key.expiring this long before
   * a key's expires_at (ms; default 7 days) and api_key.expired once it
   * passed, checking every second; the first in the log applies. Signed
   * with expiry_key (scoped api_key.expiring and api_key.expired), or
   * writer_key when NULL; on a trusted log with neither, none. */
  int64_t key_expiring_lead_ms;
  const ctkn_seckey *expiry_key;
};

/* Set cfg to the defaults: listen 127.0.0.1:8080 (a static string), 2
 * threads, max_lag 1000, waits 5 s, clients 30 s, lag every 1 s, no rate
 * limit; every other field NULL or 0. Borrows cfg for the call. */
void ctkn_server_config_init(struct ctkn_server_config *cfg);

/*
 * Serve until *stop becomes non-zero (a signal handler sets it), then stop
 * accepting, finish every request in flight (for at most 15 s), and
 * return CTKN_OK. Each time *reload is non-zero it is cleared and the key
 * file is read again (a file that no longer loads leaves the old keys in
 * force, and says so in an error line). st must be open for writing and
 * bound to the topic.
 *
 * Borrows st, cfg (with the strings and the log configuration it points
 * to), stop and reload for the call: the server's threads use them until
 * it returns, so none may change or go away before then.
 *
 * Errors: before anything starts, CTKN_EUSAGE for a bad configuration,
 * err->field naming the option ("api-keys", "tls-cert", "tls-key",
 * "threads", "rate-limit", "max-lag", "public-url", "listen"; none for
 * timeouts that are not positive or a libmicrohttpd built without TLS);
 * ctkn_apikeys_load()'s errors for the key file (CTKN_EIO when it cannot
 * be read, CTKN_EINVAL when it is not a regular file or is larger than
 * CTKN_APIKEY_FILE_MAX, CTKN_EDECODE when it is malformed);
 * ctkn_key_load()'s for a secret_key_file that does not load
 * (CTKN_EINVAL); CTKN_EIO for a TLS file that cannot be read, CTKN_EINVAL
 * (field "tls-cert" or "tls-key") for one that is not a regular file or
 * is larger than CTKN_SERVER_MAX_TLS_FILE, and with field "listen" when the
 * address cannot be bound; CTKN_ENOMEM. Once serving, whatever stopped the
 * follower or the command thread for good, with its detail in err: the
 * projection's failure (CTKN_ECONFLICT for a re-created topic,
 * CTKN_EFORMAT, CTKN_ESTORE, ...), or a ledger that could not be opened
 * (CTKN_EKAFKA, ...).
 */
int ctkn_server_run(ctkn_store *st, const struct ctkn_server_config *cfg,
                    volatile sig_atomic_t *stop, volatile sig_atomic_t *reload,
                    struct ctkn_err *err);

#endif /* CTKN_SERVER_H */
