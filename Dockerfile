FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY api api
COPY core core
COPY worker worker
RUN pip install --no-cache-dir .
EXPOSE 3000
CMD ["agent-sessions", "api", "--host", "0.0.0.0"]
