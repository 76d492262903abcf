"""A worker's turn: answer one session's next waiting message(s), in three steps.

- `claim`: under the session's row lock, pick what this turn answers (double texting decides), mark it
  `processing` with a lease, and load the context the agent needs;
- `run`: call the agent, streaming its chunks, with retries and the agent's circuit breaker;
- `settle`: store the reply (or the failure) with its events, in one transaction.

Plain async functions over a unit of work: `core/runtime` schedules them, tests call them directly.
"""
