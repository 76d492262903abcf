"""Celery app, tasks and beat schedule. Tasks are thin: ids in, a `core` handler called, retries declared."""
