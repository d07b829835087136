// Verifies webhook deliveries with Paddle's own Node.js SDK
// (@paddle/paddle-node-sdk, pinned in package-lock.json).
//
//   node verify-webhooks.mjs < requests.jsonl
//
// stdin: JSON lines {"secret": "...", "signature": "<Paddle-Signature>",
// "body": "<raw body, as a string>", "now": <optional unix seconds>}.
// stdout: one JSON line for each input line, in order:
//   {"valid": bool,             // paddle.webhooks.unmarshal() returned an event
//    "signature_valid": bool,   // paddle.webhooks.isSignatureValid()
//    "event_id", "event_type", "notification_id", "occurred_at",
//    "sdk_class": "ClientTokenCreatedEvent" | "GenericEvent" | ...,
//    "data": the SDK's (camelCased) entity,
//    "error": null | "<message>"}
// Exit status 0 once stdin ends, whatever the verdicts.
//
// What SDK 3.10.0 checks (dist/esm/notifications/helpers/webhooks-validator.js):
// * The header is split on ";" and each part on "="; parts "ts" and "h1" are
//   kept (a later one wins, no whitespace trimming); without both it throws
//   "[Paddle] Invalid webhook signature" (isSignatureValid throws too).
// * ts = parseInt(ts); rejected when Date.now() > (ts + 5) * 1000, i.e. older
//   than 5 seconds (MAX_VALID_TIME_DIFFERENCE = 5). A ts in the future passes.
// * h1 must equal hex(HMAC-SHA256(secret, `${ts}:${body}`)) exactly: lowercase,
//   compared with ===.
// * unmarshal() then JSON.parses the body; an unknown event_type gives a
//   GenericEvent (no throw). client_token.created/updated/revoked are known.
// * No API key is used for verification, but `new Paddle(...)` must be
//   constructed: it installs the Node crypto provider the validator needs.
//
// "now" is for tests only: it pins the clock the SDK reads (new Date()) while
// that one line is verified, so old signatures (the brief's test vector, a
// retried delivery) can be checked without the 5 second window failing them.
import { createInterface } from 'node:readline';
import { Paddle, LogLevel } from '@paddle/paddle-node-sdk';

const paddle = new Paddle('unused-webhooks-need-no-api-key', { logLevel: LogLevel.error });
const RealDate = globalThis.Date;

function pinClock(nowSeconds) {
  if (nowSeconds === undefined || nowSeconds === null) return () => {};
  const ms = Number(nowSeconds) * 1000;
  class PinnedDate extends RealDate {
    constructor(...args) {
      if (args.length === 0) super(ms); else super(...args);
    }
    static now() { return ms; }
  }
  globalThis.Date = PinnedDate;
  return () => { globalThis.Date = RealDate; };
}

async function verify(line) {
  const out = {
    valid: false, signature_valid: false, event_id: null, event_type: null,
    notification_id: null, occurred_at: null, sdk_class: null, data: null, error: null,
  };
  let req;
  try {
    req = JSON.parse(line);
  } catch (e) {
    out.error = `bad input line: ${e.message}`;
    return out;
  }
  const { secret, signature, body } = req ?? {};
  if (typeof secret !== 'string' || typeof signature !== 'string' || typeof body !== 'string') {
    out.error = 'bad input line: want string "secret", "signature" and "body"';
    return out;
  }
  const unpin = pinClock(req.now);
  try {
    try {
      out.signature_valid = await paddle.webhooks.isSignatureValid(body, secret, signature);
    } catch (e) {
      out.error = e.message;
    }
    const ev = await paddle.webhooks.unmarshal(body, secret, signature);
    out.valid = true;
    out.event_id = ev.eventId ?? null;
    out.event_type = ev.eventType ?? null;
    out.notification_id = ev.notificationId ?? null;
    out.occurred_at = ev.occurredAt ?? null;
    out.sdk_class = ev.constructor?.name ?? null;
    out.data = ev.data ?? null;
    out.error = null;
  } catch (e) {
    out.valid = false;
    out.error = out.error ?? e.message;
  } finally {
    unpin();
  }
  return out;
}

const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of rl) {
  if (!line.trim()) continue;
  process.stdout.write(JSON.stringify(await verify(line)) + '\n');
}
