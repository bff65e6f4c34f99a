# The API: FastAPI + the built frontend. No torch here (the API never imports it).
FROM node:20-bookworm-slim AS frontend
WORKDIR /src/frontend
COPY frontend/package.json frontend/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY frontend/ ./
RUN npm run build

FROM python:3.11-slim-bookworm
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 DATA_DIR=/data HOST=0.0.0.0 PORT=8000 \
    FRONTEND_DIR=/app/frontend/dist
WORKDIR /app
COPY pyproject.toml README.md ./
COPY ddpm/ ddpm/
COPY backend/ backend/
COPY worker/ worker/
RUN pip install '.[api]'
COPY --from=frontend /src/frontend/dist frontend/dist
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --retries=5 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/api/health', timeout=4)"
CMD ["python", "-m", "backend"]
