"""Settings from the environment (contract section 1), without Flask.

The app factory, the CLI and the services that need a setting (provisioning reads the broker
URL) all start from `settings_from_env`, so a setting is read in one place.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from server.db import default_url
from server.errors import ServerError


class ConfigurationError(ServerError, RuntimeError):
    """A setting is missing or wrong; the message names it."""

    code = "configuration"


def settings_from_env(env: dict[str, str] | None = None) -> dict[str, Any]:
    env = dict(os.environ if env is None else env)
    data_dir = Path(env.get("FABPASS_DATA_DIR", "./instance")).resolve()
    return {
        "DATA_DIR": str(data_dir),
        "DATABASE_URL": env.get("FABPASS_DATABASE_URL") or default_url(data_dir),
        "MQTT_URL": env.get("FABPASS_MQTT_URL", "mqtt://127.0.0.1:1883"),
        "SECRET_KEY": env.get("FABPASS_SECRET_KEY"),
        "TOPIC_ROOT": env.get("FABPASS_TOPIC_ROOT", "fabpass"),
        "TIMEZONE": env.get("FABPASS_TIMEZONE", "UTC"),
        "DEMO": env.get("FABPASS_DEMO", "") == "1",
        "TRUSTED_PROXIES": trusted_proxies(env.get("FABPASS_TRUSTED_PROXIES", "")),
        # issue 20: mail, alerts, webhooks (contract section 6)
        "SMTP_URL": env.get("FABPASS_SMTP_URL", ""),
        "MAIL_FROM": env.get("FABPASS_MAIL_FROM", "fabpass@localhost"),
        "PUBLIC_URL": env.get("FABPASS_PUBLIC_URL", "http://localhost:8000").rstrip("/"),
        "ALERT_NODE_OFFLINE_S": float(env.get("FABPASS_ALERT_NODE_OFFLINE_S", "600")),
        # issue 18: minutes between Fab-manager syncs; 0 (default) turns the schedule off
        "FABMANAGER_SYNC_MINUTES": float(env.get("FABPASS_FABMANAGER_SYNC_MINUTES", "0") or 0),
        "WEBHOOK_ALLOW_HOSTS": [h.strip().lower() for h in
                                env.get("FABPASS_WEBHOOK_ALLOW_HOSTS", "").split(",") if h.strip()],
    }


def trusted_proxies(raw: str) -> int:
    """`FABPASS_TRUSTED_PROXIES`: how many reverse proxies stand in front of the server (0..10).

    Their `X-Forwarded-For`/`-Proto`/`-Host`/`-Port`/`-Prefix` are believed that many hops
    deep, so the login throttle sees each client's own address and the session cookie is
    `Secure` when the browser spoke HTTPS to the proxy. Leave 0 without a proxy: the headers
    would then be the client's word."""
    if not raw.strip():
        return 0
    try:
        n = int(raw)
    except ValueError:
        n = -1
    if not 0 <= n <= 10:
        raise ConfigurationError(f"FABPASS_TRUSTED_PROXIES must be a whole number from 0 to 10, "
                                 f"not {raw!r}")
    return n
