"""People on PostgreSQL: invitations and sign-in, portal sessions and their cookies, CSRF on
cookie requests, password policy, change and reset (with a real SMTP server), brute-force
throttling without account enumeration, TOTP with recovery codes, and the import of legacy
PBKDF2-SHA256 and bcrypt hashes that become argon2id at the first sign-in."""

from __future__ import annotations

import base64
import hashlib
import re
import socket
import time
from email import message_from_bytes
from email.policy import default as email_policy

import bcrypt
import pyotp
import pytest
from aiosmtpd.controller import Controller
from litestar.testing import TestClient
from sqlalchemy import func, select

from resources import audit
from resources.settings import get_settings
from resources.tables import AuditEvent, User
from tests.conftest import OPERATOR
from tests.people import PASSWORD, accept, app_client, owner_of, sign_in, token_of


@pytest.fixture
def env(postgres_url, tmp_path, monkeypatch):
    monkeypatch.setenv("PRIVATUNE_HOME", str(tmp_path))
    get_settings.cache_clear()
    with app_client(postgres_url, tmp_path) as (client, app, db):
        yield client, app, db


def _user(db, email: str) -> User:
    with db.session() as session:
        user = session.scalar(select(User).where(User.email == email))
        assert user is not None
        session.expunge(user)
        return user


def _platform_actions(db) -> list[str]:
    with db.session() as session:
        return list(
            session.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.chain == audit.PLATFORM_CHAIN)
                .order_by(AuditEvent.seq)
            )
        )


def test_invited_owner_signs_in_with_a_session_cookie_and_out_again(env):
    client, app, db = env
    owner, _ = owner_of(client, app, "acme", "Jo.Owner@Example.COM ")
    assert owner.email.strip().lower() == _user(db, "jo.owner@example.com").email
    me = owner.get("/v1/auth/me").json()
    assert me["kind"] == "user" and me["tenant"] == "acme" and me["role"] == "owner"
    assert set(me["scopes"]) == {"read", "write", "train", "deploy", "inference", "admin"}

    browser, answer = sign_in(app, "JO.OWNER@example.com")
    assert answer.status_code == 200 and answer.json()["status"] == "signed_in"
    cookie = next(c for c in answer.headers.get_list("set-cookie") if "privatune_session" in c)
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    session_id = browser.cookies["privatune_session"]
    # The database keeps the id's hash only.
    with db.session() as session:
        stored = session.execute(
            select(func.count()).select_from(__import__("resources.tables").tables.WebSession)
        ).scalar()
        assert stored >= 1
        from resources.tables import WebSession

        ids = list(session.scalars(select(WebSession.id_hash)))
        assert session_id not in ids
        assert hashlib.sha256(session_id.encode()).hexdigest() in ids
    csrf = answer.json()["csrf_token"]
    out = browser.post("/v1/auth/sign-out", headers={"X-CSRFToken": csrf})
    assert out.status_code == 204
    assert browser.get("/v1/auth/me").status_code == 401
    # The old cookie, replayed, is dead.
    replay = TestClient(app)
    replay.cookies.set("privatune_session", session_id)
    assert replay.get("/v1/auth/me").status_code == 401
    actions = _platform_actions(db)
    assert "auth.signed_in" in actions and "auth.signed_out" in actions


def test_session_id_changes_at_sign_in(env):
    client, app, _ = env
    owner, _ = owner_of(client, app, "acme")
    browser = TestClient(app)
    browser.cookies.set("privatune_session", "attacker-chosen-session-id-000000")
    browser.get("/health")  # a page view gives the browser its CSRF cookie
    answer = browser.post(
        "/v1/auth/sign-in",
        json={"email": owner.email, "password": PASSWORD},
        headers={"X-CSRFToken": browser.cookies["csrftoken"]},
    )
    assert answer.status_code == 200
    issued = [
        c for c in answer.headers.get_list("set-cookie") if c.startswith("privatune_session=")
    ]
    assert issued and "attacker-chosen-session-id-000000" not in issued[-1]


def test_cookies_are_secure_behind_https(env, monkeypatch, postgres_url, tmp_path):
    monkeypatch.setenv("PRIVATUNE_PUBLIC_URL", "https://privatune.example.com")
    get_settings.cache_clear()
    with app_client(postgres_url, tmp_path / "https") as (client, app, _):
        owner, _ = owner_of(client, app, "acme")
        _, answer = sign_in(app, owner.email)
        cookies = answer.headers.get_list("set-cookie")
        assert all("Secure" in c for c in cookies if "privatune_session" in c or "csrftoken" in c)


def test_cookie_requests_need_the_csrf_token_and_keys_do_not(env):
    client, app, _ = env
    owner, key = owner_of(client, app, "acme")
    body = {"email": "new.person@example.com", "role": "member"}
    refused = owner.client.post("/v1/members/invitations", json=body)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "csrf_failed"
    wrong = owner.client.post(
        "/v1/members/invitations", json=body, headers={"X-CSRFToken": "0" * 128}
    )
    assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "csrf_failed"
    # nothing was stored by the refused requests
    invited = [i["email"] for i in owner.get("/v1/members/invitations").json()]
    assert "new.person@example.com" not in invited
    assert owner.post("/v1/members/invitations", json=body).status_code == 201
    # A form post carries the token as a field.
    form = owner.client.post(
        "/v1/auth/sign-out", data={"_csrf_token": owner.csrf}, headers={"X-CSRFToken": ""}
    )
    assert form.status_code == 204
    # A script with the tenant's key needs no token (no cookie rides along).
    scripted = client.post(
        "/v1/members/invitations",
        json={"email": "other@example.com", "role": "viewer"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert scripted.status_code == 201
    # A sign-in posted from another site is refused.
    forged = TestClient(app).post(
        "/v1/auth/sign-in",
        json={"email": owner.email, "password": PASSWORD},
        headers={"Origin": "https://evil.example.net"},
    )
    assert forged.status_code == 403 and forged.json()["error"]["code"] == "csrf_failed"


def test_password_policy_says_what_to_change(env):
    client, app, db = env
    created = client.post(
        "/v1/tenants",
        json={"slug": "acme", "owner_email": "maria.lopez@example.com"},
        headers=OPERATOR,
    ).json()
    token = token_of(created["invitation"])
    for password, phrase in (
        ("short", "at least 12 characters"),
        ("password1234", "guess"),
        ("maria.lopez-2026-vault", "e-mail"),
    ):
        refused = TestClient(app).post(
            "/v1/invitations/accept", json={"token": token, "password": password}
        )
        assert refused.status_code == 400, password
        assert refused.json()["error"]["code"] == "weak_password"
        assert phrase in refused.json()["error"]["message"]
    # the refusals stored nothing and the invitation still works
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(User)) == 0
    long_passphrase = "the quiet harbour keeps seven lanterns burning through december fog"
    _, answer = accept(app, token, long_passphrase)
    assert answer["user"]["email"] == "maria.lopez@example.com"
    # used once: the same link cannot make a second account
    again = TestClient(app).post(
        "/v1/invitations/accept", json={"token": token, "password": long_passphrase}
    )
    assert again.status_code == 400 and again.json()["error"]["code"] == "invalid_token"


def test_changing_the_password_ends_every_other_session(env):
    client, app, _ = env
    owner, _ = owner_of(client, app, "acme")
    laptop, _ = sign_in(app, owner.email)
    assert laptop.get("/v1/auth/me").status_code == 200
    wrong = owner.post(
        "/v1/auth/password",
        json={"current_password": "not it at all, sorry", "new_password": "x" * 20},
    )
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_credentials"
    new = "amber lighthouse crossing 17 tides"
    changed = owner.post(
        "/v1/auth/password", json={"current_password": PASSWORD, "new_password": new}
    )
    assert changed.status_code == 200, changed.text
    assert laptop.get("/v1/auth/me").status_code == 401  # the other session ended
    assert owner.get("/v1/auth/me").status_code == 200  # this one goes on, under a new id
    assert sign_in(app, owner.email)[1].status_code == 401
    assert sign_in(app, owner.email, new)[1].status_code == 200


class _Inbox:
    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.messages.append(message_from_bytes(envelope.content, policy=email_policy))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_password_reset_by_mail_and_without_a_mail_server(env, monkeypatch, caplog):
    client, app, db = env
    owner, _ = owner_of(client, app, "acme")
    inbox = _Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    smtp.start()
    try:
        monkeypatch.setenv("PRIVATUNE_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("PRIVATUNE_SMTP_PORT", str(smtp.port))
        monkeypatch.setenv("PRIVATUNE_SMTP_STARTTLS", "0")
        get_settings.cache_clear()
        asked = TestClient(app).post("/v1/auth/password-reset", json={"email": owner.email})
        unknown = TestClient(app).post(
            "/v1/auth/password-reset", json={"email": "nobody@example.com"}
        )
        # The same answer whether or not the address has an account, and no link in it.
        assert asked.status_code == unknown.status_code == 202
        assert asked.json() == unknown.json() and "token" not in asked.text
        deadline = time.time() + 10
        while not inbox.messages and time.time() < deadline:
            time.sleep(0.05)
    finally:
        smtp.stop()
    [mail] = inbox.messages
    assert mail["To"] == owner.email
    link = re.search(r"https?://\S+reset-password\?token=(\S+)", mail.get_content())
    assert link, mail.get_content()
    token = link.group(1)
    weak = TestClient(app).post(
        "/v1/auth/password-reset/confirm", json={"token": token, "new_password": "abc"}
    )
    assert weak.status_code == 400 and weak.json()["error"]["code"] == "weak_password"
    new = "copper meadow thunder 88 quilts"
    done = TestClient(app).post(
        "/v1/auth/password-reset/confirm", json={"token": token, "new_password": new}
    )
    assert done.status_code == 204
    assert owner.get("/v1/auth/me").status_code == 401  # sessions ended
    reused = TestClient(app).post(
        "/v1/auth/password-reset/confirm", json={"token": token, "new_password": new + "x"}
    )
    assert reused.status_code == 400 and reused.json()["error"]["code"] == "invalid_token"
    assert sign_in(app, owner.email, new)[1].status_code == 200

    # Without a mail server the link goes to the log, and to the operator who asks for it.
    monkeypatch.delenv("PRIVATUNE_SMTP_HOST")
    get_settings.cache_clear()
    user_id = _user(db, owner.email).id
    issued = client.post(f"/v1/admin/users/{user_id}/password-reset", headers=OPERATOR)
    assert issued.status_code == 200 and issued.json()["sent"] is False
    assert "reset-password?token=" in issued.json()["reset_url"]
    # ... never to the person (or anyone) asking through the public endpoint
    asked = TestClient(app).post("/v1/auth/password-reset", json={"email": owner.email})
    assert asked.status_code == 202 and "token" not in asked.text


def test_failed_sign_ins_are_throttled_per_account_and_address(env):
    client, app, db = env
    owner, _ = owner_of(client, app, "acme")
    statuses = []
    for _ in range(6):
        _, answer = sign_in(app, owner.email, "wrong password entirely 1")
        statuses.append(answer.status_code)
    assert statuses[:5] == [401] * 5 and statuses[5] == 429
    _, locked = sign_in(app, owner.email)  # even the right password waits
    assert locked.status_code == 429 and locked.json()["error"]["code"] == "too_many_attempts"
    assert int(locked.headers["Retry-After"]) > 0
    # An address that does not exist is throttled the same way: the answers do not tell
    # whether an account exists.
    unknown = [sign_in(app, "ghost@example.com", "wrong password entirely 1")[1] for _ in range(6)]
    assert [r.status_code for r in unknown] == statuses
    assert unknown[0].json()["error"]["code"] == "invalid_credentials"
    assert unknown[0].json()["error"]["message"] == _first_failure(app)
    # One client address trying many accounts is throttled too.
    codes = [
        sign_in(app, f"person{i}@example.com", "wrong password entirely 1")[1].status_code
        for i in range(12)
    ]
    assert 429 in codes
    assert "auth.sign_in_failed" in _platform_actions(db)


def _first_failure(app) -> str:
    return sign_in(app, "another.ghost@example.com", "x" * 14)[1].json()["error"]["message"]


def test_unknown_email_and_wrong_password_take_about_as_long(env):
    client, app, _ = env
    owner, _ = owner_of(client, app, "acme")

    def timed(email: str) -> float:
        started = time.perf_counter()
        sign_in(app, email, "not the password 12345")
        return time.perf_counter() - started

    known = sorted(timed(owner.email) for _ in range(3))[1]
    unknown = sorted(timed(f"nobody{i}@example.com") for i in range(3))[1]
    assert 0.3 < unknown / known < 3, (known, unknown)


def test_totp_second_factor_with_recovery_codes(env):
    client, app, db = env
    owner, _ = owner_of(client, app, "acme")
    started = owner.post("/v1/auth/totp")
    assert started.status_code == 201
    secret = started.json()["secret"]
    assert "otpauth://totp/" in started.json()["otpauth_uri"]
    with db.session() as session:  # stored encrypted, not as given
        stored = session.scalar(select(User.totp_secret).where(User.email == owner.email))
        assert stored and secret not in stored
    bad = owner.post("/v1/auth/totp/confirm", json={"code": "000000"})
    assert bad.status_code == 400
    codes = owner.post("/v1/auth/totp/confirm", json={"code": pyotp.TOTP(secret).now()})
    assert codes.status_code == 200
    recovery = codes.json()["recovery_codes"]
    assert len(recovery) == 10

    browser, first = sign_in(app, owner.email)
    assert first.json()["status"] == "second_factor_required"
    assert browser.get("/v1/auth/me").status_code == 401  # not signed in yet
    csrf = first.json()["csrf_token"]
    wrong = browser.post(
        "/v1/auth/second-factor", json={"code": "123456"}, headers={"X-CSRFToken": csrf}
    )
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_second_factor"
    # The code confirming set-up was used: the same step is refused; a recovery code works once.
    ok = browser.post(
        "/v1/auth/second-factor",
        json={"recovery_code": recovery[0].upper()},
        headers={"X-CSRFToken": csrf},
    )
    assert ok.status_code == 200 and ok.json()["status"] == "signed_in"
    assert browser.get("/v1/auth/me").json()["user"]["second_factor"] is True
    reused = sign_in(app, owner.email, recovery_code=recovery[0])[1]
    assert reused.status_code == 401
    fresh = sign_in(app, owner.email, recovery_code=recovery[1])[1]
    assert fresh.status_code == 200 and fresh.json()["status"] == "signed_in"
    assert "auth.recovery_code_used" in _platform_actions(db)
    off = owner.post("/v1/auth/totp/disable", json={"password": PASSWORD})
    assert off.status_code == 204
    assert sign_in(app, owner.email)[1].json()["status"] == "signed_in"


def _django_pbkdf2(password: str, salt: str = "seasalt2026", iterations: int = 260000) -> str:
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)
    return f"pbkdf2_sha256${iterations}${salt}${base64.b64encode(digest).decode()}"


def test_legacy_pbkdf2_and_bcrypt_hashes_sign_in_and_become_argon2id(env):
    client, app, db = env
    client.post("/v1/tenants", json={"slug": "acme"}, headers=OPERATOR)
    old_password = "Legacy pass phrase 1"  # the old product's policy: not ours to re-check
    imported = client.post(
        "/v1/admin/users/import",
        headers=OPERATOR,
        json={
            "users": [
                {
                    "email": "pbkdf2.user@example.com",
                    "password_hash": _django_pbkdf2(old_password),
                    "tenant": "acme",
                    "role": "member",
                },
                {
                    "email": "bcrypt.user@example.com",
                    "password_hash": bcrypt.hashpw(
                        old_password.encode(), bcrypt.gensalt(4)
                    ).decode(),
                    "tenant": "acme",
                    "role": "viewer",
                },
            ]
        },
    )
    assert imported.status_code == 201, imported.text
    for email, scheme in (
        ("pbkdf2.user@example.com", "pbkdf2_sha256$"),
        ("bcrypt.user@example.com", "$2"),
    ):
        assert _user(db, email).password_hash.startswith(scheme)
        assert sign_in(app, email, "not the old password")[1].status_code == 401
        assert _user(db, email).password_hash.startswith(scheme)  # a failure changes nothing
        browser, answer = sign_in(app, email, old_password)
        assert answer.status_code == 200, answer.text
        assert answer.json()["tenant"] == "acme"
        assert _user(db, email).password_hash.startswith("$argon2id$")
        assert sign_in(app, email, old_password)[1].status_code == 200  # the new hash verifies
    assert _platform_actions(db).count("auth.password_rehashed") == 2

    # A hash we cannot verify is refused at import, naming the entry; nothing is stored.
    bad = client.post(
        "/v1/admin/users/import",
        headers=OPERATOR,
        json={
            "users": [
                {"email": "fine@example.com", "password_hash": _django_pbkdf2("whatever x")},
                {"email": "md5@example.com", "password_hash": "5f4dcc3b5aa765d61d8327deb882cf99"},
            ]
        },
    )
    assert bad.status_code == 400 and "users[1]" in bad.json()["error"]["message"]
    with db.session() as session:
        assert session.scalar(select(User).where(User.email == "fine@example.com")) is None


def test_existing_person_accepts_a_second_tenant_with_their_password(env):
    client, app, _ = env
    owner, _ = owner_of(client, app, "acme")
    other, _ = owner_of(client, app, "globex", "boss@globex.example.com")
    made = other.post("/v1/members/invitations", json={"email": owner.email, "role": "viewer"})
    token = token_of(made.json())
    preview = TestClient(app).get(f"/v1/invitations/{token}").json()
    assert preview["tenant"] == "globex" and preview["has_account"] is True
    refused = TestClient(app).post(
        "/v1/invitations/accept", json={"token": token, "password": "someone else's guess"}
    )
    assert refused.status_code == 401
    joined = TestClient(app).post(
        "/v1/invitations/accept", json={"token": token, "password": PASSWORD}
    )
    assert joined.status_code == 200
    tenants = {t["tenant"]: t["role"] for t in owner.get("/v1/auth/me").json()["user"]["tenants"]}
    assert tenants == {"acme": "owner", "globex": "viewer"}
    # Acting in globex is choosing it (per session) or naming it per request.
    assert owner.get("/v1/projects", headers={"X-Tenant": "globex"}).status_code == 200
    assert (
        owner.post("/v1/projects", json={"slug": "x"}, headers={"X-Tenant": "globex"}).status_code
        == 403
    )
    chosen = owner.post("/v1/auth/tenant", json={"tenant": "globex"})
    assert chosen.status_code == 200 and chosen.json()["role"] == "viewer"
    assert owner.post("/v1/auth/tenant", json={"tenant": "initech"}).status_code == 403


def test_open_sign_up_makes_an_owner_or_is_closed(env, monkeypatch):
    client, app, _ = env
    body = {
        "email": "founder@example.com",
        "password": "granite willow seventeen canoes",
        "tenant_slug": "startup",
        "display_name": "Founder",
    }
    closed = TestClient(app).post("/v1/auth/sign-up", json=body)
    assert closed.status_code == 403 and closed.json()["error"]["code"] == "signup_closed"
    monkeypatch.setenv("PRIVATUNE_OPEN_SIGNUP", "1")
    get_settings.cache_clear()
    browser = TestClient(app)
    made = browser.post("/v1/auth/sign-up", json=body)
    assert made.status_code == 201, made.text
    assert made.json()["api_key"].startswith("ptk_")
    me = browser.get("/v1/auth/me").json()
    assert me["tenant"] == "startup" and me["role"] == "owner"
    usage = browser.get("/v1/usage").json()
    assert usage["plan"] == "free"
    taken = TestClient(app).post("/v1/auth/sign-up", json={**body, "tenant_slug": "other"})
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "user_exists"
