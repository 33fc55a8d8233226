"""French for the demo panel; `python server/translations_demo/fr_messages.py` rebuilds fr .po/.mo.

Kept as a table so a re-extraction (see babel.cfg) never loses a translation:
the script merges it into the fresh template and reports any string left untranslated.
"""

from __future__ import annotations

import sys
from pathlib import Path

FR = {
    "Unknown card": "Carte inconnue",
    "not enrolled: shows up under Unknown badges":
        "non enregistrée : apparaît dans Badges inconnus",
    "Choose a machine and an action.": "Choisissez une machine et une action.",
    "Not a badge UID: %(uid)s (8, 14 or 20 hex digits).":
        "Ce n'est pas un UID de badge : %(uid)s (8, 14 ou 20 chiffres hexadécimaux).",
    "The node %(node)s did not take the badge: %(error)s":
        "Le boîtier %(node)s n'a pas pris le badge : %(error)s",
    "Sent to %(node)s: %(what)s": "Envoyé à %(node)s : %(what)s",
    "%(node)s: the machine is now busy.": "%(node)s : la machine travaille maintenant.",
    "%(node)s: the machine is now idle.": "%(node)s : la machine est maintenant au repos.",
    "Virtual badges": "Badges virtuels",
    "Free": "Libre",
    "In use": "Occupée",
    "Finishing (power kept on until idle)":
        "Fin en cours (alimentation maintenue jusqu'au repos)",
    "Card away (grace)": "Carte retirée (délai de grâce)",
    "Trainer sign-off: next badge gets trained":
        "Validation par un formateur : le prochain badge sera formé",
    "Waiting for its list": "En attente de sa liste",
    "Locked": "Verrouillée",
        "Node offline": "Boîtier hors ligne",
    "Machines": "Machines",
    "Relay": "Relais",
    "on": "allumé",
    "off": "éteint",
    "locked": "verrouillée",
    "Session of %(name)s": "Session de %(name)s",
    "Busy signal: the machine is working.": "Signal d'activité : la machine travaille.",
    "Set idle": "Mettre au repos",
    "Busy signal: the machine is idle.": "Signal d'activité : la machine est au repos.",
    "Set busy": "Faire travailler",
    "The node process has stopped.": "Le programme du boîtier s'est arrêté.",
    "Node log": "Journal du boîtier",
    "Latest events received": "Derniers événements reçus",
    "Received": "Reçu",
    "Node": "Boîtier",
    "Event": "Événement",
    "Badge": "Badge",
    "Refusal or end reason": "Motif du refus ou de la fin",
    "No event yet.": "Aucun événement pour l'instant.",
    "This page exists only in the demo. It plays the member holding a card in front of a "
    "machine's reader: the simulated node decides from its own access list, switches its relay "
    "and reports over MQTT, exactly as a real one would.":
        "Cette page n'existe que dans la démo. Elle joue le rôle du membre qui présente sa carte "
        "au lecteur d'une machine : le boîtier simulé décide d'après sa propre liste d'accès, "
        "commande son relais et rend compte par MQTT, exactement comme un vrai.",
    "Present a badge": "Présenter un badge",
    "declared lost": "déclaré perdu",
    "inactive": "inactif",
    "Or any other UID": "Ou tout autre UID",
    "8, 14 or 20 hex digits; separators are ignored.":
        "8, 14 ou 20 chiffres hexadécimaux ; les séparateurs sont ignorés.",
    "Machine": "Machine",
    "Tap": "Badger",
    "Tap twice (trainer sign-off)": "Badger deux fois (validation par un formateur)",
    "Place on the reader": "Poser sur le lecteur",
    "Remove the card": "Retirer la carte",
    "Things to try": "À essayer",
    "Bruno taps the laser cutter: the relay switches on and a session starts; he taps again "
    "to end it.":
        "Bruno badge sur la découpe laser : le relais s'allume et une session commence ; il "
        "badge à nouveau pour la terminer.",
    "David taps the laser cutter: refused. His training expired, so the server left his badge "
    "out of the laser's access list. Emma, who has no training, likewise. The unknown card is "
    "refused too, and appears under Unknown badges, ready to be given to a member.":
        "David badge sur la découpe laser : refusé. Sa formation a expiré, le serveur a donc "
        "retiré son badge de la liste d'accès du laser. De même pour Emma, qui n'a pas de "
        "formation. La carte inconnue est refusée aussi, et apparaît dans Badges inconnus, "
        "prête à être attribuée à un membre.",
    "Chloé's laser training runs out two minutes after the demo's first start: until then she "
    "can start the laser; afterwards the node itself refuses her (reason: expired), without "
    "asking the server.":
        "La formation laser de Chloé prend fin deux minutes après le premier démarrage de la "
        "démo : jusque-là elle peut démarrer le laser ; ensuite le boîtier lui-même la refuse "
        "(raison : expired), sans rien demander au serveur.",
    "Alice is a trainer: tap her twice on the laser cutter, then tap Emma. Emma is now trained "
    "(see her member page) and the next tap opens the machine for her.":
        "Alice est formatrice : badgez-la deux fois sur la découpe laser, puis badgez Emma. "
        "Emma est maintenant formée (voir sa fiche membre) et son prochain badge lui ouvre la "
        "machine.",
    "A 3D printer is never cut mid-print: Bruno taps printer-1, the machine is set busy, Bruno "
    "taps out. The node stays in “finishing” with the power on until the machine has been idle "
    "for %(s)s s.":
        "Une imprimante 3D n'est jamais coupée en pleine impression : Bruno badge sur "
        "printer-1, la machine passe en activité, Bruno badge pour sortir. Le boîtier reste en "
        "« fin en cours », alimentation maintenue, jusqu'à ce que la machine soit au repos "
        "depuis %(s)s s.",
    "Lock a machine from its page, or grant and revoke trainings: each node receives its new "
    "access list within a second.":
        "Verrouillez une machine depuis sa page, ou accordez et retirez des formations : "
        "chaque boîtier reçoit sa nouvelle liste d'accès en moins d'une seconde.",
    "trainer on every machine: tap twice to sign a trainee off":
        "formatrice sur toutes les machines : badger deux fois pour valider un stagiaire",
    "trained on everything": "formé·e sur tout",
    "printers; laser training runs out 2 minutes after the demo's first start":
        "imprimantes ; formation laser qui prend fin 2 minutes après le premier démarrage",
    "laser training expired 3 days ago": "formation laser expirée il y a 3 jours",
    "no training yet (7-byte badge)": "pas encore de formation (badge de 7 octets)",
    "laser; his first badge is declared lost": "laser ; son premier badge est déclaré perdu",
    "printer-2 only, expires in 3 days": "printer-2 seulement, expire dans 3 jours",
    # the machine on a simulated smart plug (issue 16)
    "Smart plug %(device)s: %(state)s, %(watts)s W": "Prise connectée %(device)s : %(state)s, %(watts)s W",
    "Idle": "Au repos",
    "Heating": "Chauffe",
    "Printing": "Impression",
    "Print done": "Impression terminée",
    "idle": "au repos",
    "heating": "en chauffe",
    "printing": "en impression",
    "done": "terminée",
    "%(node)s: the machine is now %(phase)s.": "%(node)s : la machine est maintenant %(phase)s.",
}


def main() -> int:
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po, write_po

    here = Path(__file__).parent
    with open(here / "messages.pot", "rb") as f:
        catalog = read_po(f, locale="fr")
    missing = []
    for message in catalog:
        if not message.id:
            continue
        text = FR.get(str(message.id))
        if text is None:
            missing.append(message.id)
        else:
            message.string = text
    out = here / "fr" / "LC_MESSAGES"
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "messages.po", "wb") as f:
        write_po(f, catalog, width=100)
    with open(out / "messages.mo", "wb") as f:
        write_mo(f, catalog)
    for msgid in missing:
        print(f"untranslated: {msgid!r}", file=sys.stderr)
    conflicts = conflicts_with_web()
    for msgid, web, ours in conflicts:
        print(f"differs from the web catalog: {msgid!r}: {web!r} vs {ours!r}", file=sys.stderr)
    return 1 if missing or conflicts else 0


def conflicts_with_web() -> list[tuple[str, str, str]]:
    """Strings the other catalogs (web UI, reports) also translate, differently: Flask-Babel
    merges the catalogs and the last one wins, so ours would change their pages' French."""
    from babel.messages.pofile import read_po

    found = []
    for web_po in sorted(Path(__file__).parent.parent.glob("translations*/fr/LC_MESSAGES/*.po")):
        if web_po.parent.parent.parent == Path(__file__).parent:
            continue
        with open(web_po, "rb") as f:
            web = read_po(f)
        for msgid, ours in FR.items():
            theirs = web.get(msgid)
            if theirs is not None and theirs.string and theirs.string != ours:
                found.append((msgid, str(theirs.string), ours))
    return found


if __name__ == "__main__":
    sys.exit(main())
