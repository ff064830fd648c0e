# The orchestrator image: API, agents and CLI (one image, the command picks the process).
FROM python:3.11.10-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY orchestrator orchestrator
COPY catalog catalog
COPY service service
COPY agents agents
COPY alerts alerts
COPY dashboards dashboards
COPY loadtest loadtest
COPY stack/__init__.py stack/*.py stack/
COPY stack/k8s stack/k8s
COPY operations operations
# no extras: the image runs the API and agents, without matplotlib or grafana-foundation-sdk
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11.10-slim-bookworm
RUN useradd --create-home --uid 10001 orchestrator
COPY --from=build /install /usr/local
USER orchestrator
WORKDIR /home/orchestrator
ENV ORCH_API_HOST=0.0.0.0 ORCH_METRICS_HOST=0.0.0.0 ORCH_STATE_DIR=/home/orchestrator/state \
    PYTHONUNBUFFERED=1
EXPOSE 8000 9101
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=2)" || exit 1
ENTRYPOINT ["orchestrator"]
CMD ["api"]
