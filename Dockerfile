FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY client client
COPY agent_sessions agent_sessions
COPY api api
COPY core core
COPY worker worker
# The client from ./client in the same command (the server depends on it); the flower extra serves
# compose's optional `flower` profile.
RUN pip install --no-cache-dir ./client ".[flower]"
EXPOSE 3000
CMD ["agent-sessions", "api", "--host", "0.0.0.0"]
