"""The language of the pages a person reads: Chinese (Simplified) or English (issue 18, item 5).

Messages live in standard gettext catalogs, ``auth_server/locale/<locale>/LC_MESSAGES/messages.po``,
compiled to the ``.mo`` files shipped beside them (README, "Pages in Chinese and English"). Templates
mark their text with Jinja2's i18n extension (``{% trans %}``, ``_()``); Python marks it with
:func:`gettext` (``_``) where it is read, or :func:`N_` where a constant is declared and
translated later.

The language of a request, in this order (:func:`choose`):

1. ``ui_locales`` of the authorization request (OpenID Connect Core §3.1.2.1: space-separated
   BCP 47 tags, in order of preference), on ``/authorize`` or carried in the login page's
   ``return_to``; a handler that knows more (a pushed request's parameters) calls :func:`hint`;
2. the language switch on every page (``/language``), remembered in the :data:`COOKIE` cookie;
3. ``Accept-Language`` (RFC 9110 §12.5.4: q-values, ``q=0`` refuses a language);
4. English.

Any ``zh`` tag (``zh``, ``zh-CN``, ``zh-Hans``, ``zh-TW``…) gets the Simplified Chinese pages, the
only Chinese there is; any ``en`` tag the English ones.

The language in force is a context variable set for each request by :func:`pages.middleware
<auth_server.pages.middleware>`, so :func:`gettext` needs no request: a template, a handler and
the error page all read it.
"""

from __future__ import annotations

import contextvars
import functools
import gettext as gettext_module
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from babel.core import Locale, negotiate_locale
from babel.dates import format_skeleton

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "messages"
COOKIE = "tessera_lang"
COOKIE_MAX_AGE = 365 * 86400


@dataclass(frozen=True, slots=True)
class Language:
    """One language the pages come in."""

    tag: str  # BCP 47, as ``<html lang>``, ``Content-Language`` and ``ui_locales_supported`` say it
    catalog: str  # the catalog's folder under LOCALE_DIR (a Babel locale identifier)
    name: str  # how the language switch names it, in the language itself


ENGLISH = Language("en", "en", "English")
CHINESE = Language("zh-Hans", "zh_Hans", "中文")
LANGUAGES: tuple[Language, ...] = (CHINESE, ENGLISH)  # as the switch lists them
DEFAULT = ENGLISH
# what Babel's negotiation matches a preferred tag against (the primary language subtag)
_BY_PRIMARY = {"en": ENGLISH, "zh": CHINESE}

# OpenID Connect Discovery §3 ``ui_locales_supported``
SUPPORTED_TAGS: tuple[str, ...] = tuple(language.tag for language in LANGUAGES)


def N_(message: str) -> str:
    """Marks ``message`` for the catalog where it is declared; :func:`gettext` translates it later."""
    return message


@functools.cache
def translations(language: Language) -> gettext_module.NullTranslations:
    """The compiled catalog of ``language``; English's msgids are its text already."""
    try:
        return gettext_module.translation(DOMAIN, LOCALE_DIR, languages=[language.catalog])
    except FileNotFoundError:
        if language is DEFAULT:
            return gettext_module.NullTranslations()
        raise


class Deferred:
    """A request's language, chosen the first time something asks for it: most requests (token,
    introspection, JWKS, API calls) never render a word, and need not parse cookies and
    ``Accept-Language`` for nothing."""

    __slots__ = ("_choose", "_chosen")

    def __init__(self, choose: Callable[[], Language]) -> None:
        self._choose = choose
        self._chosen: Language | None = None

    def get(self) -> Language:
        if self._chosen is None:
            self._chosen = self._choose()
        return self._chosen

    def release(self) -> None:
        """The request is answered: let go of it (a task it started keeps this context, and would
        keep the whole request alive through ``choose``). Not chosen by then, it stays English:
        nothing renders for a request after its answer."""
        self._choose = _english


def _english() -> Language:
    return DEFAULT


_current: contextvars.ContextVar[Language | Deferred] = contextvars.ContextVar(
    "tessera_language", default=DEFAULT
)


def current() -> Language:
    """The language of the page being made (English outside a request)."""
    value = _current.get()
    return value if isinstance(value, Language) else value.get()


def use(language: Language | Deferred) -> contextvars.Token[Language | Deferred]:
    """Make ``language`` the current one (for this request's context); a :class:`Deferred` one is
    chosen when first asked for."""
    return _current.set(language)


def reset(token: contextvars.Token[Language | Deferred]) -> None:
    _current.reset(token)


def gettext(message: str) -> str:
    """``message`` in the current language."""
    return translations(current()).gettext(message)


_ = gettext


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(current()).ngettext(singular, plural, n)


def pgettext(context: str, message: str) -> str:
    return translations(current()).pgettext(context, message)


def npgettext(context: str, singular: str, plural: str, n: int) -> str:
    return translations(current()).npgettext(context, singular, plural, n)


# --- choosing the language -----------------------------------------------------------------------

_QUALITY = re.compile(r"^q=(0(\.\d{0,3})?|1(\.0{0,3})?)$", re.IGNORECASE)
_TAG = re.compile(r"^([A-Za-z]{1,8})(-[A-Za-z0-9]{1,8})*$")


def accept_language(header: str) -> list[str]:
    """The tags of an ``Accept-Language`` header, most wanted first (RFC 9110 §12.4.2, §12.5.4):
    by q-value, equal ones in the order given; ``q=0`` (not acceptable) and malformed entries
    left out, as is ``*``, which names no language in particular."""
    weighted: list[tuple[float, int, str]] = []
    for position, entry in enumerate(header.split(",")):
        tag, *parameters = (part.strip() for part in entry.split(";"))
        quality = 1.0
        for parameter in parameters:
            matched = _QUALITY.match(parameter.replace(" ", ""))
            if matched is None:
                quality = -1.0  # a malformed weight: the entry is ignored
                break
            quality = float(matched.group(1))
        if quality > 0 and _TAG.match(tag):
            weighted.append((-quality, position, tag))
    return [tag for _, _, tag in sorted(weighted)]


def negotiate(preferred: Iterable[str]) -> Language | None:
    """The first of ``preferred`` (BCP 47 tags, best first) the pages come in, by Babel's
    negotiation on the primary subtag (``zh-CN`` and ``zh-Hant-TW`` are ``zh``); None if none is."""
    primaries = [tag.split("-")[0].lower() for tag in preferred if _TAG.match(tag)]
    found = negotiate_locale(primaries, list(_BY_PRIMARY), sep="-")
    return None if found is None else _BY_PRIMARY.get(found.lower())


def from_ui_locales(value: str | None) -> Language | None:
    """The language ``ui_locales`` asks for (space-separated tags, best first), if one is offered."""
    if not value or len(value) > 200:
        return None
    return negotiate(value.split())


def from_tag(value: str | None) -> Language | None:
    """The language a tag names exactly (the switch's cookie and links)."""
    return next((language for language in LANGUAGES if language.tag == value), None)


def ui_locales_of(query: Mapping[str, str]) -> str | None:
    """The ``ui_locales`` of a request: its own, or that of the authorization request its
    ``return_to`` resumes (the login and two-step pages)."""
    if query.get("ui_locales"):
        return query["ui_locales"]
    return_to = query.get("return_to", "")
    if return_to and "ui_locales" in return_to and len(return_to) < 8192:
        return dict(parse_qsl(urlsplit(return_to).query)).get("ui_locales")
    return None


def choose(query: Mapping[str, str], cookies: Mapping[str, str], accept: str) -> Language:
    """The language of a page: ``ui_locales``, then the switch's cookie, then ``Accept-Language``,
    then English (see the module docstring)."""
    return (
        from_ui_locales(ui_locales_of(query))
        or from_tag(cookies.get(COOKIE))
        or negotiate(accept_language(accept[:1024]))
        or DEFAULT
    )


def hint(ui_locales: str | None) -> None:
    """A handler's ``ui_locales`` that the request's URL did not show (a pushed authorization
    request's, RFC 9126): it wins, as ``ui_locales`` always does, if it names a language offered."""
    language = from_ui_locales(ui_locales)
    if language is not None:
        use(language)


# --- words that are data ------------------------------------------------------------------------


class Localized(str):
    """An operator's text given in several languages (``{"en": "…", "zh": "…"}``): as a ``str`` it
    is the English one (else the first given); :func:`localized` picks the current language's."""

    __slots__ = ("by_tag",)
    by_tag: Mapping[str, str]

    def __new__(cls, by_tag: Mapping[str, str]) -> Localized:
        text = by_tag.get(DEFAULT.tag) or next(iter(by_tag.values()))
        made = super().__new__(cls, text)
        made.by_tag = dict(by_tag)
        return made


def localized_texts(value: Mapping[str, str]) -> Localized:
    """``{language tag: text}`` as :class:`Localized`, each tag mapped to a language offered
    (``zh``, ``zh-CN``, ``zh-Hans`` all Chinese); ValueError naming a tag that is none."""
    by_tag: dict[str, str] = {}
    for tag, text in value.items():
        language = negotiate([tag])
        if language is None:
            offered = ", ".join(SUPPORTED_TAGS)
            raise ValueError(f"{tag!r} is not a language the pages come in ({offered})")
        by_tag[language.tag] = text
    if not by_tag:
        raise ValueError("no language given")
    return Localized(by_tag)


def localized(text: str) -> str:
    """``text`` in the current language: an operator's :class:`Localized` text, or a text of the
    catalog (the built-in scopes' descriptions); other text as it is."""
    if isinstance(text, Localized):
        return text.by_tag.get(current().tag) or str.__str__(text)
    return gettext(text) if text else text


def described(scopes: Mapping[str, str]) -> dict[str, str]:
    """Scope descriptions (``TESSERA_SCOPES``) in the current language, by scope."""
    return {scope: localized(description) for scope, description in scopes.items()}


def when(moment: datetime) -> str:
    """A moment as people read it, in UTC: ``3 May 2025, 14:05 UTC``; ``2025年5月3日 14:05 UTC``."""
    moment = moment.astimezone(UTC)
    language = current()
    if language is DEFAULT:
        return f"{moment.day} {moment:%B %Y, %H:%M} UTC"
    locale = Locale.parse(language.catalog)
    day = format_skeleton("yMMMd", moment, tzinfo=UTC, locale=locale)
    return f"{day} {format_skeleton('Hm', moment, tzinfo=UTC, locale=locale)} UTC"
