"""OPTIONS answers that name every method of the path.

Litestar 2 builds a controller's routes one handler at a time, and the automatic OPTIONS handler
of a path keeps the methods of the route it was made for: `OPTIONS /v1/projects/{project}`
answered `Allow: GET, OPTIONS` though the path also takes PATCH (litestar-org/litestar#4169,
fixed in Litestar 3). `answer_options_with_every_method(app)` gives each route an OPTIONS handler
made for the route as built."""

from __future__ import annotations

from litestar import Litestar
from litestar.routes import HTTPRoute

_AUTOMATIC = "options_handler"  # the name of the handler Litestar adds to each route


def answer_options_with_every_method(app: Litestar) -> None:
    """Call once, after the app is built."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or "OPTIONS" not in route.route_handler_map:
            continue
        stale, _ = route.route_handler_map["OPTIONS"]
        if stale.handler_name != _AUTOMATIC:
            continue  # a handler of our own
        fresh = route.create_options_handler(route.path)
        fresh.owner = stale.owner
        fresh.on_registration(app)
        route.route_handlers[route.route_handlers.index(stale)] = fresh
        route.route_handler_map["OPTIONS"] = (
            fresh,
            fresh.create_kwargs_model(path_parameters=route.path_parameters),
        )
    app.asgi_router.construct_routing_trie()
