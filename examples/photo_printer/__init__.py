"""Photo Printer: a demo third-party site that imports photos from the Photo Warehouse with OAuth 2.0."""

from examples.photo_printer.app import PrinterSettings, create_app

__all__ = ["PrinterSettings", "create_app"]
