"""Paddle's published contract for the operations ctkn implements, and
the places ctkn deliberately departs from it.

Shared by test_api_paddle.py (which runs schemathesis against Paddle's
description and sends Paddle's documented examples) and
paddle_hooks.py (which attributes each schemathesis failure to one of
the deviations below, or lets it fail the run). README.md's
"Compatibility with Paddle's contract" section is this same list: keep
the two in step.

Needs PyYAML: it runs in the schemathesis venv (test_api_paddle.py
re-executes itself there).
"""
import copy
import hashlib
import json
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
# Paddle's text, copied verbatim from ../shared/paddle-openapi (PaddleHQ's
# paddle-openapi, v1/openapi.yaml at 792a49e6); never edited, so its
# hash is pinned.
SPEC = os.path.join(ROOT, "tests", "fixtures", "paddle-openapi",
                    "paddle-subset.yaml")
SPEC_SHA256 = \
    "0b789d147594e71320326a696ee1473e405d811caacff260d2818b35dcfb0f02"
CTKN_EVENTS = ["client_token.created", "client_token.updated",
               "client_token.revoked"]


def load_spec():
    """Paddle's description as published (its hash checked)."""
    import yaml
    with open(SPEC, "rb") as f:
        raw = f.read()
    got = hashlib.sha256(raw).hexdigest()
    if got != SPEC_SHA256:
        raise AssertionError(f"{SPEC} is not Paddle's text (sha256 {got}, "
                             f"want {SPEC_SHA256}): it must not be edited")
    return yaml.safe_load(raw)


def transform(spec):
    """The one change made at test time: Paddle's event-name enumeration
    predates client_token.*, so it is made open. A name is any
    `entity.event` string; the listed ones, ctkn's own among them, stay
    as examples. Returns a new document; the file is never touched."""
    s = copy.deepcopy(spec)
    names = s["components"]["schemas"]["event_type_name"]
    listed = names.pop("enum")
    names.pop("x-enum-descriptions", None)
    names["type"] = "string"
    names["pattern"] = r"^[a-z_]+\.[a-z_]+$"
    names["examples"] = CTKN_EVENTS + listed
    return s


def deref(spec, node):
    """node with every local $ref replaced by what it names (the subset
    has no recursive references)."""
    if isinstance(node, dict):
        if "$ref" in node and node["$ref"].startswith("#/"):
            target = spec
            for part in node["$ref"][2:].split("/"):
                target = target[part]
            extra = {k: v for k, v in node.items() if k != "$ref"}
            return deref(spec, {**target, **extra})
        return {k: deref(spec, v) for k, v in node.items()}
    if isinstance(node, list):
        return [deref(spec, v) for v in node]
    return node


# ---- the deviations ---------------------------------------------------------
#
# Each: a name, the reason (README says the same), and how a failure is
# recognised: `field` (an invalid_field naming that member or parameter
# in answer to data Paddle's description accepts), `code` (an error code
# so answered), or `match`, a function of the failure record (see
# paddle_hooks.py) for the rest. Each also has a probe in
# test_api_paddle.py that shows it still occurs: a deviation that no
# longer occurs fails the test, as does a failure that none explains.

DEVIATIONS = [
    {"name": "event-names",
     "reason": "subscribed_events takes ctkn's own event types only "
               "(client_token.created, .updated, .revoked): ctkn never "
               "sends Paddle's billing events, so a subscription to one "
               "is refused (invalid_field) rather than accepted and never "
               "delivered. At least one, none twice.",
     "field": "subscribed_events"},
    {"name": "type-url",
     "reason": "type is url only: ctkn delivers webhooks, not email.",
     "field": "type"},
    {"name": "destination-url",
     "reason": "destination must be an absolute http:// or https:// URL "
               "with a host, in visible ASCII (a webhook endpoint); "
               "Paddle's description takes any string (it also holds "
               "email addresses).",
     "field": "destination"},
    {"name": "api-version-1",
     "reason": "api_version is 1: ctkn's events have one version.",
     "field": "api_version"},
    {"name": "no-sensitive-fields",
     "reason": "include_sensitive_fields is false: client-side token "
               "events have no sensitive fields to include.",
     "field": "include_sensitive_fields"},
    {"name": "no-simulation-traffic",
     "reason": "traffic_source is platform or all (kept as sent, platform "
               "by default); simulation is refused, since ctkn has no "
               "simulated traffic and such a destination would receive "
               "nothing. The list filter traffic_source=simulation "
               "matches none.",
     "field": "traffic_source"},
    {"name": "description-text",
     "reason": "description is 1-500 code points without control "
               "characters (U+0000-U+001F, U+007F-U+009F), the rule of a "
               "token's name; Paddle's description takes any string.",
     "field": "description"},
    {"name": "description-null",
     "reason": "PATCH description null clears it (a ctkn extension, as "
               "for tokens); the entity then reads back with description "
               "null, which Paddle's entity (a string) does not allow.",
     "match": lambda f: (f["method"] == "PATCH" and
                         f["check"] == "negative_data_rejection" and
                         isinstance(f.get("body"), dict) and
                         f["body"].get("description", "") is None) or
     (f["check"] == "response_schema_conformance" and
      f["null_description"])},
    {"name": "ids-checked",
     "reason": "notification_setting_id and after must be notification "
               "setting IDs (ntfset_ and 26 lowercase base32 characters); "
               "anything else is invalid_field naming the parameter, not "
               "404 or an empty page. Paddle's description types them as "
               "any string.",
     "field": ("notification_setting_id", "after")},
    {"name": "order-by-values",
     "reason": "order_by is id[ASC] or id[DESC] (Paddle names id as the "
               "only field to order by), the direction in any case "
               "(Paddle's Python SDK sends id[asc]); any other value is "
               "invalid_field. "
               "Paddle's description types it as any string.",
     "field": "order_by"},
    {"name": "per-page-range",
     "reason": "per_page must be a positive integer; above 200 it is "
               "served as 200, as Paddle's own text says (\"Paddle returns "
               "the maximum number of results if a number greater than the "
               "maximum is requested\"), though its schema sets maximum "
               "200.",
     "field": "per_page",
     "match": lambda f: f["check"] == "negative_data_rejection" and
     f["status"] == 200 and "per_page" in f.get("query", {})},
    {"name": "unknown-members",
     "reason": "a body member that the operation does not take is "
               "invalid_field (a typo must not be ignored silently); "
               "Paddle's schemas leave additionalProperties open.",
     "match": lambda f: f["status"] == 400 and f["code"] == "invalid_field"
     and (f["message"] or "").startswith("unknown field")},
    {"name": "unknown-parameters",
     "reason": "an unknown or repeated query parameter is invalid_field, "
               "for the same reason.",
     "match": lambda f: f["status"] == 400 and f["code"] == "invalid_field"
     and (f["message"] or "").startswith("unknown or repeated query")},
    {"name": "body-required",
     "reason": "a POST or PATCH without a body, and a PATCH of {}, are "
               "bad_request (\"nothing to update\" for the PATCH); "
               "Paddle's description marks neither body required, and its "
               "update schema allows {}. Paddle's SDKs always send one.",
     "match": lambda f: f["method"] in ("POST", "PATCH") and
     f["status"] == 400 and f["code"] == "bad_request" and (
         "nothing to update" in (f["detail"] or "") or
         f["body"] in (None, "") and "near end of file" in
         (f["detail"] or ""))},
    {"name": "no-nul-characters",
     "reason": "a body whose strings or member names hold U+0000 is "
               "bad_request: no value ctkn keeps may contain one (jansson "
               "refuses them, and ctkn's strings are C strings).",
     "match": lambda f: f["status"] == 400 and f["code"] == "bad_request" and
     "NUL" in (f["detail"] or "")},
    {"name": "number-range",
     "reason": "a number beyond a 64-bit integer (or a double) anywhere in "
               "a body is invalid_field, naming its member and the range: "
               "ctkn's JSON library holds no larger number. Paddle's "
               "description bounds none (api_version has a minimum only).",
     "match": lambda f: f["status"] == 400 and f["code"] == "invalid_field"
     and "is out of range: a number" in (f["message"] or "")},
    {"name": "auth-is-403",
     "reason": "a missing or malformed API key is 403 "
               "(authentication_missing, authentication_malformed), as "
               "Paddle's API answers; HTTP's bearer convention, which "
               "schemathesis checks, expects 401.",
     "match": lambda f: f["status"] == 403 and f["code"] in (
         "authentication_missing", "authentication_malformed",
         "invalid_token")},
    {"name": "endpoint-secret-redaction",
     "reason": "endpoint_secret_key is returned on reads only by a "
               "replica that holds the deployment key (--secret-key-file) "
               "and was not started with --redact-endpoint-secrets. A "
               "replica without the key cannot open the sealed secret and "
               "leaves it out; redaction keeps secrets off the wire and "
               "out of clients that only read, at the price of Paddle's "
               "read-back (keep the secret from the create's answer).",
     "probe_only": True},
]

BY_NAME = {d["name"]: d for d in DEVIATIONS}


def _fields(d):
    f = d.get("field")
    return () if f is None else (f,) if isinstance(f, str) else f


def classify(record):
    """The deviation that explains a failure record, or None.

    record: {"check", "title", "method", "path", "query", "body",
    "status", "code", "field", "message", "detail", "null_description"}
    where code, field, message and detail come from ctkn's error envelope
    (None when the answer is not one), and null_description tells whether
    the answer holds an entity whose description is null."""
    for d in DEVIATIONS:
        m = d.get("match")
        if m is not None and m(record):
            return d["name"]
    if record["status"] == 400 and record["code"] == "invalid_field":
        for d in DEVIATIONS:
            if record["field"] in _fields(d):
                return d["name"]
    return None


def record_of(check, title, method, path, query, body, status, content):
    """A failure record from what schemathesis saw."""
    code = field = message = detail = None
    null_description = False
    try:
        data = json.loads(content).get("data")
        items = data if isinstance(data, list) else [data]
        null_description = any(isinstance(d, dict) and "description" in d and
                               d["description"] is None for d in items)
    except (ValueError, TypeError, AttributeError):
        pass
    try:
        err = json.loads(content)["error"]
        code, detail = err.get("code"), err.get("detail")
        if err.get("errors"):
            field = err["errors"][0].get("field")
            message = err["errors"][0].get("message")
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    return {"check": check, "title": title, "method": method, "path": path,
            "query": dict(query or {}), "body": body, "status": status,
            "code": code, "field": field, "message": message,
            "detail": detail, "null_description": null_description}


README_HEADING = "### Compatibility with Paddle's contract"


def readme_names():
    """The deviation names README.md's compatibility section lists, in
    order (each item starts with **`name`**)."""
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    start = text.index(README_HEADING)
    end = text.find("\n#", start + len(README_HEADING))
    section = text[start:end if end >= 0 else len(text)]
    return re.findall(r"^\* \*\*`([a-z0-9-]+)`\*\*", section, re.M)
