"""Paddle's Python SDK (paddle-python-sdk 1.16.1) on ctkn's notifications
API: notifications.list over every page, notifications.get,
notification_logs.list and notifications.replay, each answer parsed into
the SDK's entities (Notification with its NotificationEvent payload,
NotificationLog). Run with the venv's python by
tests/integration/test_api_sdk_python.py, after one notification was
delivered; prints one JSON line with what the outer test checks next.

Env: CTKN_API_URL (the server's base URL), CTKN_NTF_KEY (a key with
notification_setting.read and notification_setting.write).
"""
import json
import os
import types

from paddle_billing import Client, Options
from paddle_billing.Entities.Notifications import (NotificationOrigin,
                                                   NotificationStatus)
from paddle_billing.Resources.NotificationLogs.Operations import \
    ListNotificationLogs
from paddle_billing.Resources.Notifications.Operations import \
    ListNotifications
from paddle_billing.Resources.Shared.Operations import Pager

paddle = Client(os.environ["CTKN_NTF_KEY"], options=Options(
    types.SimpleNamespace(base_url=os.environ["CTKN_API_URL"])))

every = list(paddle.notifications.list(ListNotifications(Pager(per_page=1))))
assert len(every) >= 1, every
delivered = list(paddle.notifications.list(ListNotifications(
    statuses=[NotificationStatus.Delivered])))
assert [n.id for n in delivered] == [n.id for n in every], delivered
n = delivered[0]
assert n.status == NotificationStatus.Delivered, n
assert n.origin == NotificationOrigin.Event, n
assert n.times_attempted == 1 and n.payload.notification_id == n.id, n
assert n.payload.event_type.value == "client_token.created", n.payload
one = paddle.notifications.get(n.id)
assert one.id == n.id and one.notification_setting_id == \
    n.notification_setting_id, one
logs = list(paddle.notification_logs.list(n.id, ListNotificationLogs()))
assert len(logs) == 1 and logs[0].response_code == 200, logs
assert logs[0].id.startswith("ntflog_"), logs[0]
new = paddle.notifications.replay(n.id)
assert new.startswith("ntf_") and new != n.id, new
print(json.dumps({"notification_id": n.id, "replay": new,
                  "log": {"response_code": logs[0].response_code,
                          "response_content_type":
                              logs[0].response_content_type,
                          "response_body": logs[0].response_body}}))
