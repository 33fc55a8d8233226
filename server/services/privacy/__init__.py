"""Personal data: a member's export, erasure, and pseudonymisation of old raw detail.

Why three operations:

- *Export* (right of access): everything the database holds about one member, as
  JSON-ready dicts — the member row, badges, authorizations, sessions, raw events
  naming their badges, trainer sign-offs, linked web logins, audit entries and
  dead letters that mention their badges.
- *Erasure* (right to erasure): identity goes (name, e-mail, member number,
  badge UIDs everywhere they were copied, audit details, linked web logins), but
  the member row stays as an anonymous number so usage totals, machine hours and
  reports are unchanged. Tags and site stay: they are the categories funder
  reports aggregate (with small counts masked).
- *Pseudonymisation* (storage limitation): raw detail older than a retention
  (badge UIDs in sessions, events, sign-offs) is replaced by a keyed pseudonym
  (HMAC with a key kept in the settings table), so old records stay countable
  and linkable to each other but no longer carry a card's UID; raw dead letters
  and never-enrolled badges older than the retention are deleted. The server's
  runner calls `daily_job` once a day.

Replacement UIDs start with a letter outside hex (`E` erased, `P` pseudonymised), so
they can never collide with a real card's UID nor pass UID validation.

Split by operation (one module each) with the shared helpers in `common`; the names below
are re-exported so `from server.services.privacy import erase_member` keeps working.
"""

from __future__ import annotations

from server.services.privacy.common import (
    BATCH,
    DEFAULT_RETENTION_DAYS,
    ERASED_NAME,
    EVENTS_WATERMARK,
    EXPORT_FORMAT,
    KEY_SETTING,
    RETENTION_ENV,
    UID_KEYS,
)
from server.services.privacy.erasure import ErasureResult, erase_member
from server.services.privacy.export import (
    export_member,
    export_member_json,
    open_session_machines,
)
from server.services.privacy.pseudonyms import (
    PseudonymiseResult,
    daily_job,
    pseudonym,
    pseudonym_key,
    pseudonymise,
    retention_days_from_env,
)

__all__ = ["BATCH", "DEFAULT_RETENTION_DAYS", "ERASED_NAME", "EVENTS_WATERMARK", "EXPORT_FORMAT",
           "KEY_SETTING", "RETENTION_ENV", "UID_KEYS", "ErasureResult", "PseudonymiseResult",
           "daily_job", "erase_member", "export_member", "export_member_json",
           "open_session_machines", "pseudonym", "pseudonym_key", "pseudonymise",
           "retention_days_from_env"]
