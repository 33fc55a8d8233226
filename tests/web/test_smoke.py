from typing import Any


def test_login_and_pages(actions: Any, seed: Any) -> None:
    r = actions.login("admin@example.org")
    assert r.status_code == 302, r.get_data(as_text=True)
    c = actions.client
    for path in ["/", "/members", f"/members/{seed.alice}", "/members/new", "/badges/unknown",
                 "/machines", f"/machines/{seed.laser}", "/groups/new", "/authorizations",
                 "/authorizations/new", "/sessions", "/audit", "/nodes", "/dashboard/state.json"]:
        r = c.get(path)
        assert r.status_code == 200, (path, r.get_data(as_text=True)[-3000:])
