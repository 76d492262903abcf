"""The HTTP edge: Litestar app, routes, error mapping. Logic lives in `core/`."""
