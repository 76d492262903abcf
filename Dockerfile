FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY client client
COPY agent_sessions agent_sessions
COPY api api
COPY core core
COPY worker worker
# The versions the tests ran with (constraints.txt, written by `make lock`); the client from ./client in the
# same command (the server depends on it). The flower extra serves compose's optional `flower` profile; Redis
# is compose's own service, so no `embedded` extra.
RUN pip install --no-cache-dir -c constraints.txt ./client ".[flower]"
EXPOSE 3000
CMD ["agent-sessions", "api", "--host", "0.0.0.0"]
