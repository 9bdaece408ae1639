"""WebAuthn security keys: an optional second factor next to TOTP (py_webauthn does the ceremonies).

    GET/POST /my/security-keys          list, register (navigator.credentials.create), remove
    GET/POST /signin/webauthn           the second factor with a key (navigator.credentials.get)

TOTP stays the factor every administrator must have (issue 12): a key can be registered only by a fully
signed-in account whose TOTP is confirmed, and then used *instead of* a code at sign-in; without
JavaScript (or without a key) the code always works. Removing the second factor from an account's page
removes its keys too, so no account holds keys without TOTP through the portal.

The two pages are the only ones with script: `/static/webauthn.js` (no inline script), allowed by their own
CSP (`SCRIPT_CSP`: the portal's policy plus `script-src 'self'`). The options are in a `data-options`
attribute (JSON, escaped); the script calls the browser and posts the credential as JSON in an ordinary form
with its CSRF token. Challenges are random, single-use, bound to the session token and kept in memory for
`CHALLENGE_SECONDS` (a restart drops them: the visitor reloads the page). The relying party is the portal's
public URL: RP ID its host name, origin its scheme, host and port (`[portal] public_url`).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import parse_authentication_credential_json
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from mailbastion.directory.errors import DirectoryError
from mailbastion.directory.webauthn_keys import SecurityKeys
from mailbastion.portal.auth import Principal, require
from mailbastion.portal.render import page
from mailbastion.portal.security_headers import SCRIPT_CSP

__all__ = ["CHALLENGE_SECONDS", "Challenges", "relying_party", "security_keys", "signin_with_key"]

CHALLENGE_SECONDS = 300.0
MAX_CREDENTIAL_JSON = 16 * 1024


@dataclass
class Challenges:
    """Single-use challenges per (session token hash, ceremony), expiring after CHALLENGE_SECONDS."""

    pending: dict[tuple[str, str], tuple[bytes, float]] = field(default_factory=dict)

    def put(self, session: str, ceremony: str, challenge: bytes) -> None:
        now = time.monotonic()
        for k in [k for k, (_, t) in self.pending.items() if t < now]:
            del self.pending[k]
        self.pending[(session, ceremony)] = (challenge, now + CHALLENGE_SECONDS)

    def take(self, session: str, ceremony: str) -> bytes | None:
        got = self.pending.pop((session, ceremony), None)
        return got[0] if got is not None and got[1] >= time.monotonic() else None


def relying_party(request: Request) -> tuple[str, str]:
    """(RP ID, origin) of the portal: the host name and origin of its public URL."""
    url = urlsplit(request.app.state.ctx.public_url)
    default = {"https": 443, "http": 80}.get(url.scheme)
    host = url.hostname or ""
    origin = f"{url.scheme}://{host}" + (f":{url.port}" if url.port and url.port != default else "")
    return host, origin


def _challenges(request: Request) -> Challenges:
    state = request.app.state
    if not hasattr(state, "webauthn_challenges"):
        state.webauthn_challenges = Challenges()
    return state.webauthn_challenges  # type: ignore[no-any-return]


def _keys(request: Request) -> SecurityKeys:
    state = request.app.state
    if not hasattr(state, "security_keys"):
        state.security_keys = SecurityKeys(state.ctx.directory)
    return state.security_keys  # type: ignore[no-any-return]


def _scripted(response: Response) -> Response:
    response.headers["content-security-policy"] = SCRIPT_CSP
    return response


def _credential_json(request: Request) -> str:
    text = str(request.state.form.get("credential", ""))
    if not text or len(text) > MAX_CREDENTIAL_JSON:
        raise ValueError("the browser sent no security key answer (is JavaScript on?)")
    return text


@require()
async def security_keys(request: Request) -> Response:
    """The signed-in account's keys; POST action=register (with the browser's credential) or remove."""
    ctx = request.app.state.ctx
    who: Principal = request.state.principal
    keys = _keys(request)
    facts = await asyncio.to_thread(ctx.store.facts, who.address)
    error, status, done = "", 200, ""
    if request.method == "POST" and facts.totp_confirmed:
        form = request.state.form
        action = str(form.get("action", ""))
        try:
            if action == "remove":
                await asyncio.to_thread(keys.remove, who.address, str(form.get("name", "")), by=who.actor,
                                        reason="removed by its owner")
                done = "removed"
            elif action == "register":
                challenge = _challenges(request).take(who.token_hash, "register")
                if challenge is None:
                    raise ValueError("the registration took too long or was already used: try again")
                rp_id, origin = relying_party(request)
                verified = verify_registration_response(credential=_credential_json(request), expected_challenge=challenge,
                                                        expected_rp_id=rp_id, expected_origin=origin)
                await asyncio.to_thread(keys.add, who.address, verified.credential_id, verified.credential_public_key,
                                        verified.sign_count, str(form.get("name", "")), by=who.actor)
                done = "added"
            else:
                raise ValueError("unknown action")
        except (WebAuthnException, DirectoryError, ValueError) as exc:
            error, status = f"The security key was not {'removed' if action == 'remove' else 'registered'}: {exc}", 400
    mine = await asyncio.to_thread(keys.list, who.address)
    options = ""
    if facts.totp_confirmed:
        rp_id, _ = relying_party(request)
        made = generate_registration_options(
            rp_id=rp_id, rp_name=ctx.settings.server.hostname, user_name=who.address, user_display_name=who.address,
            exclude_credentials=[PublicKeyCredentialDescriptor(id=k.credential_id) for k in mine],
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.DISCOURAGED, user_verification=UserVerificationRequirement.PREFERRED))
        _challenges(request).put(who.token_hash, "register", made.challenge)
        options = options_to_json(made)
    return _scripted(page(request, "security_keys.html", status, keys=mine, options=options, error=error, done=done,
                          totp=facts.totp_confirmed))


@require(mfa=False)
async def signin_with_key(request: Request) -> Response:
    """The second factor with a registered key, for a session whose password is checked."""
    from mailbastion.portal.signin import _complete, _fail_code

    ctx = request.app.state.ctx
    who: Principal = request.state.principal
    keys = _keys(request)
    facts = await asyncio.to_thread(ctx.store.facts, who.address)
    mine = await asyncio.to_thread(keys.list, who.address) if facts.totp_confirmed else []
    if who.complete or not mine:
        return RedirectResponse("/" if who.complete else "/signin/totp", status_code=303)
    rp_id, origin = relying_party(request)
    error, status = "", 200
    if request.method == "POST":
        challenge = _challenges(request).take(who.token_hash, "signin")
        try:
            if challenge is None:
                raise ValueError("the sign-in took too long or was already used")
            sent = parse_authentication_credential_json(_credential_json(request))
            key = next((k for k in mine if k.credential_id == sent.raw_id), None)
            if key is None:
                raise ValueError("not a security key of this account")
            verified = verify_authentication_response(
                credential=sent, expected_challenge=challenge, expected_rp_id=rp_id, expected_origin=origin,
                credential_public_key=key.public_key, credential_current_sign_count=key.sign_count)
            if not await asyncio.to_thread(keys.used, key, verified.new_sign_count):
                raise ValueError("the key was used twice at once")
            return await _complete(request, who, "webauthn")
        except (WebAuthnException, ValueError, json.JSONDecodeError) as exc:
            await _fail_code(request, who, reason=f"security key refused: {exc}"[:300], factor="webauthn")
            error, status = "That did not work. Try the key again, or use a code from your authenticator app.", 401
    made = generate_authentication_options(
        rp_id=rp_id, allow_credentials=[PublicKeyCredentialDescriptor(id=k.credential_id) for k in mine],
        user_verification=UserVerificationRequirement.PREFERRED)
    _challenges(request).put(who.token_hash, "signin", made.challenge)
    return _scripted(page(request, "signin_webauthn.html", status, options=options_to_json(made), error=error))
