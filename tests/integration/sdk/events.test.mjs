// Paddle's own Node.js SDK (@paddle/paddle-node-sdk, pinned in
// package-lock.json) against `ctkn serve`'s events API: events.list over
// every page (the SDK follows meta.pagination.next), by type, and
// eventTypes.list.
//
// Env: CTKN_API_URL, CTKN_API_KEY (client_token.read + write),
// CTKN_API_KEY_READ (client_token.read only); test_api_sdk.py sets them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Paddle } from '@paddle/paddle-node-sdk';

const URL_BASE = process.env.CTKN_API_URL;
const KEY = process.env.CTKN_API_KEY;
const KEY_READ = process.env.CTKN_API_KEY_READ;
assert.ok(URL_BASE && KEY && KEY_READ,
  'set CTKN_API_URL, CTKN_API_KEY and CTKN_API_KEY_READ');

const paddle = new Paddle(KEY, { environment: URL_BASE });
const reader = new Paddle(KEY_READ, { environment: URL_BASE });
const RUN = randomBytes(4).toString('hex');
const T = { timeout: 120_000 };

// Walk a collection page by page; returns [pages, items].
async function walk(collection) {
  const pages = [];
  while (collection.hasMore) {
    pages.push(await collection.next());
  }
  return [pages, pages.flat()];
}

test('events.list pages through every event by event ID', T, async () => {
  const a = await paddle.clientTokens.create({ name: `node ev a ${RUN}` });
  const b = await paddle.clientTokens.create({ name: `node ev b ${RUN}` });
  await paddle.clientTokens.revoke(a.id); // answered once applied here

  const [pages, events] = await walk(reader.events.list({ perPage: 2 }));
  const ids = events.map((e) => e.eventId);
  assert.deepEqual(ids, [...ids].sort());
  assert.equal(new Set(ids).size, ids.length);
  assert.equal(pages.length, Math.ceil(ids.length / 2));
  for (const e of events) {
    assert.match(e.eventType, /^client_token\.(created|updated|revoked)$/);
    assert.equal(e.constructor.name.startsWith('ClientToken'), true,
      e.constructor.name);
    assert.match(e.data.id, /^ctkn_/);
  }
  const mine = events.filter((e) => e.data.id === a.id || e.data.id === b.id)
    .map((e) => `${e.data.id} ${e.eventType}`).sort();
  assert.deepEqual(mine, [`${a.id} client_token.created`,
    `${a.id} client_token.revoked`, `${b.id} client_token.created`].sort());

  const revoked = [];
  for await (const e of reader.events.list({
    eventType: ['client_token.revoked'], perPage: 200 })) {
    revoked.push(e);
  }
  assert.ok(revoked.every((e) => e.eventType === 'client_token.revoked'));
  assert.ok(revoked.some((e) => e.data.id === a.id));
});

test('eventTypes.list names every type with its group', T, async () => {
  const types = await reader.eventTypes.list();
  const names = types.map((t) => t.name);
  for (const n of ['client_token.created', 'client_token.updated',
    'client_token.revoked', 'notification_setting.created',
    'api_key.expiring']) {
    assert.ok(names.includes(n), n);
  }
  for (const t of types) {
    assert.deepEqual(t.availableVersions, [1]);
    assert.ok(t.group && t.description);
  }
});
