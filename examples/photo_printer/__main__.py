"""``python -m examples.photo_printer``: run the Photo Printer with settings from ``PRINTER_*`` variables."""

from __future__ import annotations

import logging
import sys

from aiohttp import web

from examples.photo_printer.app import ConfigError, MetadataError, PrinterSettings, create_app


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = PrinterSettings.from_env()
        # No aiohttp access log: its request line carries the query string, and /callback's holds
        # the code. The app logs method, path (without the query) and status itself. No "Running
        # on ..." banner either: ``tessera dev`` prints the printer's address in its own.
        web.run_app(create_app(settings), host=settings.host, port=settings.port, access_log=None, print=None)
    except (ConfigError, MetadataError) as error:
        sys.exit(f"photo printer: {error}")


if __name__ == "__main__":
    main()
