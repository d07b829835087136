/*
 * archive.c - the audit archive's entries in protobuf
 * (proto/ctkn_archive.proto): a Header, Records and a Trailer, each
 * carrying the hash of the entry before it.
 *
 * Only the message bytes are here. The framing (a varint length before
 * each entry), the hash chain and every rule about order and ranges are
 * the archive module's (src/archive.c), which reads and writes files.
 *
 * Encoding maps the caller's views onto protobuf-c's structs without
 * copying the payloads; decoding hands out views into the unpacked
 * message, so a record's key and value are never copied either.
 */
#include <stdlib.h>
#include <string.h>

#include "ctkn/codec.h"
#include "ctkn_archive.pb-c.h"
#include "internal.h"

typedef Ctkn__Archive__V1__Entry Entry;
typedef Ctkn__Archive__V1__Header Header;
typedef Ctkn__Archive__V1__Record Record;
typedef Ctkn__Archive__V1__RecordHeader RecordHeader;
typedef Ctkn__Archive__V1__Trailer Trailer;

/* ---- encoding ------------------------------------------------------------ */

static void header_to_pb(const struct ctkn_archive_entry *e, Header *h)
{
  h->has_format = e->header.has_format;
  h->format = e->header.format;
  h->topic = (char *)e->header.topic;
  h->has_partitions = e->header.has_partitions;
  h->partitions = e->header.partitions;
  h->n_start_offsets = e->header.n_start;
  h->start_offsets = (int64_t *)e->header.start;
  h->n_end_offsets = e->header.n_end;
  h->end_offsets = (int64_t *)e->header.end;
}

/* rh and rhp hold e's headers (at most CTKN_ARCHIVE_HEADERS_MAX). */
static void record_to_pb(const struct ctkn_archive_entry *e, Record *r,
                         RecordHeader *rh, RecordHeader **rhp)
{
  for (size_t i = 0; i < e->record.nheaders; i++) {
    const struct ctkn_archive_kv *kv = &e->record.headers[i];
    rh[i] = (RecordHeader)CTKN__ARCHIVE__V1__RECORD_HEADER__INIT;
    rh[i].name = (char *)kv->name;
    rh[i].has_value = kv->value != NULL;
    rh[i].value.data = (uint8_t *)kv->value;
    rh[i].value.len = kv->value ? kv->size : 0;
    rhp[i] = &rh[i];
  }
  r->has_partition = e->record.has_partition;
  r->partition = e->record.partition;
  r->has_offset = e->record.has_offset;
  r->offset = e->record.offset;
  r->has_timestamp_ms = e->record.has_timestamp_ms;
  r->timestamp_ms = e->record.timestamp_ms;
  r->has_key = e->record.key != NULL;
  r->key.data = (uint8_t *)e->record.key;
  r->key.len = e->record.key ? e->record.key_len : 0;
  r->has_value = e->record.value != NULL;
  r->value.data = (uint8_t *)e->record.value;
  r->value.len = e->record.value ? e->record.value_len : 0;
  r->n_headers = e->record.nheaders;
  r->headers = rhp;
}

int ctkn_archive_entry_encode(const struct ctkn_archive_entry *e, uint8_t **buf,
                              size_t *cap, size_t *len, struct ctkn_err *err)
{
  RecordHeader rh[CTKN_ARCHIVE_HEADERS_MAX], *rhp[CTKN_ARCHIVE_HEADERS_MAX];
  Header h = CTKN__ARCHIVE__V1__HEADER__INIT;
  Record r = CTKN__ARCHIVE__V1__RECORD__INIT;
  Trailer t = CTKN__ARCHIVE__V1__TRAILER__INIT;
  Entry m = CTKN__ARCHIVE__V1__ENTRY__INIT;
  size_t n;

  *len = 0;
  m.has_prev_sha256 = e->prev_sha256 != NULL;
  m.prev_sha256.data = (uint8_t *)e->prev_sha256;
  m.prev_sha256.len = e->prev_sha256 ? e->prev_len : 0;
  switch (e->body) {
  case CTKN_ARCHIVE_HEADER:
    header_to_pb(e, &h);
    m.body_case = CTKN__ARCHIVE__V1__ENTRY__BODY_HEADER;
    m.header = &h;
    break;
  case CTKN_ARCHIVE_RECORD:
    if (e->record.nheaders > CTKN_ARCHIVE_HEADERS_MAX)
      return ctkn__err(err, CTKN_EUSAGE, "archive: %zu headers",
                       e->record.nheaders);
    record_to_pb(e, &r, rh, rhp);
    m.body_case = CTKN__ARCHIVE__V1__ENTRY__BODY_RECORD;
    m.record = &r;
    break;
  case CTKN_ARCHIVE_TRAILER:
    t.has_records = e->trailer.has_records;
    t.records = e->trailer.records;
    m.body_case = CTKN__ARCHIVE__V1__ENTRY__BODY_TRAILER;
    m.trailer = &t;
    break;
  default:
    return ctkn__err(err, CTKN_EUSAGE, "archive: an entry without a body");
  }
  n = ctkn__archive__v1__entry__get_packed_size(&m);
  if (n > CTKN_ARCHIVE_ENTRY_MAX)
    return ctkn__err(err, CTKN_EUSAGE, "archive: a record of %zu bytes", n);
  if (n > *cap) {
    uint8_t *b = realloc(*buf, n);
    if (b == NULL)
      return ctkn__err(err, CTKN_ENOMEM, "archive: out of memory");
    *buf = b;
    *cap = n;
  }
  ctkn__archive__v1__entry__pack(&m, *buf);
  *len = n;
  return CTKN_OK;
}

/* ---- decoding ------------------------------------------------------------ */

/* A decoded entry: the public view, the message it points into, and the
 * record's headers. */
struct decoded {
  struct ctkn_archive_entry e;
  Entry *m;
  struct ctkn_archive_kv kv[];
};

/* Present bytes always get a pointer, also when empty: protobuf-c gives
 * none for a zero-length field. */
static const void *present(protobuf_c_boolean has, const ProtobufCBinaryData *b)
{
  if (!has)
    return NULL;
  return b->data != NULL ? (const void *)b->data : (const void *)"";
}

static void header_from_pb(const Header *h, struct ctkn_archive_entry *e)
{
  e->header.has_format = h->has_format;
  e->header.format = h->format;
  e->header.topic = h->topic;
  e->header.has_partitions = h->has_partitions;
  e->header.partitions = h->partitions;
  e->header.n_start = h->n_start_offsets;
  e->header.start = h->start_offsets;
  e->header.n_end = h->n_end_offsets;
  e->header.end = h->end_offsets;
}

static void record_from_pb(const Record *r, struct decoded *d)
{
  struct ctkn_archive_entry *e = &d->e;

  for (size_t i = 0; i < r->n_headers; i++) {
    const RecordHeader *rh = r->headers[i];
    d->kv[i].name = rh->name ? rh->name : "";
    d->kv[i].value = present(rh->has_value, &rh->value);
    d->kv[i].size = rh->has_value ? rh->value.len : 0;
  }
  e->record.has_partition = r->has_partition;
  e->record.partition = r->partition;
  e->record.has_offset = r->has_offset;
  e->record.offset = r->offset;
  e->record.has_timestamp_ms = r->has_timestamp_ms;
  e->record.timestamp_ms = r->timestamp_ms;
  e->record.key = present(r->has_key, &r->key);
  e->record.key_len = r->has_key ? r->key.len : 0;
  e->record.value = present(r->has_value, &r->value);
  e->record.value_len = r->has_value ? r->value.len : 0;
  e->record.headers = d->kv;
  e->record.nheaders = r->n_headers;
}

int ctkn_archive_entry_decode(const void *buf, size_t len,
                              struct ctkn_archive_entry **out,
                              struct ctkn_err *err)
{
  Entry *m;
  struct decoded *d;
  size_t nkv = 0;

  *out = NULL;
  m = ctkn__archive__v1__entry__unpack(NULL, len,
                                       buf == NULL ? (const void *)"" : buf);
  if (m == NULL)
    return ctkn__err(err, CTKN_EDECODE,
                     "not a ctkn.archive.v1.Entry protobuf (%zu bytes)", len);
  if (m->body_case == CTKN__ARCHIVE__V1__ENTRY__BODY_RECORD)
    nkv = m->record->n_headers;
  /* nkv is bounded by len: every header costs protobuf-c more than this. */
  d = calloc(1, sizeof(*d) + nkv * sizeof(d->kv[0]));
  if (d == NULL) {
    ctkn__archive__v1__entry__free_unpacked(m, NULL);
    return ctkn__err(err, CTKN_ENOMEM, "archive: out of memory");
  }
  d->m = m;
  d->e.prev_sha256 = present(m->has_prev_sha256, &m->prev_sha256);
  d->e.prev_len = m->has_prev_sha256 ? m->prev_sha256.len : 0;
  switch (m->body_case) {
  case CTKN__ARCHIVE__V1__ENTRY__BODY_HEADER:
    d->e.body = CTKN_ARCHIVE_HEADER;
    header_from_pb(m->header, &d->e);
    break;
  case CTKN__ARCHIVE__V1__ENTRY__BODY_RECORD:
    d->e.body = CTKN_ARCHIVE_RECORD;
    record_from_pb(m->record, d);
    break;
  case CTKN__ARCHIVE__V1__ENTRY__BODY_TRAILER:
    d->e.body = CTKN_ARCHIVE_TRAILER;
    d->e.trailer.has_records = m->trailer->has_records;
    d->e.trailer.records = m->trailer->records;
    break;
  default:
    d->e.body = CTKN_ARCHIVE_OTHER;
    break;
  }
  *out = &d->e;
  return CTKN_OK;
}

void ctkn_archive_entry_free(struct ctkn_archive_entry *e)
{
  struct decoded *d;

  if (e == NULL)
    return;
  d = CTKN__CONTAINER_OF(e, struct decoded, e);
  ctkn__archive__v1__entry__free_unpacked(d->m, NULL);
  free(d);
}
