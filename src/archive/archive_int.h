/*
 * archive_int.h - what the archive's files share: the Entry message, the
 * bounds, and one helper. The archive (proto/ctkn_archive.proto) is a
 * hash-chained file: varint length, then the Entry message (its bytes are
 * the codec's, codec/archive.c). Chain: an entry's prev_sha256 is
 * SHA-256(previous entry's message bytes); the archive's hash is
 * SHA-256(the Trailer's message bytes).
 *
 *   writer.c  the writer (a .partial file, flock'ed, linked when finished)
 *             and export from a topic
 *   reader.c  the checking reader, and what trust needs from an archive
 *   replay.c  replay into a new projection (--as-of, --from-file)
 *   import.c  import into an empty topic, resumable
 */
#ifndef CTKN_ARCHIVE_INT_H
#define CTKN_ARCHIVE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "ctkn/archive.h"
#include "ctkn/codec.h"
#include "internal.h"

#define ENTRY_MAX   CTKN_ARCHIVE_ENTRY_MAX /* no Kafka record comes near it */
#define READ_BATCH  1024                   /* records per callback */
#define HEADERS_MAX CTKN_ARCHIVE_HEADERS_MAX

typedef struct ctkn_archive_entry Entry;

/* A fresh malloc'd copy of n offsets (a 1-byte block when n is 0); NULL
 * when out of memory. */
int64_t *ctkn__archive_dup_offsets(const int64_t *v, size_t n);

#endif
