"""The TOTP enrollment mail: sent by the platform straight to the new user, never through the
partner who created the account (who gets only the activation link)."""

from __future__ import annotations

import html
from email.message import EmailMessage
from typing import TYPE_CHECKING
from urllib.parse import quote

from soc.auth.config import access_policy
from soc.auth.model import NewUser
from soc.auth.totp import provisioning_uri, qr_png
from soc.notify.config import EmailNotifierConfig
from soc.notify.email import EmailChannel

if TYPE_CHECKING:
    from collector.config.loader import VigilConfig


def enrollment_notifier(config: VigilConfig) -> str | None:
    """The notifier that mails enrollments: `access.default.enrollment_notifier`, else the
    first email notifier (by id); None when there is none."""
    notifiers = config.section("notifiers")
    return access_policy(config).enrollment_notifier or next(
        (k for k in sorted(notifiers) if isinstance(notifiers[k], EmailNotifierConfig)), None)


def send_enrollment(channel: EmailChannel, new: NewUser, issuer: str) -> Exception | None:
    """Mail the enrollment; what went wrong when it could not be sent."""
    try:
        channel.deliver(enrollment_message(channel, new, issuer))
    except Exception as exc:  # SMTP, TLS, DNS, ...: the caller says what becomes of the user
        return exc
    return None


def enrollment_message(channel: EmailChannel, new: NewUser, issuer: str) -> EmailMessage:
    """Text + HTML with the otpauth URI, and the QR code as a PNG attachment."""
    user = new.user
    uri = provisioning_uri(new.totp_secret, user.login, issuer)
    text = (
        f"Hello {user.display_name},\n\n"
        f"an account '{user.login}' was created for you on {issuer}. Scan the attached QR code "
        "(vigil-totp.png) with your authenticator app, or add this key by hand:\n\n"
        f"    {new.totp_secret}\n\n"
        f"otpauth URI: {uri}\n\n"
        "You will receive an activation link from your administrator separately; use it to "
        "set your password and confirm a first code from the app.\n"
        "If you did not expect this mail, tell your administrator and delete it.\n")
    body_html = (
        f"<html><body><p>Hello {html.escape(user.display_name)},</p>"
        f"<p>an account <b>{html.escape(user.login)}</b> was created for you on "
        f"{html.escape(issuer)}. Scan the attached QR code (<i>vigil-totp.png</i>) with your "
        "authenticator app, or add this key by hand:</p>"
        f"<p><code>{html.escape(new.totp_secret)}</code></p>"
        "<p>You will receive an activation link from your administrator separately.</p>"
        "</body></html>")
    msg = channel.message([user.email], f"{issuer}: two-factor enrollment for {user.login}",
                          text, body_html)
    msg.add_attachment(qr_png(uri), maintype="image", subtype="png",
                       filename="vigil-totp.png")
    return msg


def activation_link(base_url: str, login: str, token: str) -> str:
    """The one-time link the partner hands to the user (with the login)."""
    return f"{base_url}/api/v1/auth/activate?login={quote(login)}&token={quote(token)}"


def activation_page(login: str, token: str) -> str:
    """The page that link opens: choose a password, confirm a first code."""
    login, token = html.escape(login), html.escape(token)
    return (
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Activate your Vigil "
        "account</title><link rel=\"stylesheet\" href=\"/static/console.css\"></head><body>"
        "<main><section class=\"panel narrow\"><h1>Activate your account</h1>"
        "<p>Choose a password and enter the code your authenticator app shows (the app "
        "was set up from the enrollment mail you received).</p>"
        "<form method=\"post\" action=\"activate\">"
        f"<input type=\"hidden\" name=\"login\" value=\"{login}\">"
        f"<input type=\"hidden\" name=\"token\" value=\"{token}\">"
        "<p><label>Password <input type=\"password\" name=\"password\" "
        "autocomplete=\"new-password\" required></label></p>"
        "<p><label>Code <input name=\"code\" inputmode=\"numeric\" "
        "autocomplete=\"one-time-code\" required></label></p>"
        "<p><button type=\"submit\">Activate</button></p></form>"
        "<p>Then sign in to the console with your password and a new code.</p>"
        "</section></main></body></html>")
