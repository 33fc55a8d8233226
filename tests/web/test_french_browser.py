"""Issue 15 "Done when", in a real browser (Debian's Chromium through Playwright): every page in
French shows no raw code and no untranslated catalog message in what Chromium renders, and axe-core
finds no serious or critical accessibility violation on the main pages at desktop and phone width.

The page list is test_french.py's (the app's url_map with ids from the seed), so a new page is
visited here as soon as it exists. axe-core comes from npm (tools/test.sh installs it into the
git-ignored .cache/npm); the test injects its axe.min.js with page.add_script_tag.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from babel.messages.pofile import read_po

pytestmark = [pytest.mark.browser]

_spec = importlib.util.spec_from_file_location("fabpass_french_pages",
                                               Path(__file__).with_name("test_french.py"))
assert _spec is not None and _spec.loader is not None
french_pages = importlib.util.module_from_spec(_spec)
sys.modules["fabpass_french_pages"] = french_pages
_spec.loader.exec_module(french_pages)
sys.path.insert(0, str(Path(__file__).parent))  # the browser kit (importlib mode)
import browser_kit as kit  # noqa: E402

fseed = sys.modules["fabpass_french_seed"]

ROOT = Path(__file__).resolve().parents[2]
AXE = Path(os.environ.get("FABPASS_AXE", ROOT / ".cache/npm/node_modules/axe-core/axe.min.js"))
ARGS = [a for a in kit.ARGS if a != "--disable-quic"]
WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}

# The text a person reads, as Chromium renders it: text nodes and button labels outside
# code-like blocks and outside anything hidden.
VISIBLE_TEXT_JS = """() => {
  const skip = new Set(["SCRIPT", "STYLE", "CODE", "PRE", "TEMPLATE", "KBD", "SAMP", "TEXTAREA"]);
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT, {
    acceptNode(node) {
      for (let el = node.parentElement; el; el = el.parentElement) {
        if (skip.has(el.tagName)) return NodeFilter.FILTER_REJECT;
      }
      const el = node.parentElement;
      if (el && el.tagName !== "OPTION" && el.getClientRects().length === 0) {
        return NodeFilter.FILTER_REJECT;
      }
      return NodeFilter.FILTER_ACCEPT;
    }});
  while (walker.nextNode()) out.push(walker.currentNode.nodeValue);
  for (const b of document.querySelectorAll("input[type=submit], input[type=button]")) {
    out.push(b.value);
  }
  return out.join(" ");
}"""


def english_sentences() -> set[str]:
    """Catalog messages whose French differs and that are long enough to be unambiguous
    (several words): one of them on a French page is an untranslated message."""
    out: set[str] = set()
    for path in french_pages.CATALOGS:
        for msg in read_po(path.open("rb"), locale="fr"):
            if not isinstance(msg.id, str) or not msg.id or "%(" in msg.id or "{" in msg.id:
                continue
            if msg.string and msg.string != msg.id and msg.id.count(" ") >= 2 and len(msg.id) >= 12:
                out.add(msg.id)
    return out


def untranslated(text: str, sentences: set[str]) -> list[str]:
    flat = re.sub(r"\s+", " ", text)
    return sorted(s for s in sentences if s in flat)


def test_the_detectors_find_english_and_codes() -> None:
    sentences = english_sentences()
    assert "Skip to content" in sentences
    assert untranslated("Aller au contenu Skip to content", sentences) == ["Skip to content"]
    assert untranslated("Aller au contenu", sentences) == []


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from server.app import get_db

    seedmod = sys.modules["fabpass_web_seed"]
    tmp = tmp_path_factory.mktemp("frenchpages")
    app, seed = seedmod.make_app(f"sqlite:///{tmp}/fr.db")
    with app.app_context():
        extra = fseed.enrich(get_db(), seed)
    paths = french_pages.page_paths(app, seed, extra)
    with kit.waitress_site(app) as url:
        yield {"url": url, "paths": paths, "seed": seed, "extra": extra}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from kit.launch_chromium(ARGS)


def french_page(browser: Any, url: str, width: str = "desktop", login: bool = True) -> Any:
    """A French session: the language button on the login page, then the admin's login."""
    w, h = WIDTHS[width]
    ctx = browser.new_context(locale="fr-FR", viewport={"width": w, "height": h})
    ctx.set_default_timeout(15_000)
    page = ctx.new_page()
    page.goto(url + "/login")
    if page.locator("html").get_attribute("lang") != "fr":
        page.locator("form.lang button[value=fr]").click()
        page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == "fr"
    if login:
        page.locator("input[name=email]").fill("admin@example.org")
        page.locator("input[name=password]").fill("correct horse battery")
        page.locator("form:has(input[name=password]) [type=submit]").click()
        page.wait_for_url(url + "/")
    return page


def test_every_page_in_french_in_chromium(site: dict[str, Any], browser: Any) -> None:
    page = french_page(browser, site["url"])
    sentences = english_sentences()
    codes: dict[str, list[str]] = {}
    english: dict[str, list[str]] = {}
    paths = site["paths"]
    assert len(paths) >= 20, paths
    for path in paths:
        resp = page.goto(site["url"] + path)
        assert resp is not None and resp.status == 200, path
        assert page.locator("html").get_attribute("lang") == "fr", path
        text = page.evaluate(VISIBLE_TEXT_JS)
        if found := french_pages.raw_codes(text):
            codes[path] = sorted(set(found))
        if found := untranslated(text, sentences):
            english[path] = found
    page.context.close()
    assert not codes, codes
    assert not english, english


def main_pages(site: dict[str, Any]) -> list[str]:
    seed = site["seed"]
    return ["/", "/members", f"/members/{seed.alice}", "/machines", f"/machines/{seed.laser}",
            "/sessions", "/audit", "/reports/", "/bookings"]


def serious_violations(page: Any) -> list[str]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    out = []
    for v in result["violations"]:
        if v["impact"] in ("serious", "critical"):
            targets = [" ".join(n["target"]) for n in v["nodes"][:3]]
            out.append(f"{v['id']} ({v['impact']}, {len(v['nodes'])}): {targets}")
    return out


@pytest.mark.parametrize("width", sorted(WIDTHS))
def test_axe_finds_no_serious_violation(site: dict[str, Any], browser: Any, width: str) -> None:
    if not AXE.exists():
        pytest.fail(f"axe-core is needed at {AXE} (tools/test.sh installs it with npm)")
    found: dict[str, list[str]] = {}
    login = french_page(browser, site["url"], width, login=False)
    if v := serious_violations(login):
        found["/login"] = v
    login.context.close()
    page = french_page(browser, site["url"], width)
    for path in main_pages(site):
        resp = page.goto(site["url"] + path)
        assert resp is not None and resp.status == 200, path
        if v := serious_violations(page):
            found[path] = v
    page.context.close()
    assert not found, found
