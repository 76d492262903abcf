"""The composition root: the `agent-sessions` command that starts the API, the workers, the beat, or all of them.

It alone knows every part (api/, worker/, core/); core/ knows neither the edges nor this package.
"""
