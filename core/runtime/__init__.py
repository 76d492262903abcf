"""The turn runtime: hundreds of turns at once on one event loop, per worker process (or in the API process,
for the queue-less `inline` mode).

- `runner`: claims turns, runs them concurrently up to a limit, settles them; keeps their leases alive,
  takes over turns whose worker died, abandons `interrupt` turns when a newer message arrives, and hands
  unfinished turns back on shutdown.
- `chunks`: coalesces a generation's streamed text into chunk events over a short window.
- `publisher`: publishes events to Redis in order, batched, never dropping a durable one.
"""
