/*
 * audit.h - an archive's records judged by the trust gate (trust.h)
 * offline: `ctkn audit verify --trust-root`. An auditor who holds only
 * the root's public key and two archives (archive.h: the topic's, and its
 * settings topic's for the keyring) proves a log prefix without trusting
 * the broker: every record linked in its writer instance's chain and
 * covered by a verified checkpoint, every key known, unrevoked and in
 * scope, every keyring and adoption record signed by the root.
 *
 * The records are judged by the newest keyring the root signed in the
 * keyring archive, as `ctkn rebuild` judges the whole log: a key revoked
 * since fails every record it signed. Keyring records in the audited
 * archive must be signed by the root, each a version above the last.
 * Unsigned records below an adoption's end (trust.h, "adoption"; the
 * root's adoptions are read from the keyring archive too) pass when the
 * archive's prefix of their partition hashes to the adoption's hash.
 *
 * Lifetime: one call; the report owns its info's offset arrays (release
 *           with ctkn_audit_report_free()).
 * Errors:   those of ctkn_archive_read() (a broken archive); CTKN_EINVAL
 *           (field "keyring": no keyring signed by the root);
 *           CTKN_ENOMEM. A record that fails is not an error of the call:
 *           it is in the report (ctkn_audit_result()).
 */
#ifndef CTKN_AUDIT_H
#define CTKN_AUDIT_H

#include "ctkn/archive.h"
#include "ctkn/crypto.h"
#include "ctkn/error.h"
#include "ctkn/keyring.h"

struct ctkn_audit_report {
  struct ctkn_archive_info info; /* the audited archive's summary */
  struct ctkn_audit_trust trust; /* what the gate made of its records */
};

/* Free what r owns. NULL is a no-op. */
void ctkn_audit_report_free(struct ctkn_audit_report *r);

/*
 * Check the archive at path (ctkn_archive_read()) and judge every record
 * by the root's newest keyring in the archive at keyring_path (the
 * settings topic's; NULL: path itself) into *r. Borrows everything for
 * the call. On failure *r is left empty.
 */
int ctkn_audit_verify(const char *path, const char *keyring_path,
                      const uint8_t root[CTKN_SIGN_PUB_LEN],
                      struct ctkn_audit_report *r, struct ctkn_err *err);

/* CTKN_OK when every record of r passed; else CTKN_EDECODE with err
 * naming the first failure's partition, offset and rule (field
 * "records"), and how many failed. */
int ctkn_audit_result(const struct ctkn_audit_report *r, struct ctkn_err *err);

#endif /* CTKN_AUDIT_H */
