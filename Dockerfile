FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY api api
COPY core core
COPY worker worker
# The flower extra serves compose's optional `flower` profile.
RUN pip install --no-cache-dir ".[flower]"
EXPOSE 3000
CMD ["agent-sessions", "api", "--host", "0.0.0.0"]
