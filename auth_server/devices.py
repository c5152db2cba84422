"""A browser's User-Agent header in plain words, for the sessions list: ``Chrome``, ``Windows``.

Only what people recognise: the browser's and the system's names, never versions (which change
with every update and mean nothing to most people). Unknown agents give ``None``; the page says
"an unknown browser". The names are product names, the same in every language.
"""

from __future__ import annotations

# (marker in the header, browser name): the first that matches wins, so the browsers built on
# others (Edge, Opera, Samsung Internet, WeChat's, QQ's) come before Chrome and Safari
_BROWSERS = (
    ("MicroMessenger", "WeChat"),
    ("QQBrowser", "QQ Browser"),
    ("UCBrowser", "UC Browser"),
    ("Edg/", "Edge"),
    ("EdgA/", "Edge"),
    ("EdgiOS/", "Edge"),
    ("OPR/", "Opera"),
    ("SamsungBrowser", "Samsung Internet"),
    ("Firefox/", "Firefox"),
    ("FxiOS/", "Firefox"),
    ("HeadlessChrome", "Chrome (headless)"),
    ("CriOS/", "Chrome"),
    ("Chrome/", "Chrome"),
    ("Chromium/", "Chromium"),
    ("Safari/", "Safari"),
    ("curl/", "curl"),
    ("python-requests", "Python"),
    ("aiohttp", "Python"),
    ("Python", "Python"),
)
_SYSTEMS = (
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Android", "Android"),
    ("CrOS", "ChromeOS"),
    ("HarmonyOS", "HarmonyOS"),
    ("Windows", "Windows"),
    ("Macintosh", "macOS"),
    ("Mac OS X", "macOS"),
    ("Linux", "Linux"),
)


def describe(user_agent: str | None) -> tuple[str | None, str | None]:
    """(browser, system) named in ``user_agent``; either is ``None`` when not recognised."""
    if not user_agent:
        return None, None
    browser = next((name for marker, name in _BROWSERS if marker in user_agent), None)
    system = next((name for marker, name in _SYSTEMS if marker in user_agent), None)
    return browser, system
