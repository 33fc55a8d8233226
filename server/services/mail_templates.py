"""The mails fabpass sends, in English and French, as plain text plus HTML.

Kept as Python string templates rather than Flask templates because mails are also written by
the background jobs, outside any request. Every value is HTML-escaped in the HTML part, and
`server.services.mail` makes subjects single-line.
"""

from __future__ import annotations

from typing import Any

from markupsafe import escape

LANGS = ("en", "fr")

# kind -> lang -> (subject, text body); both are str.format templates
TEMPLATES: dict[str, dict[str, tuple[str, str]]] = {
    "password_reset": {
        "en": ("fabpass: reset your password",
               "Hello,\n\nSomeone (hopefully you) asked to reset the fabpass password of "
               "{email}.\nChoose a new password here (the link works once, for {minutes} "
               "minutes):\n\n{link}\n\nIf you did not ask for this, ignore this mail.\n"),
        "fr": ("fabpass : réinitialiser votre mot de passe",
               "Bonjour,\n\nQuelqu'un (vous, espérons-le) a demandé à réinitialiser le mot de "
               "passe fabpass de {email}.\nChoisissez un nouveau mot de passe ici (le lien sert "
               "une fois, pendant {minutes} minutes) :\n\n{link}\n\nSi vous n'avez rien demandé, "
               "ignorez ce message.\n"),
    },
    "invitation": {
        "en": ("fabpass: you are invited",
               "Hello,\n\nA fabpass login was created for {email}.\nChoose your password here "
               "(the link works once, for {minutes} minutes):\n\n{link}\n"),
        "fr": ("fabpass : vous êtes invité·e",
               "Bonjour,\n\nUn accès fabpass a été créé pour {email}.\nChoisissez votre mot de "
               "passe ici (le lien sert une fois, pendant {minutes} minutes) :\n\n{link}\n"),
    },
    "machine_free": {
        "en": ("fabpass: {machine} is free",
               "Hello {name},\n\n{machine} is free now: the session that was running has "
               "ended.\nYou asked to be told once; this request is now done.\n\n{link}\n"),
        "fr": ("fabpass : {machine} est libre",
               "Bonjour {name},\n\n{machine} est libre : la session en cours est terminée.\n"
               "Vous avez demandé à être prévenu·e une fois ; cette demande est close.\n\n"
               "{link}\n"),
    },
    "training_expiring": {
        "en": ("fabpass: your training on {machine} expires on {date}",
               "Hello {name},\n\nYour training on {machine} expires on {date}. Ask a trainer "
               "to renew it before then.\n\n{link}\n"),
        "fr": ("fabpass : votre formation {machine} expire le {date}",
               "Bonjour {name},\n\nVotre formation sur {machine} expire le {date}. Demandez à "
               "un formateur de la renouveler d'ici là.\n\n{link}\n"),
    },
    "weekly_summary": {
        "en": ("fabpass weekly summary: {title}", "{title}\n\nHours per machine:\n{body}\n\n{link}\n"),
        "fr": ("fabpass, résumé de la semaine : {title}",
               "{title}\n\nHeures par machine :\n{body}\n\n{link}\n"),
    },
    "alert": {
        "en": ("fabpass alert: {title}", "{title}\n\n{body}\n\n{link}\n"),
        "fr": ("Alerte fabpass : {title}", "{title}\n\n{body}\n\n{link}\n"),
    },
    "alert_resolved": {
        "en": ("fabpass: resolved: {title}", "Resolved: {title}\n\n{body}\n\n{link}\n"),
        "fr": ("fabpass : résolu : {title}", "Résolu : {title}\n\n{body}\n\n{link}\n"),
    },
}


def render(kind: str, lang: str | None, **values: Any) -> tuple[str, str, str]:
    """(subject, plain text, HTML) of one mail; an unknown language falls back to English."""
    lang = lang if lang in LANGS else "en"
    subject_t, text_t = TEMPLATES[kind][lang]
    subject = subject_t.format(**values)
    text = text_t.format(**values)
    safe = {k: escape(v) for k, v in values.items()}
    html_body = str(escape(text_t)).format(**safe)
    link = values.get("link")
    if link:  # the link clickable in HTML (it was escaped like every value)
        html_body = html_body.replace(str(escape(link)),
                                      f'<a href="{escape(link)}">{escape(link)}</a>')
    html = (f'<!doctype html><html lang="{lang}"><body>'
            + "".join(f"<p>{p.replace(chr(10), '<br>')}</p>" for p in html_body.split("\n\n"))
            + "</body></html>")
    return subject, text, html
