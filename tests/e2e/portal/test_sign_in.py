"""Screen 1 in Chromium: accepting an invitation, signing in and out, a wrong password, the
second factor, a password reset; keyboard-only sign-in; axe-core on each screen."""

from __future__ import annotations

import pyotp

from tests.e2e.portal.conftest import PASSWORD, accept_invitation, accessible, shot, sign_in


def test_invitation_sign_in_second_factor_and_sign_out(portal, browser):
    made = portal.tenant("initech", "ada@initech.example.com")
    page = accept_invitation(browser, portal, made["invitation"]["accept_url"], "Ada Lovelace")
    assert page.get_by_role("heading", name="Projects").is_visible()
    assert "Welcome to initech" in page.content()
    accessible(page, "projects (empty)")
    shot(page, "02-projects-empty")

    # The account page: set up the second factor with a real TOTP code.
    page.goto("/account")
    accessible(page, "account")
    page.get_by_role("button", name="Set it up").click()
    secret = page.locator("#totp-secret").inner_text().strip()
    page.get_by_label("Code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn on").click()
    codes = page.locator("#recovery-codes").inner_text().split()
    assert len(codes) == 10
    shot(page, "01-account-second-factor")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/sign-in")

    # Signing in again asks for the second factor; a recovery code works once.
    other = sign_in(browser, portal, "ada@initech.example.com")
    assert "/sign-in/second-factor" in other.url, (other.url, other.content()[:3000])
    accessible(other, "second factor")
    shot(other, "01-sign-in-second-factor")
    other.get_by_text("Use a recovery code instead").click()
    other.get_by_label("Recovery code").fill(codes[0])
    other.get_by_role("button", name="Continue").click()
    other.wait_for_url("**/t/initech/projects")


def test_wrong_password_is_told_and_keyboard_only_sign_in_works(portal, browser):
    made = portal.tenant("hooli", "gavin@hooli.example.com")
    accept_invitation(browser, portal, made["invitation"]["accept_url"], "Gavin")
    page = sign_in(browser, portal, "gavin@hooli.example.com", "not my password at all")
    assert page.get_by_role("alert").inner_text().startswith("the e-mail or password is wrong")
    accessible(page, "sign-in")
    shot(page, "01-sign-in-error")

    # Keyboard only: the e-mail field has focus, Tab moves to the password, Enter submits.
    context = browser.new_context(base_url=portal.url)
    keyboard = context.new_page()
    keyboard.goto("/sign-in")
    keyboard.keyboard.type("gavin@hooli.example.com")
    keyboard.keyboard.press("Tab")
    keyboard.keyboard.type(PASSWORD)
    keyboard.keyboard.press("Enter")
    keyboard.wait_for_url("**/t/hooli/projects")
