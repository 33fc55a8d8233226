"""Password forgotten and reset pages (no login needed; contract section 6).

`/password/forgot` answers the same page whether the address exists; `/password/reset/<token>`
shows one neutral page for a token that is unknown, used, expired or for a disabled login.
Rules are in `server.services.passwords`; requests are limited per IP.
"""

from __future__ import annotations

from typing import Any, cast

from flask import Flask, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, EqualTo, Length

from server.app import get_db
from server.ratelimit import WindowLimiter
from server.services import passwords
from server.web.blueprint import bp


class ForgotForm(FlaskForm):
    email = EmailField(_l("Email"), validators=[DataRequired(), Length(max=254)])


class ResetForm(FlaskForm):
    password = PasswordField(_l("New password"), validators=[
        DataRequired(), Length(min=passwords.MIN_PASSWORD, max=1000)])
    confirm = PasswordField(_l("Repeat the new password"), validators=[
        DataRequired(), EqualTo("password", message=_l("The two passwords differ."))])


def _limiter(app: Flask) -> WindowLimiter:
    key = "fabpass.password_limiter"
    if key not in app.extensions:
        app.extensions[key] = WindowLimiter(int(app.config.get("PASSWORD_RATE_LIMIT", 10)),
                                               float(app.config.get("PASSWORD_RATE_WINDOW_S", 900)))
    return cast(WindowLimiter, app.extensions[key])


def _count(kind: str) -> None:
    """One request of `kind` from this IP; 429 once over the limit."""
    limiter = _limiter(current_app)
    ip = request.remote_addr or "?"
    if limiter.blocked(ip, kind):
        abort(429)
    limiter.failed(ip, kind)


@bp.route("/password/forgot", methods=["GET", "POST"])
def password_forgot() -> Any:
    form = ForgotForm()
    if request.method == "POST":
        _count("forgot")
        if form.validate_on_submit():
            passwords.request_reset(get_db(), form.email.data or "",
                                    public_url=current_app.config.get("PUBLIC_URL", ""),
                                    lang=str(get_locale() or "en"),
                                    actor=f"web:{request.remote_addr or '?'}")
            return render_template("password_forgot.html", form=form, sent=True)
    return render_template("password_forgot.html", form=form, sent=False)


@bp.route("/password/reset/<token>", methods=["GET", "POST"])
def password_reset(token: str) -> Any:
    db = get_db()
    form = ResetForm()
    if request.method == "POST":
        _count("reset")
    if passwords.valid_token(db, token) is None:
        return render_template("password_reset.html", form=None), 200
    if form.validate_on_submit():
        if passwords.complete_reset(db, token, form.password.data or "",
                                    actor=f"web:{request.remote_addr or '?'}"):
            flash(_("Your password is changed. You can log in."), "success")
            return redirect(url_for("web.login"))
        return render_template("password_reset.html", form=None), 200
    return render_template("password_reset.html", form=form)
