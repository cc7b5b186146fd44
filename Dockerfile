# vtconnect serve in a container: TAXII 2.1 on 9443, webhook receiver on 9080.
#   docker build -t vtconnect .
#   docker run -v ./vtconnect.toml:/etc/vtconnect/vtconnect.toml:ro -e VT_API_KEY \
#     -v vtconnect-state:/var/lib/vtconnect -p 9443:9443 -p 9080:9080 vtconnect
# The servers bind 127.0.0.1 unless told otherwise: set host = "0.0.0.0" under [taxii] and
# [webhook] in the mounted vtconnect.toml so the published ports reach them.
FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY connectors ./connectors
COPY taxii ./taxii
RUN python -m venv /opt/vtconnect \
 && /opt/vtconnect/bin/pip install --no-cache-dir --disable-pip-version-check '.[postgres]'

FROM python:3.12-slim
RUN groupadd --system --gid 10001 vtconnect \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/vtconnect --shell /usr/sbin/nologin vtconnect \
 && mkdir -p /var/lib/vtconnect /etc/vtconnect \
 && chown vtconnect:vtconnect /var/lib/vtconnect \
 && chmod 0700 /var/lib/vtconnect
COPY --from=build /opt/vtconnect /opt/vtconnect
ENV PATH=/opt/vtconnect/bin:$PATH \
    VTCONNECT_CONFIG=/etc/vtconnect/vtconnect.toml \
    XDG_STATE_HOME=/var/lib \
    PYTHONUNBUFFERED=1
USER 10001:10001
VOLUME ["/var/lib/vtconnect"]
EXPOSE 9443 9080
STOPSIGNAL SIGTERM
ENTRYPOINT ["vtconnect"]
CMD ["serve", "--taxii", "--webhook"]
