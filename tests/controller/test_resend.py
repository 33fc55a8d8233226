"""The resend schedule of unacked events (controller/resend.py): pure, on plain numbers."""

from __future__ import annotations

from controller.resend import RESEND_MAX_S, RESEND_MIN_S, ResendSchedule

PENDING = [("a", b"1"), ("b", b"2")]


def test_connect_resends_all_then_only_what_waited_a_backoff() -> None:
    r = ResendSchedule()
    assert r.due(PENDING, 0.0, force=True) == PENDING
    r.sent("a", 0.0)
    r.sent("b", 0.0)
    r.round_done(0.0, resent=True, force=True)
    assert r.backoff == RESEND_MIN_S and not r.is_due(1.0) and r.is_due(RESEND_MIN_S)
    assert r.due(PENDING, 1.0) == []
    assert r.due(PENDING, RESEND_MIN_S) == PENDING


def test_backoff_doubles_to_the_contract_limit_and_an_ack_resets_it() -> None:
    r = ResendSchedule()
    now = 0.0
    for _ in range(10):
        r.round_done(now, resent=True, force=False)
        now = r.next_at
    assert r.backoff == RESEND_MAX_S == 30.0
    r.sent("a", now)
    r.acked(["a"], now)
    assert r.backoff == RESEND_MIN_S and r.next_at == now + RESEND_MIN_S
    assert r.due([("a", b"1")], now + 100) == [("a", b"1")]  # forgotten: due if still pending


def test_a_quiet_round_does_not_back_off() -> None:
    r = ResendSchedule()
    r.round_done(5.0, resent=False, force=False)
    assert r.backoff == RESEND_MIN_S and r.next_at == 5.0 + RESEND_MIN_S
