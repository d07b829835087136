// Paddle's own Node.js SDK (@paddle/paddle-node-sdk, pinned in
// package-lock.json) against `ctkn serve`: the client-side token resource
// end to end, and the errors the SDK surfaces as ApiError.
//
// Env: CTKN_API_URL (the server's base URL, the same as its --public-url,
// because the SDK follows meta.pagination.next only when it starts with
// it), CTKN_API_KEY (client_token.read + write), CTKN_API_KEY_READ
// (client_token.read only). tests/integration/test_api_sdk.py sets them.
//
// The SDK sends `Authorization: bearer <key>` (lowercase scheme),
// `Content-Type: application/json` on every request, GETs absolute
// `next` URLs as they are, and parses every response body as JSON.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Paddle, ApiError } from '@paddle/paddle-node-sdk';

const URL_BASE = process.env.CTKN_API_URL;
const KEY = process.env.CTKN_API_KEY;
const KEY_READ = process.env.CTKN_API_KEY_READ;
assert.ok(URL_BASE && KEY && KEY_READ,
  'set CTKN_API_URL, CTKN_API_KEY and CTKN_API_KEY_READ');

const paddle = new Paddle(KEY, { environment: URL_BASE });
const reader = new Paddle(KEY_READ, { environment: URL_BASE });

const ID_RE = /^ctkn_[0-7][0-9a-hjkmnp-tv-z]{25}$/;
const TOKEN_RE = /^test_[a-zA-Z0-9]{27}$/; // the server runs in sandbox
const TIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;
const RUN = randomBytes(4).toString('hex'); // names unique to this run
const T = { timeout: 120_000 };

// A valid ID that no token has: ctkn IDs are ULIDs whose first character
// is 0-7, so one starting with 7 is centuries in the future.
const UNKNOWN_ID = 'ctkn_7zzzzzzzzzzzzzzzzzzzzzzzzz';

function base64url(bytes) {
  return Buffer.from(bytes).toString('base64url');
}

// Run fn, which must reject with an ApiError of this code; returns it.
async function apiError(fn, code) {
  let err;
  try {
    await fn();
  } catch (e) {
    err = e;
  }
  assert.ok(err, `expected ApiError ${code}, got success`);
  assert.ok(err instanceof ApiError,
    `expected ApiError ${code}, got ${err?.constructor?.name}: ${err}`);
  assert.equal(err.code, code, `code (detail: ${err.detail})`);
  assert.equal(err.type, code === 'service_unavailable' ||
    code === 'internal_error' ? 'api_error' : 'request_error');
  assert.equal(typeof err.detail, 'string');
  assert.ok(err.detail.length > 0);
  assert.equal(err.documentationUrl,
    `https://developer.paddle.com/v1/errors/shared/${code}`);
  return err;
}

function assertToken(t, { name, description }) {
  assert.match(t.id, ID_RE);
  assert.match(t.token, TOKEN_RE);
  assert.equal(t.name, name);
  assert.equal(t.description, description);
  assert.match(t.createdAt, TIME_RE);
  assert.match(t.updatedAt, TIME_RE);
  if (t.status === 'active') {
    assert.equal(t.revokedAt, null);
  } else {
    assert.equal(t.status, 'revoked');
    assert.equal(t.revokedAt, t.updatedAt);
  }
  assert.ok(t.updatedAt >= t.createdAt, 'updated_at >= created_at');
}

// Walk a collection page by page; returns [pages, items].
async function walk(collection) {
  const pages = [];
  while (collection.hasMore) {
    pages.push(await collection.next());
  }
  return [pages, pages.flat()];
}

async function createMany(n, label) {
  const made = [];
  for (let i = 0; i < n; i++) {
    made.push(await paddle.clientTokens.create({ name: `${label} ${RUN} ${i}` }));
  }
  return made;
}

test('create returns an active token in Paddle\'s shape', T, async () => {
  const name = `Pricing page ${RUN}`;
  const description = 'Opens checkout — ünïcödé ✓';
  const t = await paddle.clientTokens.create({ name, description });
  assertToken(t, { name, description });
  assert.equal(t.status, 'active');
  assert.equal(t.createdAt, t.updatedAt);

  const bare = await paddle.clientTokens.create({ name: `no description ${RUN}` });
  assertToken(bare, { name: `no description ${RUN}`, description: null });
  assert.notEqual(bare.id, t.id);
  assert.notEqual(bare.token, t.token);
  assert.ok(bare.id > t.id, 'IDs from one server increase');

  // Limits are code points, not bytes: 150 four-byte characters.
  const long = '𝄞'.repeat(150);
  const max = await paddle.clientTokens.create({ name: long, description: 'd'.repeat(500) });
  assert.equal(max.name, long);
  assert.equal(max.description.length, 500);
});

test('get returns what create returned', T, async () => {
  const made = await paddle.clientTokens.create({ name: `get ${RUN}`, description: 'x' });
  const got = await paddle.clientTokens.get(made.id);
  assert.deepEqual(got, made);
  // A read-only key may read.
  assert.deepEqual(await reader.clientTokens.get(made.id), made);
});

test('list follows meta.pagination.next over every page, in ID order', T, async () => {
  const made = await createMany(7, 'page');
  const ids = made.map((t) => t.id);

  // Ascending, 3 a page: every token of ours once, in creation order.
  const asc = paddle.clientTokens.list({ perPage: 3, orderBy: 'id[ASC]' });
  const [pages, items] = await walk(asc);
  assert.ok(pages.length >= 3, `${pages.length} pages`);
  for (const p of pages) assert.ok(p.length <= 3, `page of ${p.length}`);
  for (const p of pages.slice(0, -1)) assert.equal(p.length, 3, 'full pages before the last');
  const all = items.map((t) => t.id);
  assert.equal(new Set(all).size, all.length, 'no ID twice');
  for (let i = 1; i < all.length; i++) assert.ok(all[i - 1] < all[i], 'ascending');
  assert.deepEqual(all.filter((id) => ids.includes(id)), ids);
  assert.ok(asc.estimatedTotal >= all.length, `estimatedTotal ${asc.estimatedTotal}`);
  for (const t of items) assert.equal(t.status, 'active', 'default status filter');

  // for await ... of: the SDK's own iterator gives the same sequence.
  const iterated = [];
  for await (const t of paddle.clientTokens.list({ perPage: 3, orderBy: 'id[ASC]' })) {
    iterated.push(t.id);
  }
  assert.deepEqual(iterated, all);

  // Default order is id[DESC].
  const [, desc] = await walk(paddle.clientTokens.list({ perPage: 4 }));
  const d = desc.map((t) => t.id);
  assert.deepEqual(d, [...all].reverse());

  // after: strictly after the cursor, in the chosen order.
  const [, after] = await walk(paddle.clientTokens.list({
    after: ids[2], orderBy: 'id[ASC]', perPage: 2,
  }));
  assert.deepEqual(after.map((t) => t.id).filter((id) => ids.includes(id)), ids.slice(3));
  assert.ok(after.every((t) => t.id > ids[2]));
  const [, before] = await walk(paddle.clientTokens.list({
    after: ids[4], orderBy: 'id[DESC]', perPage: 2,
  }));
  assert.deepEqual(before.map((t) => t.id).filter((id) => ids.includes(id)),
    ids.slice(0, 4).reverse());

  // The read-only key may list.
  const [, viaReader] = await walk(reader.clientTokens.list({ perPage: 50, orderBy: 'id[ASC]' }));
  assert.deepEqual(viaReader.map((t) => t.id), all);
});

test('list filters by status', T, async () => {
  const made = await createMany(3, 'status');
  await paddle.clientTokens.revoke(made[1].id);
  const find = async (params) => {
    const [, items] = await walk(paddle.clientTokens.list({ perPage: 2, ...params }));
    return items.filter((t) => made.some((m) => m.id === t.id)).map((t) => [t.id, t.status]);
  };
  assert.deepEqual(await find({}), [[made[2].id, 'active'], [made[0].id, 'active']]);
  assert.deepEqual(await find({ status: ['revoked'] }), [[made[1].id, 'revoked']]);
  assert.deepEqual(await find({ status: ['active', 'revoked'], orderBy: 'id[ASC]' }),
    [[made[0].id, 'active'], [made[1].id, 'revoked'], [made[2].id, 'active']]);
  const [, revoked] = await walk(paddle.clientTokens.list({ status: ['revoked'] }));
  assert.ok(revoked.every((t) => t.status === 'revoked'));
});

test('update changes name and description; a no-op changes nothing', T, async () => {
  const t = await paddle.clientTokens.create({ name: `before ${RUN}`, description: 'old' });
  const u = await paddle.clientTokens.update(t.id, { name: `after ${RUN}`, description: 'new' });
  assertToken(u, { name: `after ${RUN}`, description: 'new' });
  assert.equal(u.id, t.id);
  assert.equal(u.token, t.token);
  assert.equal(u.status, 'active');
  assert.equal(u.createdAt, t.createdAt);
  assert.ok(u.updatedAt > t.updatedAt, 'updated_at moves forward');

  const cleared = await paddle.clientTokens.update(t.id, { description: null });
  assert.equal(cleared.description, null);
  assert.equal(cleared.name, `after ${RUN}`);
  assert.ok(cleared.updatedAt > u.updatedAt);

  const same = await paddle.clientTokens.update(t.id, { name: `after ${RUN}` });
  assert.deepEqual(same, cleared, 'an update that changes nothing is a no-op');
  assert.deepEqual(await paddle.clientTokens.get(t.id), cleared);
});

test('revoke revokes once; revoking again is a no-op', T, async () => {
  const t = await paddle.clientTokens.create({ name: `revoke ${RUN}` });
  const r = await paddle.clientTokens.revoke(t.id);
  assertToken(r, { name: `revoke ${RUN}`, description: null });
  assert.equal(r.status, 'revoked');
  assert.equal(r.revokedAt, r.updatedAt);
  assert.ok(r.updatedAt > t.updatedAt);
  assert.deepEqual(await paddle.clientTokens.revoke(t.id), r);
  assert.deepEqual(await paddle.clientTokens.get(t.id), r);
});

test('verify answers for a token string (ctkn\'s own operation)', T, async () => {
  const t = await paddle.clientTokens.create({ name: `verify ${RUN}` });
  const verify = async (token, key = KEY_READ) => {
    const res = await fetch(`${URL_BASE}/client-tokens/verify?token=${encodeURIComponent(token)}`,
      { headers: { Authorization: `bearer ${key}` } });
    return [res.status, await res.json()];
  };
  let [status, body] = await verify(t.token);
  assert.equal(status, 200);
  assert.deepEqual(body.data, { id: t.id, token: t.token, status: 'active', environment: 'sandbox' });
  await paddle.clientTokens.revoke(t.id);
  [status, body] = await verify(t.token);
  assert.equal(status, 200);
  assert.equal(body.data.status, 'revoked');
  [status, body] = await verify('test_' + 'A'.repeat(27));
  assert.equal(status, 404);
  assert.equal(body.error.code, 'not_found');
});

test('errors surface as ApiError with Paddle\'s codes', T, async (t) => {
  await t.test('not_found for an unknown ID', async () => {
    await apiError(() => paddle.clientTokens.get(UNKNOWN_ID), 'not_found');
    await apiError(() => paddle.clientTokens.update(UNKNOWN_ID, { name: 'x' }), 'not_found');
    await apiError(() => paddle.clientTokens.revoke(UNKNOWN_ID), 'not_found');
  });

  await t.test('conflict for a change to a revoked token', async () => {
    const tok = await paddle.clientTokens.create({ name: `conflict ${RUN}` });
    const revoked = await paddle.clientTokens.revoke(tok.id);
    await apiError(() => paddle.clientTokens.update(tok.id, { name: 'renamed' }), 'conflict');
    await apiError(() => paddle.clientTokens.update(tok.id, { description: 'd' }), 'conflict');
    await apiError(() => paddle.clientTokens.update(tok.id, { status: 'active' }), 'conflict');
    assert.deepEqual(await paddle.clientTokens.get(tok.id), revoked, 'unchanged');
  });

  await t.test('invalid_field names the field', async () => {
    const cases = [
      [{ name: '' }, 'name'],
      [{ name: 'n'.repeat(151) }, 'name'],
      [{ name: 'bell\u0007' }, 'name'],
      [{ name: 'tab\tname' }, 'name'],
      [{ name: 'n', description: '' }, 'description'],
      [{ name: 'n', description: 'd'.repeat(501) }, 'description'],
      [{ description: 'no name' }, 'name'],
      [{ name: 'n', status: 'revoked' }, 'status'],
      [{ name: 'n', seller_id: 'x' }, 'seller_id'],
    ];
    for (const [body, field] of cases) {
      const err = await apiError(() => paddle.clientTokens.create(body), 'invalid_field');
      assert.ok(Array.isArray(err.errors) && err.errors.length >= 1, JSON.stringify(body));
      assert.equal(err.errors[0].field, field, JSON.stringify(body));
      assert.equal(typeof err.errors[0].message, 'string');
    }
    const tok = await paddle.clientTokens.create({ name: `invalid ${RUN}` });
    const err = await apiError(() => paddle.clientTokens.update(tok.id, { status: 'paused' }),
      'invalid_field');
    assert.equal(err.errors[0].field, 'status');
    await apiError(() => paddle.clientTokens.update(tok.id, { name: '' }), 'invalid_field');
    // Nothing was created or changed by the refused requests.
    assert.equal((await paddle.clientTokens.get(tok.id)).name, `invalid ${RUN}`);
  });

  await t.test('bad_request for an update with no field', async () => {
    const tok = await paddle.clientTokens.create({ name: `empty ${RUN}` });
    await apiError(() => paddle.clientTokens.update(tok.id, {}), 'bad_request');
  });

  await t.test('invalid_field for bad list parameters', async () => {
    const first = async (params) => paddle.clientTokens.list(params).next();
    let err = await apiError(() => first({ orderBy: 'name[ASC]' }), 'invalid_field');
    assert.equal(err.errors[0].field, 'order_by');
    err = await apiError(() => first({ perPage: 0 }), 'invalid_field');
    assert.equal(err.errors[0].field, 'per_page');
    err = await apiError(() => first({ after: 'not-an-id' }), 'invalid_field');
    assert.equal(err.errors[0].field, 'after');
    err = await apiError(() => first({ status: ['active', 'paused'] }), 'invalid_field');
    assert.equal(err.errors[0].field, 'status');
  });

  await t.test('forbidden for a write with a read-only key', async () => {
    const tok = await paddle.clientTokens.create({ name: `forbidden ${RUN}` });
    await apiError(() => reader.clientTokens.create({ name: 'nope' }), 'forbidden');
    await apiError(() => reader.clientTokens.update(tok.id, { name: 'nope' }), 'forbidden');
    await apiError(() => reader.clientTokens.revoke(tok.id), 'forbidden');
    assert.deepEqual(await paddle.clientTokens.get(tok.id), tok, 'unchanged');
  });

  await t.test('invalid_token for a well-formed key the server does not know', async () => {
    const stranger = new Paddle('ctkn_apikey_' + base64url(randomBytes(32)),
      { environment: URL_BASE });
    await apiError(() => stranger.clientTokens.get(UNKNOWN_ID), 'invalid_token');
    await apiError(() => stranger.clientTokens.create({ name: 'nope' }), 'invalid_token');
    await apiError(() => stranger.clientTokens.list().next(), 'invalid_token');
  });

  await t.test('authentication_malformed for a key that is not a ctkn key', async () => {
    const bogus = new Paddle('pdl_sdbx_apikey_not_ours', { environment: URL_BASE });
    await apiError(() => bogus.clientTokens.get(UNKNOWN_ID), 'authentication_malformed');
  });
});
