"""French first (issue 15 part B, issue 13 item 7): no code on any page, complete catalogs,
spreadsheet-safe CSV in the user's locale, the change log as sentences."""

from __future__ import annotations

import csv
import html as htmllib
import importlib.util
import io
import re
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from babel.messages.pofile import read_po

_spec = importlib.util.spec_from_file_location("fabpass_french_seed",
                                               Path(__file__).with_name("french_seed.py"))
assert _spec is not None and _spec.loader is not None
fseed = importlib.util.module_from_spec(_spec)
sys.modules["fabpass_french_seed"] = fseed
_spec.loader.exec_module(fseed)

_today = date.today()
PERIOD = f"from={_today - timedelta(days=40)}&to={_today + timedelta(days=1)}"
ROOT = Path(__file__).resolve().parents[2]
CATALOGS = sorted((ROOT / "server").glob("translations*/fr/LC_MESSAGES/messages.po"))

# a code: snake_case (`badge_out`), or dotted (`authorization.revoke`, not "1.5" nor "e.g.")
RAW_CODE = re.compile(r"\b[a-z][a-z0-9]*_[a-z0-9_]+\b|\b[a-z]{2,}\.[a-z]{2,}[a-z_.]*\b")
ALLOWED = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+|https?://\S+|\w+\.(?:toml|csv|json|db)\b")


def visible_text(page: str) -> str:
    """The text a person reads: no script/style/code/pre blocks, no tags, entities decoded."""
    page = re.sub(r"(?is)<(script|style|code|pre|template|kbd|samp|textarea)\b.*?</\1>", " ", page)
    page = re.sub(r"(?s)<[^>]+>", " ", page)
    return htmllib.unescape(page)


def raw_codes(text: str) -> list[str]:
    return RAW_CODE.findall(ALLOWED.sub(" ", text))


def test_the_detector_finds_codes() -> None:
    assert raw_codes(visible_text("<td>badge_out</td><td>authorization.revoke</td>")) == [
        "badge_out", "authorization.revoke"]
    assert raw_codes(visible_text("<td>55,1 h, 1.5, admin@example.org</td><code>x_y</code>")) == []


def test_every_french_catalog_message_is_translated() -> None:
    assert len(CATALOGS) >= 3
    for path in CATALOGS:
        cat = read_po(path.open("rb"), locale="fr")
        missing = [m.id for m in cat if m.id and (not m.string or m.fuzzy
                                                   or (isinstance(m.string, tuple)
                                                       and not all(m.string)))]
        assert not missing, f"{path.relative_to(ROOT)}: no French for {missing[:10]}"


def test_every_label_has_french(app: Any) -> None:
    from flask_babel import force_locale, get_translations

    from server.web import labels

    with app.test_request_context("/"), force_locale("fr"):
        catalog = get_translations()._catalog
        for family, table in labels.FAMILIES.items():
            for code, text in table.items():
                msgid = text._args[0]
                assert msgid in catalog and catalog[msgid], (family, code, msgid)


@pytest.fixture()
def french(app: Any, seed: Any, actions: Any) -> dict[str, Any]:
    from server.app import get_db

    with app.app_context():
        extra = fseed.enrich(get_db(), seed)
    actions.post("/lang", {"lang": "fr"}, page="/login")
    actions.login("admin@example.org")
    return extra


def page_paths(app: Any, seed: Any, extra: dict[str, Any]) -> list[str]:
    """Every GET page of the app (url_map), ids filled from the seed."""
    ids = {"member_id": seed.alice, "machine_id": seed.laser, "group_id": seed.group,
           "user_id": seed.manager_user, "auth_id": seed.alice_laser}
    # billing.my_statement: the admin has no member record (404); the same page is visited
    # as billing.member_statement
    skip = ("static", "web.dashboard_state", "web.node_config", "web.logout", "web.set_language",
            "billing.my_statement")
    out = []
    for rule in app.url_map.iter_rules():
        if "GET" not in (rule.methods or ()) or rule.endpoint.startswith(("api.", "demo.")) \
                or rule.endpoint in skip or rule.rule.endswith((".json", ".js", ".toml")):
            continue
        if not set(rule.arguments) <= set(ids):
            continue
        out.append(rule.build({k: ids[k] for k in rule.arguments}, append_unknown=False)[1])
    out += [f"/members/{extra['zoe']}", f"/members/{extra['erased']}", f"/members/{extra['formula']}",
            f"/reports/denied?group_by=reason&{PERIOD}",
            f"/reports/?group_by=member&{PERIOD}",
            f"/reports/?group_by=kind&{PERIOD}",
            f"/sessions?machine_id={seed.laser}&since=2020-01-01T00:00:00Z&until=2060-01-01T00:00:00Z",
            "/audit", f"/machines/{seed.printer}"]
    return sorted(set(out))


def test_no_raw_code_on_any_french_page(app: Any, seed: Any, french: dict[str, Any],
                                        actions: Any) -> None:
    c = actions.client
    found: dict[str, list[str]] = {}
    paths = page_paths(app, seed, french)
    assert len(paths) >= 20, paths
    for path in paths:
        r = c.get(path)
        assert r.status_code == 200, path
        body = r.get_data(as_text=True)
        assert '<html lang="fr">' in body, path
        codes = raw_codes(visible_text(body))
        if codes:
            found[path] = sorted(set(codes))
    assert not found, found


def test_change_log_reads_as_french_sentences(french: dict[str, Any], actions: Any) -> None:
    c = actions.client
    body = c.get("/audit").get_data(as_text=True)
    text = re.sub(r"[ \t\r\n]+", " ", visible_text(body))
    assert "a retiré la formation Laser cutter à Zoé Lambert\u00a0: usage dangereux" in text
    assert "a verrouillé 3D printer\u00a0: Buse bouchée" in text
    assert "user:1" not in text and "\\u00e9" not in text and "{" not in text
    assert "(effacé)" in text or "données personnelles" in text
    only = c.get("/audit?action=authorization.revoke").get_data(as_text=True)
    assert "a retiré la formation" in only and "a verrouillé" not in only
    assert '<option value="authorization.revoke" selected>formation retirée</option>' in only
    by_admin = c.get("/audit?by=1").get_data(as_text=True)
    assert "a retiré la formation" in by_admin and "a ajouté le membre" not in by_admin


def test_machine_page_names_reason_and_current_trainings_only(seed: Any, french: dict[str, Any],
                                                              actions: Any) -> None:
    c = actions.client
    printer = visible_text(c.get(f"/machines/{seed.printer}").get_data(as_text=True))
    assert "Verrouillée" in printer and "Buse bouchée" in printer
    laser = c.get(f"/machines/{seed.laser}").get_data(as_text=True)
    trained = laser.split("<h2>", 3)
    section = next(s for s in trained if s.startswith("Membres formés"))
    assert "Alice Martin" in section and "HYPERLINK" not in section  # expired: not current
    dash = visible_text(c.get("/").get_data(as_text=True))
    assert "Buse bouchée" in dash and "Other lab" in dash


def french_spreadsheet(data: bytes) -> list[list[str]]:
    """Read as French Excel/LibreOffice does: UTF-8 BOM, sniffed separator."""
    assert data.startswith(b"\xef\xbb\xbf"), "no UTF-8 BOM"
    text = data.decode("utf-8-sig")
    dialect = csv.Sniffer().sniff(text.split("\r\n", 1)[0], delimiters=";,")
    assert dialect.delimiter == ";"
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=dialect.delimiter))


def fr_number(cell: str) -> float:
    assert re.fullmatch(r"-?\d+(,\d+)?", cell), cell
    return float(cell.replace(",", "."))


def test_french_csv_opens_in_a_french_spreadsheet(french: dict[str, Any], actions: Any) -> None:
    c = actions.client
    r = c.get(f"/reports/?group_by=member&{PERIOD}&format=csv")
    rows = french_spreadsheet(r.get_data())
    head = rows[0]
    assert head[:2] == ["Membre", "Sessions"] and "Heures de session" in head
    name_col = head.index("Nom")
    by_name = {row[name_col]: row for row in rows[1:]}
    zoe = by_name["Zoé Lambert"]
    hours = fr_number(zoe[head.index("Heures de session")])
    assert 0.4 < hours < 0.6  # five sessions of 330.5 s
    assert "'" + fseed.FORMULA_NAME in by_name  # a formula is text, never run
    raw = c.get(f"/reports/?group_by=member&{PERIOD}&format=csv&raw=1")
    raw_rows = list(csv.reader(io.StringIO(raw.get_data(as_text=True))))
    assert not raw.get_data().startswith(b"\xef\xbb\xbf") and raw_rows[0][0] == "member"
    assert any("." in cell for row in raw_rows[1:] for cell in row[2:4])
    assert any(row[-1] == "'" + fseed.FORMULA_NAME for row in raw_rows[1:])


def test_funder_and_api_csv_escape_formulas(app: Any, seed: Any, french: dict[str, Any],
                                            actions: Any) -> None:
    c = actions.client
    body = c.get(f"/reports/funder?{PERIOD}&format=csv").get_data(as_text=True)
    assert "'" + fseed.FORMULA_TAG in body and ";" + fseed.FORMULA_TAG not in body
    api = app.test_client().get("/api/v1/reports/usage?group_by=member_tag&format=csv&since=2020-01-01T00:00:00Z&until=2060-01-01T00:00:00Z",
                                headers={"Authorization": f"Bearer {seed.token}"})
    assert api.status_code == 200, api.get_data(as_text=True)
    text = api.get_data(as_text=True)
    assert "'" + fseed.FORMULA_TAG in text and "\n" + fseed.FORMULA_TAG not in text
    assert not api.get_data().startswith(b"\xef\xbb\xbf") and text.startswith("member_tag,")


def test_the_one_writer_escapes_text_never_numbers() -> None:
    from server.reports import FRENCH, rows_to_csv

    rows = [{"a": v, "n": -1.5} for v in ("=1+1", "+33 6", "-x", "@SUM(A1)", "\tx", "\rx", "ok")]
    out = rows_to_csv(rows, columns=["a", "n"])
    lines = out.split("\r\n")[1:-1]
    assert [line.split(",")[0].strip('"') for line in lines[:6]] == [
        "'=1+1", "'+33 6", "'-x", "'@SUM(A1)", "'\tx", "'\rx"]
    assert all(line.endswith(",-1.5") for line in lines)
    fr = rows_to_csv([{"a": "é", "n": 55.1, "i": -3}], columns=["a", "n", "i"], fmt=FRENCH)
    assert fr == "\ufeffa;n;i\r\né;55,1;-3\r\n"


def test_a_french_spreadsheet_import_is_read_as_such(app: Any) -> None:
    from server.app import get_db
    from server.models import Member
    from server.services.members_import import import_members

    data = ("\ufeffNom;Prénom;Courriel;Formule;Date de fin de validité\r\n"
            "Lefèvre;Zoé;zoe.l@example.org;Adhérent réduit;31/12/2026\r\n").encode()
    with app.app_context():
        db = get_db()
        result = import_members(db, data, mapping="helloasso", site="lab", actor="test")
        db.commit()
        m = db.query(Member).filter_by(email="zoe.l@example.org").one()
        assert m.name == "Zoé Lefèvre" and "Adhérent réduit" in (m.tags or []), result
        assert str(m.active_until) == "2026-12-31"
