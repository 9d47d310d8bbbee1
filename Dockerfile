# splitgate: the data plane (the default command) and the control plane, in one image.
#
# Build:  docker build -t splitgate:0.1.0 .
# Proxy:  docker run --rm -p 8080:8080 -p 8089:8089 \
#           -v "$PWD/routes.yaml:/etc/splitgate/routes.yaml:ro" splitgate:0.1.0
#         The image ships no routing file: mount yours at /etc/splitgate/routes.yaml, its
#         upstreams reachable from the container (not 127.0.0.1, the container itself).
#         Clients on 8080; /metrics, /healthz and /readyz on 8089 (SPLITGATE_OPS_LISTEN).
#         Add -e SPLITGATE_REDIS_URL=redis://redis:6379/0 to follow live weights.
# Control plane:
#         docker run --rm -p 8081:8081 \
#           -e SPLITGATE_REDIS_URL=redis://redis:6379/0 \
#           -e SPLITGATE_ADMIN_TOKEN="$(openssl rand -hex 24)" \
#           -v "$PWD/routes.yaml:/etc/splitgate/routes.yaml:ro" splitgate:0.1.0 control
#         The admin API (and /ui/, /readyz, /metrics) on 8081 (SPLITGATE_CONTROL_LISTEN).
# Stop:   SIGTERM; the proxy stops taking connections and drains open requests for up to
#         timeouts.drain (30 s by default). Docker's default stop timeout is 10 s: use
#         `docker stop -t 40` (compose: stop_grace_period: 40s) or open streams are cut.
# Settings: docs/SETTINGS.md. Kubernetes and compose: deploy/, docs/DEPLOY.md.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY config ./config
COPY proxy ./proxy
COPY control ./control
COPY splitgate ./splitgate
COPY loadtests ./loadtests
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --no-create-home splitgate
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 10001
ENV SPLITGATE_CONFIG=/etc/splitgate/routes.yaml \
    SPLITGATE_LISTEN=0.0.0.0:8080 \
    SPLITGATE_OPS_LISTEN=0.0.0.0:8089 \
    SPLITGATE_CONTROL_LISTEN=0.0.0.0:8081 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
EXPOSE 8080 8089 8081
STOPSIGNAL SIGTERM
# Ready, not merely alive: a proxy without a routing file never starts, a draining one is
# not ready. Whichever plane runs answers on its own port.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s CMD ["splitgate", "probe"]
ENTRYPOINT ["splitgate"]
CMD ["proxy"]
