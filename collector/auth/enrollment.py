"""The TOTP enrollment mail: sent by the platform straight to the new user, never through the
partner who created the account (who gets only the activation link)."""

from __future__ import annotations

import html
from email.message import EmailMessage

from collector.auth.directory import NewUser
from collector.auth.totp import provisioning_uri, qr_png
from sinks.notify.email import EmailChannel


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
