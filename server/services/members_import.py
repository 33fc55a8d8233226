"""CSV import of members (`fabpass members import`): all or nothing, errors with line numbers.

Columns (header names, any order, case and accents ignored):
`name` (or `first_name` + `last_name`), `email`, `member_no`, `badge_uid`,
`tags` (separated by `;`), `active_until` (YYYY-MM-DD or DD/MM/YYYY), `site`.
A HelloAsso-style export (French headers such as "Nom", "Prénom", "Email",
"Numéro d'adhérent", `;` delimiter, UTF-8 with BOM) works with the built-in
`helloasso` mapping; another layout can be described by a TOML file:

    delimiter = ";"             # optional, sniffed otherwise
    [columns]
    "Nom de famille" = "last_name"
    "Carte" = "badge_uid"

A row whose e-mail or member number matches an existing member updates that
member (name, tags, active_until, site) instead of creating a new one.
"""

from __future__ import annotations

import csv
import io
import logging
import tomllib
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from server.errors import Invalid, ServerError
from server.models import Member
from server.services.members import create_member, enrol_badge, update_member

log = logging.getLogger(__name__)

FIELDS = ("name", "first_name", "last_name", "email", "member_no", "badge_uid", "tags",
          "active_until", "site")

# Normalised header → field. The plain names always work.
DEFAULT_COLUMNS: dict[str, str] = {f: f for f in FIELDS} | {
    "uid": "badge_uid", "badge": "badge_uid", "e-mail": "email", "mail": "email",
    "member number": "member_no", "member_number": "member_no", "expires": "active_until",
}
HELLOASSO_COLUMNS: dict[str, str] = DEFAULT_COLUMNS | {
    "nom": "last_name", "prenom": "first_name", "nom de famille": "last_name",
    "email": "email", "adresse email": "email", "adresse e-mail": "email", "courriel": "email",
    "email adherent": "email",
    "numero d'adherent": "member_no", "numero adherent": "member_no", "n° adherent": "member_no",
    "n° d'adherent": "member_no", "numero de membre": "member_no",
    "badge": "badge_uid", "numero de badge": "badge_uid", "carte": "badge_uid",
    "formule": "tags", "tarif": "tags", "categorie": "tags", "etiquettes": "tags",
    "date de fin de validite": "active_until", "fin de validite": "active_until",
    "date de fin d'adhesion": "active_until", "valable jusqu'au": "active_until",
}
MAPPINGS = {"default": DEFAULT_COLUMNS, "helloasso": HELLOASSO_COLUMNS}


class ImportError_(ServerError):  # noqa: N801 - avoid shadowing the builtin ImportError
    """The file cannot be read at all (encoding, no header, bad mapping file)."""


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    badges: int = 0
    rows: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def _norm(header: str) -> str:
    """Case, accents, `_` and spacing do not matter in headers."""
    text = unicodedata.normalize("NFKD", header.strip().lower().replace("’", "'"))
    text = "".join(c for c in text if not unicodedata.combining(c)).replace("_", " ")
    return " ".join(text.split())


def load_mapping(spec: str | None) -> tuple[dict[str, str], str | None]:
    """A built-in mapping name or a TOML file; returns (normalised columns, delimiter)."""
    if spec is None or spec in MAPPINGS:
        return {_norm(k): v for k, v in MAPPINGS[spec or "default"].items()}, None
    path = Path(spec)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ImportError_(f"mapping {spec}: {exc}") from None
    columns = doc.get("columns", {})
    if not isinstance(columns, dict):
        raise ImportError_(f"mapping {spec}: [columns] must be a table")
    bad = {k: v for k, v in columns.items() if v not in FIELDS}
    if bad:
        raise ImportError_(f"mapping {spec}: unknown target fields {sorted(set(bad.values()))}; "
                           f"expected one of {', '.join(FIELDS)}")
    merged = {_norm(k): v for k, v in DEFAULT_COLUMNS.items()}
    merged.update({_norm(k): v for k, v in columns.items()})
    delimiter = doc.get("delimiter")
    return merged, delimiter if isinstance(delimiter, str) and len(delimiter) == 1 else None


def _parse_date(text: str) -> date:
    text = text.strip()
    for fmt in ("%Y-%m-%d", "%d/%m/%Y", "%d/%m/%Y %H:%M", "%d/%m/%Y %H:%M:%S", "%Y-%m-%dT%H:%M:%S"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise ValueError(f"active_until {text!r} is not a date (YYYY-MM-DD or DD/MM/YYYY)")


def read_rows(data: bytes, mapping: str | None) -> tuple[list[tuple[int, dict[str, str]]], list[str]]:
    """Decode and map the CSV; returns (line number, fields) per data row and header problems."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = data.decode("cp1252")
        except UnicodeDecodeError as exc:
            raise ImportError_(f"the file is neither UTF-8 nor Windows-1252: {exc}") from None
    columns, delimiter = load_mapping(mapping)
    first_line = text.split("\n", 1)[0]
    if delimiter is None:
        delimiter = max((";", ",", "\t"), key=first_line.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise ImportError_("the file is empty") from None
    targets = [columns.get(_norm(h)) for h in header]
    problems: list[str] = []
    found = {t for t in targets if t}
    if "name" not in found and not {"first_name", "last_name"} & found:
        problems.append("line 1: no name column (name, or first_name + last_name; "
                        f"headers seen: {', '.join(header)})")
    rows: list[tuple[int, dict[str, str]]] = []
    for values in reader:
        line = reader.line_num
        if not any(v.strip() for v in values):
            continue
        fields: dict[str, str] = {}
        for target, value in zip(targets, values, strict=False):
            if target and value.strip() and target not in fields:
                fields[target] = value.strip()
        rows.append((line, fields))
    return rows, problems


def import_members(db: Session, data: bytes, *, mapping: str | None = None,
                   site: str | None = None, dry_run: bool = False,
                   actor: str = "cli") -> ImportResult:
    """Import every row or none: on any error (or a dry run) everything is rolled back."""
    result = ImportResult()
    rows, problems = read_rows(data, mapping)
    result.errors.extend(problems)
    result.rows = len(rows)
    if problems:
        return result
    outer = db.begin_nested()
    for line, fields in rows:
        try:
            with db.begin_nested():
                _import_row(db, fields, site, actor, result)
        except (ServerError, ValueError) as exc:
            detail = ""
            if isinstance(exc, Invalid) and exc.fields:
                detail = " (" + "; ".join(f"{k}: {v}" for k, v in exc.fields.items()) + ")"
            message = exc.message if isinstance(exc, ServerError) else str(exc)
            result.errors.append(f"line {line}: {message}{detail}")
    if result.errors or dry_run:
        outer.rollback()
    else:
        outer.commit()
    return result


def _import_row(db: Session, fields: dict[str, str], default_site: str | None, actor: str,
                result: ImportResult) -> None:
    name = fields.get("name") or " ".join(
        p for p in (fields.get("first_name"), fields.get("last_name")) if p)
    active_until = _parse_date(fields["active_until"]) if fields.get("active_until") else None
    site = fields.get("site") or default_site
    tags = fields.get("tags")
    email, member_no = fields.get("email"), fields.get("member_no")
    conds: list[Any] = []
    if email:
        conds.append(func.lower(Member.email) == email.lower())
    if member_no:
        conds.append(Member.member_no == member_no)
    existing = db.scalar(select(Member).where(or_(*conds)).order_by(Member.id)) if conds else None
    if existing is None:
        member = create_member(db, name, email, member_no, site, tags, active_until,
                                        actor=actor)
        result.created += 1
    else:
        changes: dict[str, Any] = {"name": name}
        if tags is not None:
            changes["tags"] = tags
        if active_until is not None:
            changes["active_until"] = active_until
        if site:
            changes["site"] = site
        if email:
            changes["email"] = email
        if member_no:
            changes["member_no"] = member_no
        member = update_member(db, existing.id, actor=actor, **changes)
        result.updated += 1
    if fields.get("badge_uid"):
        enrol_badge(db, member.id, fields["badge_uid"], actor=actor)
        result.badges += 1


__all__ = ["FIELDS", "ImportError_", "ImportResult", "import_members", "load_mapping",
           "read_rows"]
