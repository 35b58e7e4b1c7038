"""Intercept as a SearXNG plugin: `intercept.doors.searxng.SXNGPlugin` in SearXNG's `settings.yml`.

```yaml
plugins:
  intercept.doors.searxng.SXNGPlugin:
    active: true
```

The plugin uses none of SearXNG's per-search hooks. `pre_search` would not do: a searcher can
switch any listed plugin off in the preferences, or for one request, and `/autocompleter`
never reaches it. Instead `init(app)`, which SearXNG calls once for every configured plugin
while the web application is built (whatever `active` says), puts Intercept's WSGI middleware
(`intercept.doors.wsgi`) into the application, and returns False, as SearXNG's own `hostnames` and
`ahmia_filter` plugins do when they have nothing to do per search: SearXNG then drops the
plugin from its list, so it is never shown in the preferences or `/config`, and no searcher
can turn it off or is offered a switch that would do nothing. Every request the Flask
application receives passes Intercept first: searches by GET and by POST, `/autocompleter`,
and the page's own `/_intercept/...` links.

Where it sits: directly in front of Flask's own `wsgi_app`, under SearXNG's middlewares
(`ReverseProxyPathFix`, WhiteNoise, ProxyFix), and it decides on `PATH_INFO` alone, the path
Flask routes on. `ReverseProxyPathFix` strips a prefix taken from `server.base_url` or from an
`X-Script-Name` header (which SearXNG accepts from any client): in front of it, a request for
`/x/search` sent with `X-Script-Name: /x` would look like no search route to Intercept and be
a search to SearXNG. The chain is found by following each layer's `wsgi_app`, `app` or
`application` attribute; where it cannot be followed, Intercept wraps the outermost layer and
says so on the `intercept.doors.searxng` logger.

Once: the middleware is put in only on the first `init` for an application (the engine is
kept in `app.extensions["intercept"]`); a second call finds it there and changes nothing.

Configuration: `intercept.config.load_config()` as everywhere, so `$INTERCEPT_CONFIG` names a
YAML file and `INTERCEPT_*` variables override it (`INTERCEPT_RULES=/etc/intercept/rules`);
without either, the defaults (rules from `./rules`, SearXNG's working folder). SearXNG's
`PluginCfg` accepts nothing but `active`, so nothing can come from `settings.yml`. Rules and
pages load in `init`: a broken rule file or configuration stops SearXNG from starting rather
than serving searches undecided. Counts reach the configured research ledger through the
background thread of `intercept.assembly.start_ledger_thread`.

Importing this module needs SearXNG (`searx`) installed: it is meant to be imported by
SearXNG.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from intercept.assembly import engine_for
from intercept.config import load_config
from intercept.core import Engine
from intercept.doors.wsgi import InterceptWSGI

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
    from flask import Flask

    class _Plugin:
        """The part of `searx.plugins.Plugin` used here (mypy runs without SearXNG)."""

        id: str
        active: bool

        def __init__(self, plg_cfg: Any) -> None: ...

    PluginInfo: Any  # a dataclass in SearXNG

else:
    from searx.plugins import Plugin as _Plugin
    from searx.plugins import PluginInfo

__all__ = ["SXNGPlugin", "install"]

_LOG = logging.getLogger("intercept.searxng")
_EXTENSION = "intercept"
_INNER = ("wsgi_app", "app", "application")  # ReverseProxyPathFix, ProxyFix, WhiteNoise
_DEPTH = 32  # layers followed at most
_SCRIPT_NAME = "intercept.script_name"  # SCRIPT_NAME, kept while Intercept decides


class SXNGPlugin(_Plugin):
    """SearXNG's plugin entry: `init(app)` installs Intercept (see the module docstring)."""

    id = "intercept"

    def __init__(self, plg_cfg: Any) -> None:
        super().__init__(plg_cfg)
        self.info = PluginInfo(
            id=self.id,
            name="Intercept",
            description="Deterrence messages for searches that match curated rules",
            preference_section=None,
        )

    def init(self, app: Flask) -> bool:
        """Install Intercept with the configuration from the environment; False, so that
        SearXNG lists no plugin a searcher could switch off."""
        if _EXTENSION not in app.extensions:
            install(app, engine_for(load_config(), None, "intercept.doors.searxng.SXNGPlugin"))
        return False


def install(app: Flask, engine: Engine) -> Engine:
    """Put Intercept, deciding with `engine`, in front of `app`'s Flask routing, unless it is
    there already; the engine in force is returned (an earlier one wins)."""
    installed = app.extensions.get(_EXTENSION)
    if isinstance(installed, Engine):
        return installed
    app.extensions[_EXTENSION] = engine
    holder, name = _flask_holder(app)
    if holder is None:
        _LOG.warning(
            "intercept: Flask's own wsgi_app was not found under SearXNG's middlewares; "
            "Intercept wraps the outermost one and decides on the path as received"
        )
        holder, name = app, "wsgi_app"
    setattr(holder, name, _OnPathInfo(getattr(holder, name), engine))
    return engine


def _flask_holder(app: Flask) -> tuple[object | None, str]:
    """The layer (and its attribute) that calls Flask's own `wsgi_app` method, or None."""
    holder: object = app
    name = "wsgi_app"
    for _ in range(_DEPTH):
        current = getattr(holder, name)
        if _is_flask_own(current, app):
            return holder, name
        for attribute in _INNER:
            inner = getattr(current, attribute, None)
            if callable(inner) and not inspect.isclass(inner):
                holder, name = current, attribute
                break
        else:
            return None, ""
    return None, ""


def _is_flask_own(layer: object, app: Flask) -> bool:
    return inspect.ismethod(layer) and layer.__self__ is app and layer.__name__ == "wsgi_app"


class _OnPathInfo:
    """Intercept in front of `app`, deciding on the request as Flask routes it: `PATH_INFO`
    without `SCRIPT_NAME`, which is hidden while Intercept decides and restored for `app`."""

    __slots__ = ("app", "intercept")

    def __init__(self, app: WSGIApplication, engine: Engine) -> None:
        self.app = app
        self.intercept = InterceptWSGI(self._restored, engine)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        script = environ.get("SCRIPT_NAME", "")
        if not script:
            return self.intercept(environ, start_response)
        environ[_SCRIPT_NAME] = script
        environ["SCRIPT_NAME"] = ""
        try:
            return self.intercept(environ, start_response)
        finally:
            if _SCRIPT_NAME in environ:  # Intercept answered itself
                environ["SCRIPT_NAME"] = environ.pop(_SCRIPT_NAME)

    def _restored(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if _SCRIPT_NAME in environ:
            environ["SCRIPT_NAME"] = environ.pop(_SCRIPT_NAME)
        return self.app(environ, start_response)
