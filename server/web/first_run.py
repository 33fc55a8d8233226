"""The dashboard's first-run guide (issue 15): the steps of server.services.first_run, each with
what to do and a link to the page that does it. Shown until every step is done."""

from __future__ import annotations

from typing import Any

from flask import url_for
from flask_babel import lazy_gettext as _l

from server import auth
from server.app import get_db
from server.services import first_run

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


def guide_steps() -> list[dict[str, Any]]:
    """The guide's rows for the logged-in user (empty: no guide). A step whose page this user
    cannot open (a manager cannot create sites) is shown without a link."""
    p = auth.me()
    steps = first_run.guide(get_db(), p)
    out = []
    for step in steps:
        title, help_text, endpoint = STEP_TEXTS[step.code]
        link = endpoint != "web.sites" or p.is_admin
        out.append({"code": step.code, "done": step.done, "title": title, "help": help_text,
                    "href": url_for(endpoint) if link else None})
    return out
