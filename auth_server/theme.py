"""An operator's look for the pages, from ``TESSERA_THEME_DIR``, without forking (issue 18, item 5).

The directory may hold, each optional::

    theme.json      {"colors": {"accent": "#c8102e", ...}, "logo": "logo.png"}
    theme.css       more CSS, added after the built-in styles of every page
    templates/      templates that replace the shipped ones of the same name (login.html, ...)
    logo.png        the logo that theme.json names, shown at the top of every page

Everything is read and checked once, at start (:func:`load`; a mistake stops the server with a
line that names it), and served without loosening the pages' Content-Security-Policy: the colours
and ``theme.css`` go into the page's own ``<style>`` (``style-src 'unsafe-inline'`` already), and
the logo is served at the one fixed path :data:`LOGO_PATH` (``img-src 'self'``) with a policy of
its own that runs nothing, even for an SVG opened directly.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from auth_server import paths

LOGO_PATH = paths.THEME_LOGO
# theme.json's colours: the CSS custom property each sets in base.html, and what it paints
COLORS = {
    "accent": "--tessera-accent",  # buttons, links, the focus ring
    "accent_text": "--tessera-accent-text",  # text on the accent colour
    "background": "--tessera-background",  # around the page's card
    "surface": "--tessera-surface",  # the card
    "text": "--tessera-text",
    "muted": "--tessera-muted",  # secondary text
    "border": "--tessera-border",  # lines and input borders
}
# a colour as CSS writes it: #rgb, #rrggbb(aa), rgb()/hsl() of numbers, or a name
_COLOR = re.compile(
    r"#[0-9a-fA-F]{3,4}|#[0-9a-fA-F]{6}|#[0-9a-fA-F]{8}"
    r"|(rgb|rgba|hsl|hsla)\(\s*[0-9.%, /deg]+\)"
    r"|[a-zA-Z]{3,30}"
)
LOGO_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".svg": "image/svg+xml",
}
LOGO_LIMIT = 512 * 1024
CSS_LIMIT = 64 * 1024
# the logo's own answer: an image that can run nothing (an SVG opened directly included), cached
LOGO_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "public, max-age=3600",
}


class ThemeError(ValueError):
    """What is wrong with a theme directory, in one line."""


@dataclass(frozen=True, slots=True)
class Theme:
    """What a theme directory changes; :data:`PLAIN` changes nothing."""

    templates: Path | None = None  # its templates/ folder, searched before the shipped templates
    colors: dict[str, str] = field(default_factory=dict)  # CSS custom property -> value
    css: str = ""  # theme.css
    logo: bytes | None = None
    logo_type: str = ""

    @property
    def style(self) -> str:
        """The CSS the theme adds after the built-in styles (checked: it cannot end the ``<style>``)."""
        variables = "".join(f"{name}: {value}; " for name, value in self.colors.items())
        return (f":root {{ {variables}}}\n" if variables else "") + self.css


PLAIN = Theme()


def load(directory: Path | None) -> Theme:
    """The theme in ``directory`` (None: :data:`PLAIN`), every file checked."""
    if directory is None:
        return PLAIN
    if not directory.is_dir():
        raise ThemeError(f"{directory} is not a directory")
    templates = directory / "templates"
    settings = _settings(directory / "theme.json")
    colors = _colors(settings.get("colors", {}))
    logo, logo_type = _logo(directory, settings.get("logo"))
    css = _css(directory / "theme.css")
    return Theme(
        templates=templates if templates.is_dir() else None,
        colors=colors,
        css=css,
        logo=logo,
        logo_type=logo_type,
    )


def _settings(path: Path) -> dict[str, object]:
    if not path.exists():
        return {}
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ThemeError(f"{path}: not readable JSON ({error})") from None
    if not isinstance(value, dict) or not set(value) <= {"colors", "logo"}:
        raise ThemeError(f'{path}: must be an object with "colors" and/or "logo"')
    return value


def _colors(colors: object) -> dict[str, str]:
    if not isinstance(colors, dict):
        raise ThemeError('theme.json: "colors" must be an object of name -> CSS colour')
    unknown = sorted(set(colors) - set(COLORS))
    if unknown:
        raise ThemeError(f"theme.json: unknown colour {unknown[0]!r} (known: {', '.join(COLORS)})")
    checked = {}
    for name, value in colors.items():
        if not isinstance(value, str) or not _COLOR.fullmatch(value.strip()):
            raise ThemeError(f"theme.json: colour {name!r} must be a CSS colour such as #c8102e")
        checked[COLORS[name]] = value.strip()
    return checked


def _logo(directory: Path, name: object) -> tuple[bytes | None, str]:
    if name is None:
        return None, ""
    if not isinstance(name, str) or "/" in name or "\\" in name or name.startswith("."):
        raise ThemeError('theme.json: "logo" must be the name of a file in the theme directory')
    kind = LOGO_TYPES.get(Path(name).suffix.lower())
    if kind is None:
        raise ThemeError(f"theme.json: the logo must be one of {', '.join(LOGO_TYPES)}")
    path = directory / name
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ThemeError(f"{path}: {error.strerror}") from None
    if len(data) > LOGO_LIMIT:
        raise ThemeError(f"{path}: larger than {LOGO_LIMIT // 1024} KiB")
    return data, kind


def _css(path: Path) -> str:
    if not path.exists():
        return ""
    try:
        css = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ThemeError(f"{path}: not readable UTF-8 ({error})") from None
    if len(css) > CSS_LIMIT:
        raise ThemeError(f"{path}: larger than {CSS_LIMIT // 1024} KiB")
    if "<" in css:  # it goes inside the page's <style>: nothing may close it
        raise ThemeError(f"{path}: must not contain '<'")
    return css


THEME = web.AppKey("theme", Theme)


async def logo(request: web.Request) -> web.Response:
    """``GET /theme/logo``: the theme's logo (404 without one)."""
    theme = request.app.get(THEME, PLAIN)
    if theme.logo is None:
        raise web.HTTPNotFound()
    return web.Response(body=theme.logo, content_type=theme.logo_type, headers=LOGO_HEADERS)
