"""The change log as sentences in the page's language.

"Marie a retiré la formation Laser à Zoé Lambert : usage dangereux", not
`user:1 authorization.revoke {"reason": "usage dang\\u00e9reux"}`. The names come from
`server.services.audit_names`; this module only words them. One sentence per kind of change;
a kind without its own sentence still reads as one ("Marie : member changed"), so a new action
never shows its code.
"""

from __future__ import annotations

from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from server.services.audit_names import AuditFacts
from server.web.labels import label

# member and machine fields named in "changed: …" summaries
FIELDS = {
    "name": _l("name"), "email": _l("e-mail"), "member_no": _l("member number"), "tags": _l("tags"),
    "active_until": _l("membership end"), "site": _l("site"), "kind": _l("kind"),
    "node": _l("node"), "policy": _l("session rules"), "active": _l("active"),
    "requires_authorization": _l("training required"), "slug": _l("short code"),
    "role": _l("role"), "sites": _l("sites"), "member_id": _l("member"), "password": _l("password"),
    "timezone": _l("time zone"), "machine_ids": _l("machines"),
}

SENTENCES: dict[str, Any] = {
    "authorization.grant": _l("%(actor)s granted the %(what)s training to %(member)s"),
    "authorization.revoke": _l("%(actor)s revoked the %(what)s training of %(member)s"),
    "badge.enrol": _l("%(actor)s gave a badge to %(member)s"),
    "badge.status": _l("%(actor)s set a badge of %(member)s to “%(status)s”"),
    "member.create": _l("%(actor)s added the member %(member)s"),
    "member.update": _l("%(actor)s changed the member %(member)s"),
    "member.deactivate": _l("%(actor)s deactivated the member %(member)s"),
    "member.erase": _l("%(actor)s erased a member's personal data"),
    "machine.create": _l("%(actor)s added the machine %(machine)s"),
    "machine.update": _l("%(actor)s changed the machine %(machine)s"),
    "machine.lock": _l("%(actor)s locked %(machine)s"),
    "machine.unlock": _l("%(actor)s unlocked %(machine)s"),
    "machine.command": _l("%(actor)s sent “%(command)s” to %(machine)s"),
    "group.create": _l("%(actor)s created the machine group %(group)s"),
    "group.update": _l("%(actor)s changed the machine group %(group)s"),
    "group.machines": _l("%(actor)s changed the machines of the group %(group)s"),
    "site.create": _l("%(actor)s created the site %(site)s"),
    "node.create": _l("%(actor)s registered the node of %(node)s"),
    "node.bind": _l("%(actor)s attached a node to %(machine)s"),
    "node.credentials": _l("%(actor)s made new credentials for the node of %(node)s"),
    "node.revoke": _l("%(actor)s revoked the credentials of the node of %(node)s"),
    "token.create": _l("%(actor)s created the API token “%(token)s”"),
    "user.create": _l("%(actor)s created the web login %(login)s"),
    "user.update": _l("%(actor)s changed the web login %(login)s"),
    "training.refused": _l("%(member)s's sign-off of %(other)s was refused"),
    "privacy.pseudonymise": _l("%(actor)s pseudonymised old records"),
}

COMMANDS = {"stop": _l("stop"), "lock": _l("lock"), "unlock": _l("unlock"),
            "identify": _l("identify"), "resync": _l("send the list again")}


def actor_name(f: AuditFacts) -> str:
    if f.actor_kind == "token":
        return _("the API token “%(name)s”", name=f.actor_name) if f.actor_name else _("an API token")
    if f.actor_kind == "node":
        return _("the node of %(machine)s", machine=f.actor_name)
    if f.actor_kind == "cli":
        return _("A command on the server")
    if f.actor_kind == "system":
        return _("fabpass")
    return f.actor_name or _("someone")


def sentence(f: AuditFacts) -> str:
    """One change, as a sentence in the page's language, with its reason or changed fields."""
    assert f.row is not None
    d = f.row.details or {}
    erased = _("(erased)")
    values = {
        "actor": actor_name(f),
        "member": erased if f.member_erased else (f.member or _("a member")),
        "other": f.other or _("a member"),
        "machine": f.machine or _("a machine"),
        "what": f.machine or f.group or _("a machine"),
        "group": f.group or _("a group"),
        "site": f.site or str(d.get("name") or ""),
        "node": f.node or _("a machine"),
        "login": str(f.extra.get("login") or ""),
        "token": str(f.extra.get("token") or ""),
        "status": label("badge_status", d.get("to")),
        "command": str(COMMANDS.get(str(d.get("cmd")), d.get("cmd") or "")),
    }
    template = SENTENCES.get(f.row.action)
    if template is None:
        text = _("%(actor)s: %(what)s", actor=values["actor"], what=label("action", f.row.action))
    else:
        text = str(template) % values
    reason = d.get("reason")
    if reason and f.row.action in ("authorization.revoke", "machine.lock", "training.refused"):
        return _("%(text)s: %(reason)s", text=text, reason=reason)
    if f.row.action.endswith(".update") and d:
        changed = ", ".join(str(FIELDS.get(k, k)) for k in d if k in FIELDS)
        if changed:
            return _("%(text)s (%(changed)s)", text=text, changed=changed)
    return text


__all__ = ["FIELDS", "SENTENCES", "actor_name", "sentence"]
