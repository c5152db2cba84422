"""Sending the queued mail: the worker every replica runs (as :func:`~auth_server.oidc.logout.deliver_forever`
delivers back-channel logout tokens), and what each kind of mail says.

:func:`send_forever` claims due mails from the Redis queue (:mod:`auth_server.stores.outbox`),
writes each one *now* (looking up the account, minting a fresh link whose token only the mail
holds), and hands it to the SMTP server (:mod:`.smtp`). A mail the server refused for good is given
up; any other failure (the server down, a 4xx answer, Redis or PostgreSQL away) is retried with
exponential back-off, and given up with a warning and an audit event after the last attempt. A
request typed into a form (a password reset, a new verification link) becomes one mail per account
it matches, queued in turn; one that matches none becomes nothing, out of sight of whoever asked.

Each address gets at most TESSERA_RATE_MAIL_PER_ADDRESS of these mails an hour (counted in Redis,
for every replica); more are dropped, so that no form can be used to flood someone's inbox. Logs
name the kind of mail and the user id, never an address, a link or a token.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from email.message import EmailMessage

from auth_server import i18n, paths
from auth_server.mail import messages
from auth_server.mail.smtp import SendFailed, SmtpServer
from auth_server.queue_worker import work_forever
from auth_server.registry import Registry
from auth_server.stores import outbox
from auth_server.stores.account_tokens import RESET_PASSWORD, VERIFY_EMAIL, AccountToken, password_marker
from auth_server.stores.due_queue import DEFAULT_LEASE
from auth_server.stores.outbox import ClaimedMail, Mail
from auth_server.stores.rate_limits import Limit
from auth_server.stores.users import Profile
from auth_server.usernames import MAX_LENGTH as MAX_USERNAME

log = logging.getLogger("tessera.mail")

POLL_INTERVAL = 1.0  # seconds between looks at the queue (an enqueue in this process wakes it sooner)
MAX_OUTAGE_WAIT = 30.0  # seconds between looks at an unreachable queue, at most
BATCH = 10  # mails claimed at once, and sent concurrently
HOUR = 3600


async def send_forever(
    registry: Registry, stop: asyncio.Event, *, poll: float = POLL_INTERVAL, lease: float = DEFAULT_LEASE
) -> None:
    """Send queued mail until ``stop`` is set; survives Redis, database and mail server outages.

    Cancelling it is safe at any point: a mail claimed and not finished is due again when its lease
    ends, for whichever replica looks first (a mail may then go out twice, never not at all).
    """
    server = SmtpServer.from_settings(registry.settings)
    if server is None:
        return
    await work_forever(
        registry.outbox,
        lambda claimed: _send_one(registry, server, claimed),
        stop,
        what="mail",
        log=log,
        batch=BATCH,
        poll=poll,
        lease=lease,
        max_wait=MAX_OUTAGE_WAIT,
    )


async def _send_one(registry: Registry, server: SmtpServer, claimed: ClaimedMail) -> None:
    """One attempt; a failure of Redis or the database leaves the claim to expire and be retried."""
    try:
        await send(registry, server, claimed)
    except Exception as exc:
        log.warning(
            "mail %s to user %s interrupted (%s); retried when its claim lapses",
            claimed.mail.kind,
            claimed.mail.user_id,
            type(exc).__name__,  # its name only: no address or link can be in the log
        )


async def send(registry: Registry, server: SmtpServer, claimed: ClaimedMail) -> None:
    """Write ``claimed``'s mail (or queue the mails a request comes to) and send it; then finish,
    reschedule or give up on it."""
    mail = claimed.mail
    message = await write(registry, mail)
    if message is not None:
        try:
            await server.send(message)
        except SendFailed as failed:
            if failed.permanent:
                await _give_up(registry, mail, str(failed))
            else:
                await _retry(registry, claimed, str(failed))
            return
        log.info("mail %s to user %s sent", mail.kind, mail.user_id)
    await registry.outbox.finish(mail)


async def write(registry: Registry, mail: Mail) -> EmailMessage | None:
    """The message ``mail`` is, written now; ``None`` when there is nothing to send (a request,
    whose mails are queued here; an account that no longer needs it; an address whose hourly
    mails are spent)."""
    if mail.kind in (outbox.VERIFY_REQUEST, outbox.RESET_REQUEST):
        await _expand(registry, mail)
        return None
    profile = await _profile(registry, mail.user_id)
    # the mail speaks the language of her profile (its locale: the one she signed up in), else English
    i18n.use(i18n.from_ui_locales(None if profile is None else profile.locale) or i18n.DEFAULT)
    email = None if profile is None else profile.email
    if profile is None or email is None:
        log.info("mail %s to user %s dropped: no such user, or no address", mail.kind, mail.user_id)
        return None
    # a verification link only to an unverified address; a reset link or notice only to a verified one
    if profile.email_verified != (mail.kind in (outbox.PASSWORD_RESET, outbox.PASSWORD_CHANGED)):
        log.info("mail %s to user %s dropped: the address is verified, or not", mail.kind, mail.user_id)
        return None
    if mail.attempts == 0 and await _spent(registry, email):
        log.info(
            "mail %s to user %s dropped: the address's mails this hour are spent", mail.kind, mail.user_id
        )
        return None
    if mail.kind in (outbox.SIGNUP, outbox.VERIFY):
        return await _verification(registry, mail, profile, email)
    if mail.kind == outbox.PASSWORD_RESET:
        return await _reset(registry, profile, email)
    return messages.message(registry.settings, email, "password_changed", username=profile.username)


async def _verification(registry: Registry, mail: Mail, profile: Profile, email: str) -> EmailMessage:
    """A link to verify the address; or, if another account verified it first, a notice to the
    address's owner (who may be the one signing up, having forgotten that account)."""
    settings = registry.settings
    welcome = mail.kind == outbox.SIGNUP
    holder = await _verified_holder(registry, profile, email)
    if holder is not None:
        return messages.message(
            settings, email, "already_registered", existing_username=holder.username, welcome=welcome
        )
    token = await registry.account_tokens.issue(
        VERIFY_EMAIL, AccountToken(str(profile.user_id), email), ttl=settings.email_verification_ttl
    )
    return messages.message(
        settings,
        email,
        "verify_email",
        username=profile.username,
        link=f"{settings.endpoint(paths.VERIFY_EMAIL)}?token={token}",
        minutes=settings.email_verification_ttl // 60,
        welcome=welcome,
    )


async def _verified_holder(registry: Registry, profile: Profile, email: str) -> Profile | None:
    for other in await registry.users.with_email(email):
        if other.email_verified and other.user_id != profile.user_id:
            return other
    return None


async def _reset(registry: Registry, profile: Profile, email: str) -> EmailMessage | None:
    """A link to set a new password, working only while the password is the one it was sent for."""
    settings = registry.settings
    user = await registry.users.get(profile.user_id)
    if user is None:
        return None
    record = AccountToken(str(user.user_id), email, password_marker(user.password_hash))
    token = await registry.account_tokens.issue(RESET_PASSWORD, record, ttl=settings.password_reset_ttl)
    return messages.message(
        settings,
        email,
        "password_reset",
        username=user.username,
        link=f"{settings.endpoint(paths.PASSWORD_RESET_NEW)}?token={token}",
        minutes=settings.password_reset_ttl // 60,
    )


async def _expand(registry: Registry, request: Mail) -> None:
    """Queue a mail for each account what was typed names: by username, or by address (a reset
    only to a verified address; a new verification link only to an unverified one)."""
    kind = outbox.VERIFY if request.kind == outbox.VERIFY_REQUEST else outbox.PASSWORD_RESET
    for profile in await matching(registry, request.typed or ""):
        if profile.email is None or profile.email_verified == (kind == outbox.VERIFY):
            continue
        await registry.outbox.enqueue(Mail(kind, user_id=str(profile.user_id)))


async def matching(registry: Registry, typed: str) -> list[Profile]:
    """The accounts a username or an email address names (both are looked for), oldest first."""
    found: dict[uuid.UUID, Profile] = {}
    typed = typed.strip()
    if not typed:
        return []
    if len(typed) <= MAX_USERNAME:
        user = await registry.users.by_username(typed)
        profile = None if user is None else await registry.users.profile(user.user_id)
        if profile is not None:
            found[profile.user_id] = profile
    if "@" in typed:
        for profile in await registry.users.with_email(typed):
            found.setdefault(profile.user_id, profile)
    return list(found.values())


async def _profile(registry: Registry, user_id: str | None) -> Profile | None:
    try:
        return None if user_id is None else await registry.users.profile(uuid.UUID(user_id))
    except ValueError:
        return None


async def _spent(registry: Registry, email: str) -> bool:
    """Count one mail to ``email``; whether its hourly mails were already spent."""
    cap = registry.settings.rate_mail_per_address
    if cap <= 0:
        return False
    return await registry.rate_limits.exceeded(Limit("mail-to", email.lower(), cap, window=HOUR)) is not None


async def _retry(registry: Registry, claimed: ClaimedMail, reason: str) -> None:
    store = registry.outbox
    failed = claimed.mail.attempts + 1
    delay = store.backoff.delay(failed)
    if delay is None:
        await _give_up(registry, claimed.mail, f"{reason}; {failed} attempts failed")
        return
    log.info(
        "mail %s to user %s not sent (%s); attempt %d in %g s",
        claimed.mail.kind,
        claimed.mail.user_id,
        reason,
        failed + 1,
        delay,
    )
    await store.retry_later(claimed, delay)


async def _give_up(registry: Registry, mail: Mail, reason: str) -> None:
    log.warning("mail %s to user %s given up: %s", mail.kind, mail.user_id, reason)
    await registry.outbox.finish(mail)
    await registry.audit.record(
        "mail.failed", subject=mail.user_id, kind=mail.kind, attempts=mail.attempts + 1, reason=reason
    )
