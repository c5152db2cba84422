"""Typed keys of the authorization server's ``web.Application``."""

from __future__ import annotations

from aiohttp import web

from auth_server.registry import Registry

REGISTRY = web.AppKey("registry", Registry)
