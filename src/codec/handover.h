/*
 * handover.h - the codec's in-process form of a decoded event, for
 * handing events from one thread to another without decoding twice (the
 * projector's two-thread catch-up). Not a wire format: it never leaves
 * the process, and both ends are this build. Not installed.
 *
 * A struct ctkn_event is 3 KiB of fixed-size strings; its packed form is
 * the fixed fields and each string's bytes, about 250 bytes for a typical
 * event. Pack and unpack are the codec's, beside the protobuf decoder that
 * makes the event, and a build-time check on the structs' sizes fails when
 * a field is added to struct ctkn_event or struct ctkn_token until both
 * are taught it: a new field cannot be dropped silently.
 */
#ifndef CTKN_CODEC_HANDOVER_H
#define CTKN_CODEC_HANDOVER_H

#include <stddef.h>
#include <stdint.h>

#include "ctkn/event.h"

/* Bytes ctkn__event_pack() writes for ev. */
size_t ctkn__event_packed_size(const struct ctkn_event *ev);

/* Write ev's packed form to dst, which holds ctkn__event_packed_size(ev)
 * bytes (no alignment needed). */
void ctkn__event_pack(const struct ctkn_event *ev, uint8_t *dst);

/* The event packed at src back into *ev, exactly as it was packed.
 * Borrows src for the call. */
void ctkn__event_unpack(const uint8_t *src, struct ctkn_event *ev);

#endif /* CTKN_CODEC_HANDOVER_H */
