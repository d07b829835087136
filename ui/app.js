/*
 * ctkn dashboard: a plain-JavaScript single-page app over this server's
 * own API (same origin only; the CSP says connect-src 'self').
 *
 * Rules this file keeps:
 *   - Every string from the API is rendered as text (el() appends strings
 *     as text nodes; textContent elsewhere). Nothing is parsed as HTML:
 *     no HTML built from strings, no eval.
 *   - The API key lives in sessionStorage only: never in the URL (routes
 *     are #/tokens, #/tokens/{id}, ...), localStorage, cookies or logs.
 *   - What the page offers follows the key's permissions, found by
 *     probing (see probePermissions); the server enforces them anyway.
 */
'use strict';

(function () {
  const KEY = 'ctkn.apiKey';
  const PERMS = 'ctkn.perms';
  const EVENTS = ['client_token.created', 'client_token.updated',
    'client_token.revoked'];
  const HEALTH_EVERY_MS = 3000;

  const $ = (id) => document.getElementById(id);
  let timer = null; // the health view's refresh
  let perms = {};

  /* ---- DOM helpers: strings always become text ---------------------- */

  function el(tag, props, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const kid of kids.flat(Infinity)) {
      if (kid === undefined || kid === null || kid === false) continue;
      e.append(kid instanceof Node ? kid : String(kid)); // text node
    }
    return e;
  }

  /* Replace node's children with kids (strings as text; null skipped). */
  function put(node, ...kids) {
    node.replaceChildren(...kids.flat(Infinity).filter((k) => k !== undefined && k !== null && k !== false));
  }

  function cell(label, ...kids) {
    return el('td', { 'data-label': label }, ...kids);
  }

  function when(ts) {
    return ts ? el('time', { datetime: ts }, ts.replace('T', ' ').replace(/\.\d+Z$/, 'Z')) : '—';
  }

  function statusBadge(status) {
    return el('span', { class: 'status-' + (status === 'revoked' ? 'revoked' : 'active') }, status);
  }

  /* ---- the key ------------------------------------------------------ */

  function key() { return sessionStorage.getItem(KEY); }

  function signOut() {
    sessionStorage.removeItem(KEY);
    sessionStorage.removeItem(PERMS);
    perms = {};
    location.hash = '#/tokens';
    render();
  }

  /* ---- the API ------------------------------------------------------ */

  class ApiError extends Error {
    constructor(status, json, rid) {
      const e = (json && json.error) || {};
      super(e.detail || ('HTTP ' + status));
      this.status = status;
      this.code = e.code || '';
      this.errors = Array.isArray(e.errors) ? e.errors : [];
      this.rid = rid || (json && json.meta && json.meta.request_id) || '';
      this.retryAfter = 0;
    }
  }

  async function api(method, path, body, withKey = true) {
    const headers = {};
    if (withKey) headers.Authorization = 'Bearer ' + key();
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let res;
    try {
      res = await fetch(path, {
        method, headers, cache: 'no-store', credentials: 'omit',
        referrerPolicy: 'no-referrer', redirect: 'error',
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new ApiError(0, { error: { detail: 'the server did not answer: ' + e.message } }, '');
    }
    const rid = res.headers.get('Request-Id') || '';
    let json = null;
    if (res.status !== 204) {
      try { json = await res.json(); } catch (e) { json = null; }
    }
    if (!res.ok && !(res.status === 503 && path === '/healthz')) {
      const e = new ApiError(res.status, json, rid);
      e.retryAfter = parseInt(res.headers.get('Retry-After') || '0', 10) || 0;
      throw e;
    }
    return { status: res.status, json, rid };
  }

  /* A page's next cursor: Paddle's next is an absolute URL (on
   * --public-url); only its after is taken, and asked of this origin. */
  function afterOf(next) {
    try { return new URL(next).searchParams.get('after'); } catch (e) { return null; }
  }

  /* ---- messages ----------------------------------------------------- */

  function showError(err) {
    const box = $('error');
    const detail = [el('strong', {}, 'Error: '), err.message];
    if (err.code) detail.push(' ', el('code', {}, err.code));
    if (err.status) detail.push(' (HTTP ' + err.status + ')');
    const list = err.errors && err.errors.length
      ? el('ul', {}, err.errors.map((f) => el('li', {}, el('code', {}, f.field || ''), ': ', f.message || '')))
      : null;
    const rid = err.rid ? el('div', { class: 'mono' }, 'Request ID: ', el('span', { id: 'error-rid' }, err.rid)) : null;
    put(box, el('div', { id: 'error-detail' }, detail), list, rid,
      el('button', { type: 'button', onclick: hideError }, 'Dismiss'));
    box.hidden = false;
    box.focus();
  }

  function hideError() { $('error').hidden = true; }

  function notice(text) {
    const box = $('notice');
    box.textContent = text;
    box.hidden = false;
  }

  /* Run an action; show its failure. */
  async function guard(fn) {
    try {
      const r = await fn();
      hideError(); // an earlier failure no longer applies
      return r;
    } catch (e) {
      if (e instanceof ApiError) showError(e);
      else showError(new ApiError(0, { error: { detail: String(e) } }, ''));
      return undefined;
    }
  }

  /* ---- dialogs ------------------------------------------------------ */

  function confirmDialog(title, text, okLabel) {
    const d = $('confirm');
    $('confirm-title').textContent = title;
    $('confirm-text').textContent = text;
    $('confirm-ok').textContent = okLabel;
    d.returnValue = '';
    return new Promise((resolve) => {
      d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true });
      d.showModal();
      $('confirm-cancel').focus();
    });
  }

  function renameDialog(token) {
    const d = $('rename');
    $('rename-name').value = token.name;
    $('rename-description').value = token.description || '';
    d.returnValue = '';
    return new Promise((resolve) => {
      d.addEventListener('close', () => {
        if (d.returnValue !== 'ok') return resolve(null);
        const desc = $('rename-description').value;
        resolve({ name: $('rename-name').value, description: desc === '' ? null : desc });
      }, { once: true });
      d.showModal();
      $('rename-name').focus();
    });
  }

  /* ---- permissions -------------------------------------------------- */

  /*
   * A key on the log (ctkn_<env>_apikey_<ULID>_<secret>) carries its ID,
   * and any key may GET /api-keys/{its own id}: its permissions are read
   * from there. A key-file key (ctkn_apikey_...) has no ID, so the page
   * asks the routes themselves. The server checks the route, then the key
   * and its permission, then the request: a read is answered or refused
   * 403; a PATCH of a malformed ID is 403 without the write permission
   * and 400 (the ID) with it, and changes nothing.
   */
  const LOG_KEY = /^ctkn_(sdbx|live)_apikey_([0-9a-z]{26})_[A-Za-z0-9_-]{43}$/;

  async function ownPermissions(m) {
    const r = await api('GET', '/api-keys/apikey_' + m[2]);
    const has = new Set(r.json.data.permissions || []);
    return {
      tokenRead: has.has('client_token.read'),
      tokenWrite: has.has('client_token.write'),
      destRead: has.has('notification_setting.read'),
      destWrite: has.has('notification_setting.write'),
      keyRead: has.has('api_key.read'),
      keyWrite: has.has('api_key.write'),
      fromEntity: true,
    };
  }

  async function can(method, path, body) {
    for (let attempt = 0; ; attempt++) {
      try {
        await api(method, path, body);
        return true;
      } catch (e) {
        // The rate limit is checked before the permission: a 429 tells
        // nothing, so wait as told (a few times) and ask again.
        if (e.status === 429 && attempt < 5) {
          await new Promise((ok) => setTimeout(ok, Math.min(e.retryAfter || 1, 5) * 1000));
          continue;
        }
        // Any other answer but 403 means the key and its permission passed.
        if (e.status === 403 && e.code === 'forbidden') return false;
        if (e.status === 0 || e.status === 403 || e.status === 429) throw e;
        return true;
      }
    }
  }

  async function probePermissions() {
    const m = LOG_KEY.exec(key() || '');
    if (m) return ownPermissions(m);
    const p = {};
    p.tokenRead = await can('GET', '/client-tokens?per_page=1');
    p.tokenWrite = await can('PATCH', '/client-tokens/probe', { status: 'revoked' });
    p.destRead = await can('GET', '/notification-settings?per_page=1');
    p.destWrite = await can('PATCH', '/notification-settings/probe', { active: true });
    return p;
  }

  function showPerms() {
    const names = [];
    if (perms.tokenRead) names.push('client_token.read');
    if (perms.tokenWrite) names.push('client_token.write');
    if (perms.destRead) names.push('notification_setting.read');
    if (perms.destWrite) names.push('notification_setting.write');
    if (perms.keyRead) names.push('api_key.read');
    if (perms.keyWrite) names.push('api_key.write');
    $('perms').textContent = 'Key: ' + (names.join(', ') || 'no permissions');
  }

  async function signIn(ev) {
    ev.preventDefault();
    const k = $('key').value.trim();
    $('key').value = '';
    if (!k) return;
    sessionStorage.setItem(KEY, k);
    const p = await guard(probePermissions);
    if (!p) { sessionStorage.removeItem(KEY); return; }
    perms = p;
    sessionStorage.setItem(PERMS, JSON.stringify(p));
    hideError();
    if (!location.hash || location.hash === '#') location.hash = '#/tokens';
    render();
  }

  /* ---- views: tokens ------------------------------------------------ */

  const tokenState = { status: 'active', perPage: '50', after: null, prev: [], filter: '' };

  async function revoke(token, after) {
    const ok = await confirmDialog('Revoke token',
      'Revoke "' + token.name + '" (' + token.id + ')? A revoked token cannot be made active again.',
      'Revoke');
    if (!ok) return;
    const r = await guard(() => api('PATCH', '/client-tokens/' + encodeURIComponent(token.id), { status: 'revoked' }));
    if (r) { notice('Revoked ' + token.id + '.'); after(); }
  }

  async function rename(token, after) {
    const v = await renameDialog(token);
    if (!v) return;
    const r = await guard(() => api('PATCH', '/client-tokens/' + encodeURIComponent(token.id), v));
    if (r) { notice('Saved ' + token.id + '.'); after(); }
  }

  function tokenActions(t, after) {
    const acts = [el('a', { href: '#/tokens/' + encodeURIComponent(t.id), class: 'open' }, 'History')];
    if (perms.tokenWrite && t.status === 'active') {
      acts.push(' ', el('button', { type: 'button', class: 'rename', onclick: () => rename(t, after) }, 'Rename'));
      acts.push(el('button', { type: 'button', class: 'revoke danger', onclick: () => revoke(t, after) }, 'Revoke'));
    }
    return acts;
  }

  function tokenRows(tokens, after) {
    const f = tokenState.filter.toLowerCase();
    const shown = tokens.filter((t) => !f || t.name.toLowerCase().includes(f) ||
      (t.description || '').toLowerCase().includes(f) || t.id.includes(f));
    if (!shown.length) return [el('tr', {}, el('td', { colspan: 5, class: 'muted' }, 'No tokens on this page match.'))];
    return shown.map((t) => el('tr', { 'data-id': t.id },
      cell('Name', el('span', { class: 'name' }, t.name),
        t.description ? el('div', { class: 'muted desc' }, t.description) : null),
      cell('ID', el('code', {}, t.id)),
      cell('Status', statusBadge(t.status)),
      cell('Created', when(t.created_at)),
      el('td', { class: 'actions', 'data-label': 'Actions' }, tokenActions(t, after))));
  }

  function createTokenForm(reload) {
    const name = el('input', { id: 'create-name', maxlength: 500, required: true });
    const desc = el('input', { id: 'create-description', maxlength: 500 });
    return el('form', {
      id: 'create-form', class: 'inline', onsubmit: async (ev) => {
        ev.preventDefault();
        const body = { name: name.value };
        if (desc.value) body.description = desc.value;
        const r = await guard(() => api('POST', '/client-tokens', body));
        if (r) {
          notice('Created ' + r.json.data.id + '.');
          name.value = ''; desc.value = '';
          reload();
        }
      },
    }, el('div', {}, el('label', { for: 'create-name' }, 'New token name'), name),
    el('div', {}, el('label', { for: 'create-description' }, 'Description'), desc),
    el('button', { type: 'submit', class: 'primary', id: 'create-button' }, 'Create'));
  }

  async function viewTokens(view) {
    const body = el('tbody', { id: 'tokens-body' });
    const pager = el('div', { class: 'pager' });
    let page = [];
    const draw = () => put(body, ...tokenRows(page, load));
    async function load() {
      let q = '/client-tokens?per_page=' + encodeURIComponent(tokenState.perPage) +
        '&order_by=id%5BDESC%5D&status=' + encodeURIComponent(tokenState.status);
      if (tokenState.after) q += '&after=' + encodeURIComponent(tokenState.after);
      const r = await guard(() => api('GET', q));
      if (!r) return;
      page = r.json.data;
      draw();
      const pg = r.json.meta.pagination;
      const next = pg.has_more ? afterOf(pg.next) : null;
      put(pager,
        el('button', { type: 'button', id: 'prev-page', disabled: !tokenState.prev.length, onclick: () => { tokenState.after = tokenState.prev.pop() || null; load(); } }, 'Previous page'),
        el('button', { type: 'button', id: 'next-page', disabled: !next, onclick: () => { tokenState.prev.push(tokenState.after); tokenState.after = next; load(); } }, 'Next page'),
        el('span', { class: 'muted' }, page.length + ' on this page' +
          (pg.estimated_total !== undefined ? ', about ' + pg.estimated_total + ' in all' : '')));
    }
    const status = el('select', {
      id: 'status-filter', onchange: () => {
        tokenState.status = status.value; tokenState.after = null; tokenState.prev = []; load();
      },
    }, [['active', 'Active'], ['revoked', 'Revoked'], ['active,revoked', 'All']].map(([v, l]) =>
      el('option', { value: v, selected: v === tokenState.status }, l)));
    const perPage = el('select', {
      id: 'per-page', onchange: () => {
        tokenState.perPage = perPage.value; tokenState.after = null; tokenState.prev = []; load();
      },
    }, ['10', '50', '200'].map((v) => el('option', { value: v, selected: v === tokenState.perPage }, v)));
    const filter = el('input', {
      id: 'name-filter', type: 'search', value: tokenState.filter,
      // input as one types; change for a value set without input events
      oninput: () => { tokenState.filter = filter.value; draw(); },
      onchange: () => { if (filter.value !== tokenState.filter) { tokenState.filter = filter.value; draw(); } },
    });
    put(view,
      el('h1', {}, 'Client-side tokens'),
      perms.tokenWrite ? createTokenForm(load) : el('p', { class: 'muted' }, 'This key cannot create, rename or revoke tokens (no client_token.write).'),
      el('div', { class: 'toolbar' },
        el('div', {}, el('label', { for: 'status-filter' }, 'Status'), status),
        el('div', {}, el('label', { for: 'per-page' }, 'Per page'), perPage),
        el('div', {}, el('label', { for: 'name-filter' }, 'Filter this page by name'), filter)),
      el('div', { class: 'table-wrap' }, el('table', { class: 'cards', id: 'tokens' },
        el('thead', {}, el('tr', {}, ['Name', 'ID', 'Status', 'Created', ''].map((h) => el('th', {}, h)))),
        body)),
      pager);
    await load();
  }

  /* ---- views: one token and its history ----------------------------- */

  function entity(t) {
    const rows = [['ID', el('code', {}, t.id)], ['Token', el('code', {}, t.token)],
      ['Name', el('span', { id: 'detail-name' }, t.name)], ['Description', t.description === null ? '—' : t.description],
      ['Status', el('span', { id: 'detail-status' }, statusBadge(t.status))], ['Created', when(t.created_at)],
      ['Updated', when(t.updated_at)], ['Revoked', when(t.revoked_at)]];
    return el('dl', { class: 'entity' }, rows.map(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
  }

  function timeline(events) {
    if (!events.length) return el('p', { class: 'muted' }, 'No events.');
    return el('ol', { class: 'timeline', id: 'timeline' }, events.map((e) => {
      const d = e.data || {};
      return el('li', { class: e.event_type.split('.').pop(), 'data-event-type': e.event_type },
        el('strong', {}, e.event_type), ' ', when(e.occurred_at),
        el('div', {}, 'name: ', el('span', { class: 'ev-name' }, d.name), ', status: ', d.status,
          d.description ? ', description: ' : '', d.description || ''),
        el('div', { class: 'muted mono' }, e.event_id));
    }));
  }

  async function viewToken(view, id) {
    const load = async () => {
      const p = '/client-tokens/' + encodeURIComponent(id);
      const [t, h] = await Promise.all([api('GET', p), api('GET', p + '/history')]).catch((e) => { showError(e); return []; });
      if (!t) return;
      const tok = t.json.data;
      const acts = perms.tokenWrite && tok.status === 'active'
        ? el('p', {}, el('button', { type: 'button', id: 'detail-rename', onclick: () => rename(tok, load) }, 'Rename'), ' ',
          el('button', { type: 'button', id: 'detail-revoke', class: 'danger', onclick: () => revoke(tok, load) }, 'Revoke'))
        : null;
      put(view,
        el('p', {}, el('a', { href: '#/tokens' }, '← All tokens')),
        el('h1', {}, 'Token ', el('span', { class: 'mono' }, tok.id)),
        entity(tok), acts,
        el('h2', {}, 'History'),
        timeline(h.json.data));
    };
    await load();
  }

  /* ---- views: destinations ------------------------------------------ */

  function secretBox(secret) {
    if (!secret) return el('span', { class: 'muted' }, 'not returned');
    const code = el('code', { class: 'secret-value' }, secret);
    return el('span', { class: 'secret' }, code, el('button', {
      type: 'button', class: 'copy', onclick: async (ev) => {
        const b = ev.currentTarget;
        try { await navigator.clipboard.writeText(secret); b.textContent = 'Copied'; } catch (e) {
          const r = document.createRange(); r.selectNodeContents(code);
          getSelection().removeAllRanges(); getSelection().addRange(r);
          b.textContent = 'Selected: press Ctrl+C';
        }
      },
    }, 'Copy'));
  }

  function destRows(list, reload) {
    if (!list.length) return [el('tr', {}, el('td', { colspan: 6, class: 'muted' }, 'No destinations.'))];
    return list.map((d) => el('tr', { 'data-id': d.id },
      cell('Description', el('span', { class: 'desc' }, d.description), el('div', { class: 'muted mono' }, d.id)),
      cell('Destination', el('code', {}, d.destination)),
      cell('Events', (d.subscribed_events || []).map((e) => e.name || e).join(', ')),
      cell('Active', d.active ? el('span', { class: 'ok' }, 'active') : el('span', { class: 'warn' }, 'paused')),
      cell('Secret', secretBox(d.endpoint_secret_key)),
      el('td', { class: 'actions', 'data-label': 'Actions' }, perms.destWrite ? [
        el('button', {
          type: 'button', class: 'toggle', onclick: async () => {
            const r = await guard(() => api('PATCH', '/notification-settings/' + encodeURIComponent(d.id), { active: !d.active }));
            if (r) { notice((d.active ? 'Paused ' : 'Resumed ') + d.id + '.'); reload(); }
          },
        }, d.active ? 'Pause' : 'Resume'),
        el('button', {
          type: 'button', class: 'delete danger', onclick: async () => {
            if (!await confirmDialog('Delete destination', 'Delete "' + d.description + '" (' + d.id + ')? It receives no more webhooks.', 'Delete')) return;
            const r = await guard(() => api('DELETE', '/notification-settings/' + encodeURIComponent(d.id)));
            if (r) { notice('Deleted ' + d.id + '.'); reload(); }
          },
        }, 'Delete')] : null)));
  }

  function createDestForm(reload, shown) {
    const desc = el('input', { id: 'dest-description', maxlength: 500, required: true });
    const url = el('input', { id: 'dest-url', type: 'url', required: true, placeholder: 'the receiver URL, https' });
    const boxes = EVENTS.map((e) => el('input', { type: 'checkbox', value: e, id: 'ev-' + e, checked: true }));
    const traffic = el('select', { id: 'dest-traffic' }, el('option', { value: 'platform' }, 'platform'), el('option', { value: 'all' }, 'all'));
    return el('form', {
      id: 'dest-form', class: 'inline', onsubmit: async (ev) => {
        ev.preventDefault();
        const body = {
          description: desc.value, type: 'url', destination: url.value, traffic_source: traffic.value,
          subscribed_events: boxes.filter((b) => b.checked).map((b) => b.value),
        };
        const r = await guard(() => api('POST', '/notification-settings', body));
        if (r) {
          desc.value = ''; url.value = '';
          put(shown, el('h2', {}, 'New destination\'s secret'),
            el('p', {}, 'Keep it now: it verifies the Paddle-Signature of each webhook.'),
            secretBox(r.json.data.endpoint_secret_key));
          reload();
        }
      },
    }, el('div', {}, el('label', { for: 'dest-description' }, 'Description'), desc),
    el('div', {}, el('label', { for: 'dest-url' }, 'Destination URL'), url),
    el('fieldset', {}, el('legend', { class: 'muted' }, 'Events'),
      boxes.map((b) => el('label', { for: b.id }, b, ' ', b.value))),
    el('div', {}, el('label', { for: 'dest-traffic' }, 'Traffic'), traffic),
    el('button', { type: 'submit', class: 'primary' }, 'Add destination'));
  }

  async function viewDestinations(view) {
    const body = el('tbody', {});
    const shown = el('div', { id: 'dest-secret' });
    const load = async () => {
      const r = await guard(() => api('GET', '/notification-settings?per_page=200'));
      if (r) put(body, ...destRows(r.json.data, load));
    };
    put(view, el('h1', {}, 'Webhook destinations'),
      !perms.destRead ? el('p', { class: 'muted' }, 'This key cannot read destinations (no notification_setting.read).') : null,
      perms.destWrite ? createDestForm(load, shown) : null, shown,
      el('div', { class: 'table-wrap' }, el('table', { class: 'cards', id: 'destinations' },
        el('thead', {}, el('tr', {}, ['Description', 'Destination', 'Events', 'Active', 'Secret', ''].map((h) => el('th', {}, h)))),
        body)));
    if (perms.destRead) await load();
  }

  /* ---- views: deliveries ------------------------------------------- */

  const NTF_STATUSES = ['not_attempted', 'needs_retry', 'delivered', 'failed'];
  const ntfState = { status: '', perPage: '50', after: null, prev: [] };

  function ntfBadge(status) {
    const cls = status === 'delivered' ? 'ok' : status === 'failed' ? 'bad' : 'warn';
    return el('span', { class: cls + ' ntf-status' }, status);
  }

  /* Paddle replays delivered and failed notifications of origin event
   * only (a replay is not replayed: its original is). */
  function replayable(n) {
    return perms.destWrite && n.origin === 'event' &&
      (n.status === 'delivered' || n.status === 'failed');
  }

  async function replay(n, after) {
    const ok = await confirmDialog('Replay notification',
      'Send ' + n.type + ' (' + n.id + ') to its destination again, as a new notification?',
      'Replay');
    if (!ok) return;
    const r = await guard(() => api('POST', '/notifications/' + encodeURIComponent(n.id) + '/replay'));
    if (!r) return;
    const id = r.json.data.notification_id;
    notice('Replayed ' + n.id + ' as ' + id + '.');
    if (after) after(id);
  }

  function ntfRows(list, reload) {
    if (!list.length) return [el('tr', {}, el('td', { colspan: 7, class: 'muted' }, 'No notifications match.'))];
    return list.map((n) => el('tr', { 'data-id': n.id },
      cell('Notification', el('a', { href: '#/deliveries/' + encodeURIComponent(n.id), class: 'open' }, el('code', {}, n.id)),
        el('div', { class: 'muted' }, n.type, n.origin === 'replay' ? ' (replay)' : '')),
      cell('Destination', el('code', {}, n.notification_setting_id)),
      cell('Status', ntfBadge(n.status)),
      cell('Attempts', String(n.times_attempted)),
      cell('Occurred', when(n.occurred_at)),
      cell('Last attempt', when(n.last_attempt_at)),
      el('td', { class: 'actions', 'data-label': 'Actions' },
        el('a', { href: '#/deliveries/' + encodeURIComponent(n.id), class: 'logs' }, 'Logs'),
        replayable(n) ? [' ', el('button', { type: 'button', class: 'replay', onclick: () => replay(n, reload) }, 'Replay')] : null)));
  }

  async function viewDeliveries(view) {
    if (!perms.destRead) {
      put(view, el('h1', {}, 'Deliveries'),
        el('p', { class: 'muted' }, 'This key cannot read notifications (no notification_setting.read).'));
      return;
    }
    const body = el('tbody', { id: 'deliveries-body' });
    const pager = el('div', { class: 'pager' });
    async function load() {
      let q = '/notifications?per_page=' + encodeURIComponent(ntfState.perPage);
      if (ntfState.status) q += '&status=' + encodeURIComponent(ntfState.status);
      if (ntfState.after) q += '&after=' + encodeURIComponent(ntfState.after);
      const r = await guard(() => api('GET', q));
      if (!r) return;
      const page = r.json.data;
      put(body, ...ntfRows(page, load));
      const pg = r.json.meta.pagination;
      const next = pg.has_more ? afterOf(pg.next) : null;
      put(pager,
        el('button', { type: 'button', id: 'ntf-prev', disabled: !ntfState.prev.length, onclick: () => { ntfState.after = ntfState.prev.pop() || null; load(); } }, 'Previous page'),
        el('button', { type: 'button', id: 'ntf-next', disabled: !next, onclick: () => { ntfState.prev.push(ntfState.after); ntfState.after = next; load(); } }, 'Next page'),
        el('span', { class: 'muted' }, page.length + ' on this page' +
          (pg.estimated_total !== undefined ? ', about ' + pg.estimated_total + ' in all' : '')));
    }
    const status = el('select', {
      id: 'ntf-status', onchange: () => {
        ntfState.status = status.value; ntfState.after = null; ntfState.prev = []; load();
      },
    }, el('option', { value: '', selected: ntfState.status === '' }, 'All'),
    NTF_STATUSES.map((v) => el('option', { value: v, selected: v === ntfState.status }, v)));
    const perPage = el('select', {
      id: 'ntf-per-page', onchange: () => {
        ntfState.perPage = perPage.value; ntfState.after = null; ntfState.prev = []; load();
      },
    }, ['10', '50', '200'].map((v) => el('option', { value: v, selected: v === ntfState.perPage }, v)));
    put(view,
      el('h1', {}, 'Deliveries'),
      el('p', { class: 'muted' }, 'Webhook notifications, newest first, as every notifier recorded them.',
        perms.destWrite ? '' : ' This key cannot replay them (no notification_setting.write).'),
      el('div', { class: 'toolbar' },
        el('div', {}, el('label', { for: 'ntf-status' }, 'Status'), status),
        el('div', {}, el('label', { for: 'ntf-per-page' }, 'Per page'), perPage)),
      el('div', { class: 'table-wrap' }, el('table', { class: 'cards', id: 'deliveries' },
        el('thead', {}, el('tr', {}, ['Notification', 'Destination', 'Status', 'Attempts', 'Occurred', 'Last attempt', ''].map((h) => el('th', {}, h)))),
        body)),
      pager);
    await load();
  }

  function ntfEntity(n) {
    const rows = [['ID', el('code', {}, n.id)], ['Type', n.type],
      ['Status', el('span', { id: 'ntf-detail-status' }, ntfBadge(n.status))],
      ['Destination', el('code', {}, n.notification_setting_id)], ['Origin', n.origin],
      ['Attempts', String(n.times_attempted)], ['Occurred', when(n.occurred_at)],
      ['Last attempt', when(n.last_attempt_at)], ['Next retry', when(n.retry_at)],
      ['Delivered', when(n.delivered_at)], ['Replayed', when(n.replayed_at)]];
    return el('dl', { class: 'entity' }, rows.map(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
  }

  /* Each attempt; the response's body is the receiver's, shown as text. */
  function ntfLogs(logs) {
    if (!logs.length) return el('p', { class: 'muted', id: 'ntf-logs-none' }, 'No attempts yet.');
    return el('div', { class: 'table-wrap' }, el('table', { class: 'cards', id: 'ntf-logs' },
      el('thead', {}, el('tr', {}, ['Attempted', 'Response', 'Content type', 'Body'].map((h) => el('th', {}, h)))),
      el('tbody', {}, logs.map((l) => el('tr', { 'data-id': l.id },
        cell('Attempted', when(l.attempted_at)),
        cell('Response', el('span', { class: 'code ' + (l.response_code >= 200 && l.response_code < 300 ? 'ok' : 'bad') },
          l.response_code === 0 ? 'none' : String(l.response_code))),
        cell('Content type', l.response_content_type === null ? '—' : el('code', {}, l.response_content_type)),
        cell('Body', l.response_body === '' ? el('span', { class: 'muted' }, '(empty)')
          : el('pre', { class: 'body' }, l.response_body)))))));
  }

  async function viewDelivery(view, id) {
    const p = '/notifications/' + encodeURIComponent(id);
    const load = async () => {
      const r = await guard(() => api('GET', p));
      if (!r) return;
      const n = r.json.data;
      // Every page of the logs (200 at a time), oldest first.
      const logs = [];
      let q = p + '/logs?per_page=200';
      for (let i = 0; q && i < 50; i++) {
        const l = await guard(() => api('GET', q));
        if (!l) return;
        logs.push(...l.json.data);
        const pg = l.json.meta.pagination;
        const after = pg.has_more ? afterOf(pg.next) : null;
        q = after ? p + '/logs?per_page=200&after=' + encodeURIComponent(after) : null;
      }
      const replayed = el('p', { id: 'replayed' });
      put(view,
        el('p', {}, el('a', { href: '#/deliveries' }, '← All deliveries')),
        el('h1', {}, 'Notification ', el('span', { class: 'mono' }, n.id)),
        ntfEntity(n),
        replayable(n) ? el('p', {}, el('button', {
          type: 'button', id: 'ntf-replay', class: 'replay', onclick: () => replay(n, (nid) => put(replayed,
            'New notification: ', el('a', { id: 'replayed-id', href: '#/deliveries/' + encodeURIComponent(nid) }, nid))),
        }, 'Replay')) : null,
        replayed,
        el('h2', {}, 'Attempts'),
        ntfLogs(logs),
        el('h2', {}, 'Payload'),
        n.payload === null ? el('p', { class: 'muted' }, 'This replica does not hold the event.')
          : el('pre', { class: 'body', id: 'ntf-payload' }, JSON.stringify(n.payload, null, 2)));
    };
    await load();
  }

  /* ---- views: health ------------------------------------------------ */

  function healthTable(d) {
    const q = (p) => p.quarantined === undefined ? '—'
      : (p.quarantined > 0 ? el('span', { class: 'bad' }, String(p.quarantined)) : '0');
    return el('table', { class: 'cards', id: 'health' },
      el('thead', {}, el('tr', {}, ['Partition', 'Log end', 'Projected', 'Lag', 'Paused', 'Quarantined', 'Checkpoint', 'Stale'].map((h) => el('th', {}, h)))),
      el('tbody', {}, d.partitions.map((p) => el('tr', { class: p.paused || p.stale || p.quarantined > 0 ? 'bad' : '', 'data-partition': p.partition },
        cell('Partition', p.partition), cell('Log end', p.log_end), cell('Projected', p.projected),
        cell('Lag', el('span', { class: p.lag > 0 ? 'warn' : '' }, p.lag)),
        cell('Paused', p.paused ? el('span', { class: 'bad' }, 'PAUSED') : 'no'),
        cell('Quarantined', q(p)),
        cell('Checkpoint', p.checkpoint_at === undefined ? '—' : when(p.checkpoint_at)),
        cell('Stale', p.stale === undefined ? '—' : (p.stale ? el('span', { class: 'bad' }, 'STALE') : 'no'))))));
  }

  /* What wants an operator: paused partitions, quarantined records. */
  function healthCallouts(d) {
    const paused = d.partitions.filter((p) => p.paused).map((p) => p.partition);
    const quar = d.partitions.filter((p) => p.quarantined > 0);
    const items = [];
    if (paused.length) {
      items.push(el('li', { id: 'callout-paused' }, el('strong', {}, 'Paused: '),
        'partition' + (paused.length > 1 ? 's ' : ' ') + paused.join(', ') +
        ' stopped at a record of a newer schema version; reads of their tokens fail closed. Upgrade ctkn.'));
    }
    if (quar.length) {
      const n = quar.reduce((a, p) => a + p.quarantined, 0);
      items.push(el('li', { id: 'callout-quarantined' }, el('strong', {}, 'Quarantined: '),
        n + ' record' + (n > 1 ? 's' : '') + ' the projector could not use (' +
        quar.map((p) => 'partition ' + p.partition + ': ' + p.quarantined).join(', ') + '). ',
        el('code', {}, 'ctkn quarantine'), ' lists them with each reason.'));
    }
    return items.length ? el('ul', { class: 'callouts', id: 'health-callouts' }, items) : null;
  }

  async function viewHealth(view) {
    const out = el('div', { id: 'health-out' });
    const stamp = el('p', { class: 'muted', id: 'health-at' });
    put(view, el('h1', {}, 'Health'), stamp, out);
    const load = async () => {
      const r = await guard(() => api('GET', '/healthz', undefined, false));
      if (!r || !r.json || !r.json.data) return;
      const d = r.json.data;
      const cls = d.status === 'ready' ? 'ok' : 'bad';
      put(out,
        el('p', {}, 'Status: ', el('span', { class: cls, id: 'health-status' }, d.status),
          ' — topic ', el('code', {}, d.topic), ', total lag ', String(d.lag), ' (ready up to ', String(d.max_lag), ')'),
        healthCallouts(d),
        el('div', { class: 'table-wrap' }, healthTable(d)));
      stamp.textContent = 'Refreshed ' + new Date().toISOString() + ', every ' + HEALTH_EVERY_MS / 1000 + ' s.';
    };
    await load();
    timer = setInterval(load, HEALTH_EVERY_MS);
  }

  /* ---- routing ------------------------------------------------------ */

  function render() {
    if (timer) { clearInterval(timer); timer = null; }
    $('notice').hidden = true;
    const signedIn = !!key();
    $('signin').hidden = signedIn;
    $('nav').hidden = !signedIn;
    $('view').hidden = !signedIn;
    if (!signedIn) { $('key').focus(); return; }
    try { perms = JSON.parse(sessionStorage.getItem(PERMS)) || {}; } catch (e) { perms = {}; }
    showPerms();
    const parts = (location.hash || '#/tokens').slice(2).split('/');
    const view = $('view');
    put(view);
    for (const a of document.querySelectorAll('nav a')) {
      if (a.id === 'nav-' + (parts[0] || 'tokens')) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    switch (parts[0]) {
      case 'destinations': viewDestinations(view); break;
      case 'deliveries': if (parts[1]) viewDelivery(view, decodeURIComponent(parts[1])); else viewDeliveries(view); break;
      case 'health': viewHealth(view); break;
      case 'tokens': if (parts[1]) { viewToken(view, decodeURIComponent(parts[1])); break; }
      // falls through
      default: viewTokens(view);
    }
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('signin-form').addEventListener('submit', signIn);
    $('signout').addEventListener('click', signOut);
    // Enter in the rename dialog saves (its default button); Cancel closes.
    $('rename-cancel').addEventListener('click', () => $('rename').close('cancel'));
    window.addEventListener('hashchange', () => { hideError(); render(); $('main').focus(); });
    render();
  });
}());
