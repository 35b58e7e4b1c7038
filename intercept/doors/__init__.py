"""The front doors: I/O around `intercept.core.Engine`, one module per way in.

`frontdoor` is the one routine (begin, read the body, decide, answer) with a sync and an async
driver; `proxy` (with `relay`, `upstream_pool`, `upstream_health`, `deadlines`) is the reverse
proxy, `authz` the decision service behind nginx/Caddy/HAProxy/Traefik/Envoy;
`aiohttp_middleware`, `wsgi`, `asgi` are the middlewares (`middlewares`: what the WSGI and
ASGI ones share) and `searxng` the SearXNG plugin. `wsgi`, `asgi` and `searxng` never import
aiohttp. The documented imports `intercept.wsgi`, `intercept.asgi`,
`intercept.aiohttp_middleware` and `intercept.searxng` re-export these.
"""
