from __future__ import annotations

from celery import Celery

from core.settings import Settings, get_settings
from worker import observability  # noqa: F401  (connects the logging signal receivers)


def create_celery_app(settings: Settings | None = None) -> Celery:
    """A configured Celery app. Creating it connects to nothing; workers connect when they start."""
    settings = settings or get_settings()
    app = Celery("agent_sessions", broker=settings.redis_url, include=["worker.tasks"])
    app.conf.update(
        task_default_queue=settings.celery_queue,
        # No result backend: the API hears about replies on the event bus.
        task_ignore_result=True,
        result_backend=None,
        # A worker killed mid-task leaves the task to be redelivered; our handler is idempotent.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"global_keyprefix": settings.redis_prefix, "visibility_timeout": 3600},
        task_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
        beat_schedule={
            # A sweep still queued when the next is due is dropped: it would repeat the next one's work.
            "sessions.sweep": {"task": "sessions.sweep", "schedule": settings.sweep_interval_seconds,
                               "options": {"expires": settings.sweep_interval_seconds}},
        },
    )
    return app


app = create_celery_app()
