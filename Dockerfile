# splitgate data plane. Build: docker build -t splitgate .
# Run:   docker run -p 8080:8080 -v $PWD/config/examples/routes.yaml:/etc/splitgate/routes.yaml splitgate
#        (the control plane: docker run --entrypoint splitgate ... splitgate control --config ...)
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
COPY config/examples/routes.yaml /etc/splitgate/routes.yaml
USER 10001
ENV SPLITGATE_CONFIG=/etc/splitgate/routes.yaml \
    SPLITGATE_LISTEN=0.0.0.0:8080 \
    PYTHONUNBUFFERED=1
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=2s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)" || exit 1
ENTRYPOINT ["splitgate", "proxy"]
