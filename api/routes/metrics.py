from __future__ import annotations

from litestar import Response, get
from prometheus_client import CONTENT_TYPE_LATEST

from api.dependencies import ResourcesDep, UnitOfWorkDep
from core.services.health import count_open_sessions


@get("/metrics", include_in_schema=False, summary="Prometheus metrics of this API process")
async def serve_metrics(uow: UnitOfWorkDep, resources: ResourcesDep) -> Response[bytes]:
    queue = resources.settings.celery_queue
    body = resources.metrics.render(listeners=resources.hub.listener_count,
                                    sessions_by_status=await count_open_sessions(uow), queue=queue,
                                    queue_depth=await resources.redis.llen(resources.keys.task_queue(queue)))
    return Response(body, media_type=CONTENT_TYPE_LATEST)
