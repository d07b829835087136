/*
 * event_int.h - what the event module offers other modules of ctkn but
 * not the library's users. Not installed.
 */
#ifndef CTKN_EVENT_INT_H
#define CTKN_EVENT_INT_H

#include <stddef.h>

#include "ctkn/event.h"

/* ctkn_apply() for an event that already passed ctkn_event_check(): the
 * projector checks each record once, to tell quarantine from rejection.
 * Returns CTKN_APPLIED or CTKN_REJECTED, as ctkn_apply(); when applied the
 * next state is ev->data (not copied: the projector puts it as it is). */
int ctkn__apply_checked(const struct ctkn_record *cur,
                        const struct ctkn_event *ev, ctkn_env env, char *reason,
                        size_t reasonsz);

#endif /* CTKN_EVENT_INT_H */
