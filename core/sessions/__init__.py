"""The sessions domain: sessions, their messages and their event log.

- `status`: the status values and roles, as enums.
- `statements`: every statement that locks a session or stores an event, built once.
- `uow`: the units of work (async for the API and the worker's turns, sync for the beat): the only code that
  locks session rows, numbers events, stores them and publishes them after commit.
- `double_texting`: what a message sent while another waits does, for the API and the worker alike.
"""
