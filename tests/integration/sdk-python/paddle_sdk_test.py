"""Paddle's own Python SDK (paddle-python-sdk, pinned in
tests/integration/sdk-python-requirements.txt) against `ctkn serve`:
notification settings create, list over every page, get, update and
delete, the client-side token resource (create, get, list over every page,
revoke), events.list over every page (and by type), event_types.list, and
the ApiErrors the SDK raises. Run with the venv's python,
`python -m unittest -v paddle_sdk_test`, by
tests/integration/test_api_sdk_python.py.

Env: CTKN_API_URL (the server's base URL, the same as its --public-url),
CTKN_API_KEY (client_token.write and notification_setting.write, on a
server started with --secret-key-file), CTKN_API_KEY_READ
(client_token.read only); CTKN_API_URL_LIMITED, a server started with
--rate-limit 1, and CTKN_API_KEY_LIMITED, a key it knows.

What this SDK (1.16.1) does, read from its source:
  - The base URL is Options(environment).environment.base_url; Environment
    is an enum of production and sandbox only, so a custom URL is any
    object with a `base_url` (the SDK reads nothing else of it).
  - `Authorization: Bearer <key>`, `Content-Type: application/json`,
    `Paddle-Version: 1`, `User-Agent: PaddleSDK/python 1.16.1`, a random
    `X-Transaction-ID`; retries (429 and 5xx) only on https:// URLs.
  - A list is a Collection whose iteration GETs meta.pagination.next (an
    absolute URL, urljoin'ed onto the base) while has_more is true.
  - An error body becomes ApiError (a requests.HTTPError) or a subclass
    named after the code's first word (`address_...` -> AddressApiError);
    ctkn's codes (invalid_field, not_found, forbidden, ...) match none, so
    they are ApiError: error_type, error_code, detail, docs_url,
    field_errors [FieldError(field, error)], retry_after (int(Retry-After)).
  - Enums (traffic_source, type, event names, status) never reject a
    value: an unknown one has name "Undefined", hence the is_known()
    checks here.
  - UpdateClientToken has only `status`: the SDK can revoke, not rename.
"""
import os
import re
import secrets
import types
import unittest
from datetime import datetime, timezone

from paddle_billing import Client, Options
from paddle_billing.Entities.ClientToken import ClientToken
from paddle_billing.Entities.DateTime import DateTime
from paddle_billing.Entities.ClientTokens import ClientTokenStatus
from paddle_billing.Entities.Events import EventTypeName
from paddle_billing.Entities.NotificationSetting import NotificationSetting
from paddle_billing.Entities.NotificationSettings import (
    NotificationSettingTrafficSource as Traffic, NotificationSettingType)
from paddle_billing.Exceptions.ApiError import ApiError
from paddle_billing.Notifications.Entities.ClientToken import (
    ClientToken as ClientTokenNotification)
from paddle_billing.Resources.Events.Operations import ListEvents
from paddle_billing.Resources.ClientTokens.Operations import (
    CreateClientToken, ListClientTokens, UpdateClientToken)
from paddle_billing.Resources.NotificationSettings.Operations import (
    CreateNotificationSetting, ListNotificationSettings,
    UpdateNotificationSetting)
from paddle_billing.Resources.Shared.Operations import OrderBy, Pager

URL = os.environ["CTKN_API_URL"]
KEY = os.environ["CTKN_API_KEY"]
KEY_READ = os.environ["CTKN_API_KEY_READ"]
URL_LIMITED = os.environ.get("CTKN_API_URL_LIMITED")
KEY_LIMITED = os.environ.get("CTKN_API_KEY_LIMITED")

SET_ID = re.compile(r"^ntfset_[0-7][0-9a-hjkmnp-tv-z]{25}$")
SECRET = re.compile(r"^pdl_ntfset_([0-9a-z]{26})_[A-Za-z0-9]{32}$")
TOKEN_ID = re.compile(r"^ctkn_[0-7][0-9a-hjkmnp-tv-z]{25}$")
TOKEN = re.compile(r"^test_[a-zA-Z0-9]{27}$")  # the server runs in sandbox
UNKNOWN_SET = "ntfset_7zzzzzzzzzzzzzzzzzzzzzzzzz"
UNKNOWN_TOKEN = "ctkn_7zzzzzzzzzzzzzzzzzzzzzzzzz"
RUN = secrets.token_hex(4)  # names unique to this run
CREATED = EventTypeName.ClientTokenCreated
REVOKED = EventTypeName.ClientTokenRevoked
UPDATED = EventTypeName.ClientTokenUpdated


def sdk(key, url=URL):
    """The SDK pointed at url, recording the URL of every request it
    sends (a response hook beside the SDK's own logging hook)."""
    c = Client(key, options=Options(types.SimpleNamespace(base_url=url)))
    c.sent = []
    c.client.hooks["response"] = [c.logging_hook,
                                  lambda r, *a, **k: c.sent.append(r.url)]
    return c


class Base(unittest.TestCase):
    def setUp(self):
        self.paddle = sdk(KEY)
        self.reader = sdk(KEY_READ)

    def api_error(self, fn, status, code):
        """fn must raise ApiError with this status and code; returns it."""
        with self.assertRaises(ApiError) as cm:
            fn()
        e = cm.exception
        self.assertIs(type(e), ApiError)
        self.assertEqual(e.error_code, code, e.detail)
        self.assertEqual(e.response.status_code, status)
        self.assertEqual(e.error_type, "request_error")
        self.assertTrue(e.detail)
        self.assertEqual(e.docs_url,
                         f"https://developer.paddle.com/v1/errors/shared/{code}")
        return e

    def pages(self, collection, client):
        """Every item, iterating the collection (the SDK follows next), and
        the number of requests that took."""
        before = len(client.sent)
        items = list(collection)
        return items, len(client.sent) - before + 1


class NotificationSettings(Base):
    def create(self, description, **kw):
        op = CreateNotificationSetting(
            description=description,
            destination=kw.pop("destination", "https://example.com/py-hook"),
            subscribed_events=kw.pop("events", [CREATED, REVOKED]),
            type=kw.pop("type", NotificationSettingType.Url),
            include_sensitive_fields=kw.pop("sensitive", False), **kw)
        return self.paddle.notification_settings.create(op)

    def check_setting(self, s, secret=None):
        self.assertIsInstance(s, NotificationSetting)
        self.assertRegex(s.id, SET_ID)
        m = SECRET.match(s.endpoint_secret_key or "")
        self.assertTrue(m, f"endpoint_secret_key {s.endpoint_secret_key!r}")
        self.assertEqual(m.group(1), s.id[len("ntfset_"):])
        if secret is not None:
            self.assertEqual(s.endpoint_secret_key, secret)
        self.assertTrue(s.traffic_source.is_known(), s.traffic_source)
        self.assertTrue(s.type.is_known(), s.type)
        self.assertEqual(s.type, NotificationSettingType.Url)
        self.assertIs(s.include_sensitive_fields, False)
        self.assertEqual(s.api_version, 1)
        for e in s.subscribed_events:
            self.assertTrue(e.name.is_known(), e.name)
            self.assertEqual(e.group, "Client token")
            self.assertEqual(e.available_versions, [1])
            self.assertIsInstance(e.description, str)

    def test_create_get_list_update_delete(self):
        ns = self.paddle.notification_settings
        s = self.create(f"py {RUN}", api_version=1,
                        traffic_source=Traffic.Platform)
        self.check_setting(s)
        self.assertEqual(s.description, f"py {RUN}")
        self.assertEqual(s.destination, "https://example.com/py-hook")
        self.assertIs(s.active, True)
        self.assertEqual(s.traffic_source, Traffic.Platform)
        self.assertEqual([e.name for e in s.subscribed_events],
                         [CREATED, REVOKED])
        secret = s.endpoint_secret_key

        # Reads carry the secret, as Paddle's do (the server holds the
        # deployment key), and read back what was sent.
        got = ns.get(s.id)
        self.check_setting(got, secret)
        self.assertEqual(got, s)

        # Without traffic_source it is Paddle's default, platform.
        d = self.create(f"py default {RUN}")
        self.check_setting(d)
        self.assertEqual(d.traffic_source, Traffic.Platform)

        # One per page: iterating follows next across every page, and next
        # is a URL even on the last page.
        first = ns.list(ListNotificationSettings(Pager(per_page=1)))
        self.assertEqual(len(first.items), 1)
        items, requests = self.pages(first, self.paddle)
        ids = [i.id for i in items]
        self.assertIn(s.id, ids)
        self.assertIn(d.id, ids)
        self.assertEqual(ids, sorted(ids))
        self.assertEqual(len(set(ids)), len(ids))
        self.assertEqual(requests, len(ids))
        for i in items:
            self.check_setting(i)
        last = first.paginator._pagination  # the last page's meta.pagination
        self.assertFalse(last.has_more)
        self.assertTrue(last.next.startswith(URL + "/notification-settings?"),
                        last.next)
        self.assertIn(f"after={ids[-1]}", last.next)

        desc = ns.list(ListNotificationSettings(
            Pager(order_by=OrderBy.id_descending()),
            traffic_source=Traffic.Platform))
        self.assertEqual([i.id for i in desc.items][:2], [d.id, s.id])
        self.assertEqual(
            next(i for i in desc.items if i.id == s.id).endpoint_secret_key,
            secret)

        paused = ns.update(s.id, UpdateNotificationSetting(active=False))
        self.check_setting(paused, secret)
        self.assertIs(paused.active, False)
        inactive = [i.id for i in ns.list(ListNotificationSettings(
            active=False))]
        self.assertIn(s.id, inactive)
        self.assertNotIn(d.id, inactive)

        changed = ns.update(s.id, UpdateNotificationSetting(
            description="Renamed", destination="https://example.com/other",
            subscribed_events=[UPDATED], api_version=1,
            traffic_source=Traffic.All))
        self.check_setting(changed, secret)
        self.assertEqual(changed.traffic_source, Traffic.All)
        self.assertEqual(changed.description, "Renamed")
        self.assertEqual(changed.destination, "https://example.com/other")
        self.assertEqual([e.name for e in changed.subscribed_events],
                         [UPDATED])
        self.assertIs(changed.active, False)
        self.assertEqual(ns.get(s.id), changed)

        for x in (s, d):
            self.assertIsNone(ns.delete(x.id))
        self.api_error(lambda: ns.get(s.id), 404, "not_found")
        self.api_error(lambda: ns.delete(s.id), 404, "not_found")
        self.assertNotIn(s.id, [i.id for i in ns.list()])

    def test_errors(self):
        ns = self.paddle.notification_settings
        e = self.api_error(
            lambda: self.create("mail", destination="ops@example.com",
                                type=NotificationSettingType.Email),
            400, "invalid_field")
        self.assertEqual(e.field_errors[0].field, "type")
        self.assertTrue(e.field_errors[0].error)
        e = self.api_error(
            lambda: self.create("x", events=[EventTypeName.TransactionCompleted]),
            400, "invalid_field")
        self.assertEqual(e.field_errors[0].field, "subscribed_events")
        e = self.api_error(
            lambda: self.create("x", traffic_source=Traffic.Simulation),
            400, "invalid_field")
        self.assertEqual(e.field_errors[0].field, "traffic_source")
        e = self.api_error(
            lambda: ns.update(UNKNOWN_SET, UpdateNotificationSetting(
                include_sensitive_fields=True)), 400, "invalid_field")
        self.assertEqual(e.field_errors[0].field, "include_sensitive_fields")
        self.api_error(lambda: ns.update(UNKNOWN_SET, UpdateNotificationSetting(
            active=True)), 404, "not_found")
        e = self.api_error(lambda: ns.get(UNKNOWN_SET), 404, "not_found")
        self.assertEqual(e.field_errors, ())
        self.assertIsNone(e.retry_after)
        e = self.api_error(lambda: self.reader.notification_settings.list(),
                           403, "forbidden")
        self.assertIn("notification_setting.read", e.detail)


class ClientTokens(Base):
    def check_token(self, t, name, description, status):
        self.assertIsInstance(t, ClientToken)
        self.assertRegex(t.id, TOKEN_ID)
        self.assertRegex(t.token, TOKEN)
        self.assertEqual(t.name, name)
        self.assertEqual(t.description, description)
        self.assertTrue(t.status.is_known(), t.status)
        self.assertEqual(t.status, status)
        for at in (t.created_at, t.updated_at):
            self.assertEqual(at.tzinfo, timezone.utc)
        self.assertGreaterEqual(t.updated_at, t.created_at)
        if status == ClientTokenStatus.Active:
            self.assertIsNone(t.revoked_at)
        else:
            self.assertEqual(t.revoked_at, t.updated_at)

    def test_create_get_list_revoke(self):
        ct = self.paddle.client_tokens
        a = ct.create(CreateClientToken(name=f"py a {RUN}",
                                        description="from Python"))
        self.check_token(a, f"py a {RUN}", "from Python",
                         ClientTokenStatus.Active)
        self.assertLess(abs((datetime.now(timezone.utc) -
                             a.created_at).total_seconds()), 300)
        b = ct.create(CreateClientToken(name=f"py b {RUN}"))
        self.check_token(b, f"py b {RUN}", None, ClientTokenStatus.Active)
        self.assertEqual(ct.get(a.id), a)
        self.assertEqual(self.reader.client_tokens.get(b.id), b)

        r = ct.revoke(a.id)
        self.check_token(r, a.name, a.description, ClientTokenStatus.Revoked)
        self.assertEqual(ct.get(a.id), r)

        first = ct.list(ListClientTokens(Pager(per_page=1), statuses=[
            ClientTokenStatus.Active, ClientTokenStatus.Revoked]))
        items, requests = self.pages(first, self.paddle)
        ids = [t.id for t in items]
        self.assertEqual(requests, len(ids))
        self.assertEqual(ids, sorted(ids))
        self.assertIn(a.id, ids)
        self.assertIn(b.id, ids)
        last = first.paginator._pagination
        self.assertFalse(last.has_more)
        self.assertTrue(last.next.startswith(URL + "/client-tokens?"),
                        last.next)
        revoked = [t.id for t in ct.list(ListClientTokens(
            statuses=[ClientTokenStatus.Revoked]))]
        self.assertIn(a.id, revoked)
        self.assertNotIn(b.id, revoked)

        # Revoking again changes nothing; reactivating is a conflict.
        self.assertEqual(ct.revoke(a.id), r)
        self.api_error(lambda: ct.update(a.id, UpdateClientToken(
            status=ClientTokenStatus.Active)), 409, "conflict")

    def test_errors(self):
        ct = self.paddle.client_tokens
        e = self.api_error(lambda: ct.create(CreateClientToken(name="x" * 151)),
                           400, "invalid_field")
        self.assertEqual(e.field_errors[0].field, "name")
        self.assertIn("1-150", e.field_errors[0].error)
        e = self.api_error(lambda: ct.get(UNKNOWN_TOKEN), 404, "not_found")
        self.assertEqual(e.field_errors, ())
        e = self.api_error(lambda: self.reader.client_tokens.create(
            CreateClientToken(name="x")), 403, "forbidden")
        self.assertIn("client_token.write", e.detail)

    @unittest.skipUnless(URL_LIMITED, "CTKN_API_URL_LIMITED not set")
    def test_rate_limited(self):
        """429 too_many_requests; the SDK reads Retry-After as an int."""
        c = sdk(KEY_LIMITED, URL_LIMITED)
        e = None
        for _ in range(20):
            try:
                c.client_tokens.get(UNKNOWN_TOKEN)
            except ApiError as x:
                if x.error_code != "not_found":
                    e = x
                    break
        self.assertIsNotNone(e, "no 429 in 20 requests at --rate-limit 1")
        self.assertEqual(e.error_code, "too_many_requests")
        self.assertEqual(e.response.status_code, 429)
        self.assertIsInstance(e.retry_after, int)
        self.assertGreaterEqual(e.retry_after, 1)


class Events(Base):
    def test_list_over_pages_and_event_types(self):
        """events.list follows next over every page; each event parses into
        the SDK's Event with a ClientToken; event_types.list names them."""
        ct = self.paddle.client_tokens
        a = ct.create(CreateClientToken(name=f"py ev a {RUN}"))
        b = ct.create(CreateClientToken(name=f"py ev b {RUN}"))
        ct.revoke(a.id)  # answered once this replica has applied it
        first = self.reader.events.list(ListEvents(Pager(per_page=2)))
        items, requests = self.pages(first, self.reader)
        ids = [e.event_id for e in items]
        self.assertEqual(ids, sorted(ids))
        self.assertEqual(len(set(ids)), len(ids))
        self.assertEqual(requests, (len(ids) + 1) // 2)
        last = first.paginator._pagination
        self.assertFalse(last.has_more)
        self.assertTrue(last.next.startswith(URL + "/events?"), last.next)
        for e in items:
            self.assertTrue(e.event_type.is_known(), e.event_type)
            self.assertIsInstance(e.data, ClientTokenNotification)
            self.assertEqual(e.occurred_at.tzinfo, timezone.utc)
        mine = sorted((e.data.id, str(e.event_type)) for e in items
                      if e.data.id in (a.id, b.id))
        self.assertEqual(mine, sorted([(a.id, str(CREATED)),
                                       (a.id, str(REVOKED)),
                                       (b.id, str(CREATED))]))
        revoked = list(self.reader.events.list(ListEvents(
            Pager(per_page=200), event_types=[REVOKED])))
        self.assertTrue(revoked)
        self.assertTrue(all(e.event_type == REVOKED for e in revoked))
        self.assertIn(a.id, [e.data.id for e in revoked])
        # from (the SDK's start, which it formats with microseconds and Z)
        # is inclusive: a's create is the first event at its instant.
        since = list(self.reader.events.list(ListEvents(
            Pager(per_page=200), start=DateTime(a.created_at.isoformat()))))
        self.assertTrue(all(e.occurred_at >= a.created_at for e in since))
        self.assertIn((a.id, str(CREATED)),
                      [(e.data.id, str(e.event_type)) for e in since])
        self.assertIn(b.id, [e.data.id for e in since])
        # Newest first.
        desc = list(self.reader.events.list(ListEvents(
            Pager(per_page=200, order_by=OrderBy.id_descending()))))
        self.assertEqual([e.event_id for e in desc],
                         sorted([e.event_id for e in desc], reverse=True))

        types = list(self.reader.event_types.list())
        names = [str(t.name) for t in types]
        for want in (CREATED, UPDATED, REVOKED,
                     EventTypeName.ApiKeyCreated, EventTypeName.ApiKeyExpiring):
            self.assertIn(str(want), names)
        for t in types:
            self.assertEqual(t.available_versions, [1])
            self.assertTrue(t.group and t.description)

    def test_errors(self):
        e = self.api_error(lambda: self.reader.events.list(ListEvents(
            Pager(after="ctkn_nope"))), 400, "invalid_field")
        self.assertEqual(e.field_errors[0].field, "after")


if __name__ == "__main__":
    unittest.main(verbosity=2)
