"""Use cases. Async functions serve the API (through an AsyncUnitOfWork); they flush, never commit."""
