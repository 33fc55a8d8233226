"""The dashboard's first-run guide (issue 15): the steps of server.services.first_run, each with
what to do and a link to the page that does it. Shown until every step is done."""

from __future__ import annotations

import time
from typing import Any

from flask import url_for
from flask_babel import lazy_gettext as _l
from markupsafe import Markup

from server import auth
from server.app import get_db
from server.services import first_run
from server.web.blueprint import writes_count

# step: (title, what it means, endpoint of the page that does it)
STEP_TEXTS: dict[str, tuple[Any, Any, str]] = {
    "site": (_l("Create your site"),
             _l("Its name and time zone: reports and opening hours use them."), "web.sites"),
    "machine": (_l("Add your machines"),
                _l("Each kind comes with a sensible policy (a 3D printer is not cut mid-print)."),
                "web.machine_new"),
    "member": (_l("Add or import your members"),
               _l("One by one here, or a HelloAsso or CSV export with the command "
                  "'fabpass members import'."), "web.member_new"),
    "training": (_l("Record who is trained"),
                 _l("A member's badge opens a machine only after a training on it."),
                 "web.authorization_new"),
    "node": (_l("Provision a node"),
             _l("The configuration file and the broker password for the Raspberry Pi next to "
                "the machine."), "web.nodes"),
}


DONE_TTL_S = 5.0
_DONE_KEY = "fabpass.web.first_run_done"


def guide_steps() -> list[dict[str, Any]]:
    """The guide's rows for the logged-in user (empty: no guide). A step whose page this user
    cannot open (a manager cannot create sites) is shown without a link."""
    p = auth.me()
    key = (writes_count(), auth.read_sites(p))
    steps = first_run.first_run_steps(get_db(), p, _known_done(key))
    if steps:
        _remember_done(key, frozenset(s.code for s in steps if s.done))
    steps = first_run.shown(steps)
    if not steps:
        return []
    texts = _step_texts(p.is_admin)
    return [{"code": step.code, "done": step.done, **texts[step.code]} for step in steps]


def _step_texts(is_admin: bool) -> dict[str, dict[str, Any]]:
    """Each step's title, help and link, translated and built once per language and kind of
    reader (ten translations and five URLs on every dashboard render until the lab is set up)."""
    from flask import current_app, request
    from flask_babel import get_locale

    key = (str(get_locale()), is_admin, request.script_root)
    cache: dict[Any, dict[str, dict[str, Any]]] = current_app.extensions.setdefault(
        "fabpass.web.first_run_texts", {})
    texts = cache.get(key)
    if texts is None:
        texts = {}
        for code, (title, help_text, endpoint) in STEP_TEXTS.items():
            link = endpoint != "web.sites" or is_admin
            # what the template rendered from the lazy strings: translated, not escaped
            texts[code] = {"title": Markup(str(title)), "help": Markup(str(help_text)),
                           "href": url_for(endpoint) if link else None}
        if len(cache) > 64:
            cache.clear()
        cache[key] = texts
    return texts


def _known_done(key: tuple[int, frozenset[int] | None]) -> frozenset[str]:
    """The steps seen done for these sites less than `DONE_TTL_S` ago and since this process's
    last write request (the five EXISTS ran on every dashboard poll: an eighth of its CPU).

    Only "done" is kept: a step done elsewhere (a node's first message, the CLI) shows at the
    next render, never a few seconds late. A step undone elsewhere (the last node revoked by the
    CLI) brings the guide back within the TTL; undone through this app, at once (the key holds
    the count of write requests)."""
    from flask import current_app

    ttl = float(current_app.config.get("FIRST_RUN_DONE_TTL_S", DONE_TTL_S))
    hit = current_app.extensions.get(_DONE_KEY, {}).get(key)
    return hit[1] if hit is not None and time.monotonic() - hit[0] < ttl else frozenset()


def _remember_done(key: tuple[int, frozenset[int] | None], done: frozenset[str]) -> None:
    from flask import current_app

    cache: dict[Any, tuple[float, frozenset[str]]] = current_app.extensions.setdefault(_DONE_KEY, {})
    if len(cache) > 256:  # old write counts and sites nobody reads any more
        cache.clear()
    cache[key] = (time.monotonic(), done)
