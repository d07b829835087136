// Paddle's own Node.js SDK (@paddle/paddle-node-sdk, pinned in
// package-lock.json) against `ctkn serve`: paddle.notificationSettings
// create, list, get, update and delete, and the errors it surfaces.
//
// Env: CTKN_API_URL (the server's base URL), CTKN_API_KEY (with
// notification_setting.write, on a server started with --secret-key-file),
// CTKN_API_KEY_READ (client_token.read only: no notification_setting
// permission). tests/integration/test_api_sdk.py sets them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Paddle, ApiError } from '@paddle/paddle-node-sdk';

const URL_BASE = process.env.CTKN_API_URL;
const KEY = process.env.CTKN_API_KEY;
const KEY_READ = process.env.CTKN_API_KEY_READ;
assert.ok(URL_BASE && KEY && KEY_READ,
  'set CTKN_API_URL, CTKN_API_KEY and CTKN_API_KEY_READ');

const paddle = new Paddle(KEY, { environment: URL_BASE });
const reader = new Paddle(KEY_READ, { environment: URL_BASE });

const ID_RE = /^ntfset_[0-7][0-9a-hjkmnp-tv-z]{25}$/;
const SECRET_RE = /^pdl_ntfset_([0-9a-z]{26})_[A-Za-z0-9]{32}$/;
const UNKNOWN_ID = 'ntfset_7zzzzzzzzzzzzzzzzzzzzzzzzz';
const T = { timeout: 120_000 };

async function apiError(fn, code) {
  let err;
  try {
    await fn();
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof ApiError,
    `expected ApiError ${code}, got ${err?.constructor?.name}: ${err}`);
  assert.equal(err.code, code, `code (detail: ${err.detail})`);
  return err;
}

test('create, get, list, pause and delete a notification setting', T,
  async () => {
    const created = await paddle.notificationSettings.create({
      description: 'SDK destination',
      destination: 'https://example.com/sdk-hook',
      subscribedEvents: ['client_token.created', 'client_token.revoked'],
      type: 'url',
      apiVersion: 1,
      includeSensitiveFields: false,
      trafficSource: 'platform',
    });
    assert.match(created.id, ID_RE);
    const m = SECRET_RE.exec(created.endpointSecretKey);
    assert.ok(m, `endpointSecretKey ${created.endpointSecretKey}`);
    assert.equal(m[1], created.id.slice(7));
    assert.equal(created.description, 'SDK destination');
    assert.equal(created.type, 'url');
    assert.equal(created.destination, 'https://example.com/sdk-hook');
    assert.equal(created.active, true);
    assert.equal(created.apiVersion, 1);
    assert.equal(created.includeSensitiveFields, false);
    assert.equal(created.trafficSource, 'platform');
    assert.deepEqual(created.subscribedEvents.map((e) => e.name),
      ['client_token.created', 'client_token.revoked']);
    for (const e of created.subscribedEvents) {
      assert.equal(e.group, 'Client token');
      assert.deepEqual(e.availableVersions, [1]);
      assert.equal(typeof e.description, 'string');
    }

    // Reads carry the secret too, as Paddle's: the server holds the
    // deployment key (--secret-key-file).
    const got = await paddle.notificationSettings.get(created.id);
    assert.equal(got.endpointSecretKey, created.endpointSecretKey);
    assert.deepEqual({ ...got }, { ...created });
    const all = await paddle.notificationSettings.list();
    assert.ok(Array.isArray(all));
    assert.ok(all.some((s) => s.id === created.id &&
      s.endpointSecretKey === created.endpointSecretKey));
    const page = await paddle.notificationSettings.list({
      perPage: 1, orderBy: 'id[ASC]', active: true, trafficSource: 'platform',
    });
    assert.equal(page.length, 1);

    const paused = await paddle.notificationSettings.update(created.id,
      { active: false });
    assert.equal(paused.active, false);
    assert.equal(paused.endpointSecretKey, created.endpointSecretKey);
    assert.ok((await paddle.notificationSettings.list({ active: false }))
      .some((s) => s.id === created.id));
    const changed = await paddle.notificationSettings.update(created.id, {
      description: 'Renamed',
      destination: 'https://example.com/other',
      subscribedEvents: ['client_token.updated'],
      apiVersion: 1,
      trafficSource: 'all',
    });
    assert.equal(changed.trafficSource, 'all');
    assert.equal(changed.description, 'Renamed');
    assert.equal(changed.destination, 'https://example.com/other');
    assert.deepEqual(changed.subscribedEvents.map((e) => e.name),
      ['client_token.updated']);
    assert.equal(changed.active, false);

    assert.equal(await paddle.notificationSettings.delete(created.id),
      undefined);
    await apiError(() => paddle.notificationSettings.get(created.id),
      'not_found');
    await apiError(() => paddle.notificationSettings.delete(created.id),
      'not_found');
    assert.ok(!(await paddle.notificationSettings.list())
      .some((s) => s.id === created.id));
  });

test('errors: fields, unknown IDs, permissions', T, async () => {
  let e = await apiError(() => paddle.notificationSettings.create({
    description: 'mail', destination: 'ops@example.com',
    subscribedEvents: ['client_token.created'], type: 'email',
  }), 'invalid_field');
  assert.equal(e.errors[0].field, 'type');
  e = await apiError(() => paddle.notificationSettings.create({
    description: 'x', destination: 'https://example.com/h',
    subscribedEvents: ['transaction.completed'], type: 'url',
  }), 'invalid_field');
  assert.equal(e.errors[0].field, 'subscribed_events');
  e = await apiError(() => paddle.notificationSettings.update(UNKNOWN_ID,
    { includeSensitiveFields: true }), 'invalid_field');
  assert.equal(e.errors[0].field, 'include_sensitive_fields');
  await apiError(() => paddle.notificationSettings.update(UNKNOWN_ID,
    { active: true }), 'not_found');
  await apiError(() => paddle.notificationSettings.get(UNKNOWN_ID),
    'not_found');
  e = await apiError(() => reader.notificationSettings.list(), 'forbidden');
  assert.match(e.detail, /notification_setting\.read/);
  e = await apiError(() => reader.notificationSettings.create({
    description: 'x', destination: 'https://example.com/h',
    subscribedEvents: ['client_token.created'], type: 'url',
  }), 'forbidden');
  assert.match(e.detail, /notification_setting\.write/);
});
