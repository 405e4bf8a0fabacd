"""`GET /metrics`: the API process's Prometheus metrics, for the operator's scraper."""

from __future__ import annotations

from litestar import Controller, Response, get

from api.security import requires_operator
from resources.metrics import CONTENT_TYPE, render


class MetricsController(Controller):
    tags = ["admin"]

    @get(
        "/metrics",
        operation_id="metrics",
        guards=[requires_operator],
        sync_to_thread=True,  # the database-backed metrics are read while scraping
        media_type=CONTENT_TYPE,
    )
    def metrics(self) -> Response[bytes]:
        """Prometheus text format 0.0.4: HTTP requests and latency by route template and status,
        chat completions, tokens and latency by runtime, uploads by outcome, quarantined
        documents by reason, runs by status, pipeline stage durations, the process. Needs the
        operator token; PRIVATUNE_METRICS_PORT also serves them without one on 127.0.0.1."""
        return Response(render(), media_type=CONTENT_TYPE)
