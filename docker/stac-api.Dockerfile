# A STAC API (stac-fastapi-pgstac) for docker/compose.yaml: migrates the pgstac schema, then serves on port 8081.
# Same versions as the test suite's real STAC API (pyproject.toml [test] extras).
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}
ARG PIP_CERT=
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ENABLED_EXTENSIONS=query,filter,sort,fields,pagination,collection_search \
    ENABLE_TRANSACTIONS_EXTENSIONS=false
RUN pip install ${PIP_CERT:+--cert "$PIP_CERT"} "stac-fastapi-pgstac==7.2.0" "pypgstac[psycopg]==0.10.0" "uvicorn==0.54.0" \
    && useradd --uid 1001 --gid 0 stac
USER 1001:0
EXPOSE 8081
# PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE come from the environment (compose.yaml).
CMD ["sh", "-c", "pypgstac migrate && exec uvicorn --factory stac_fastapi.pgstac.app:create_app --host 0.0.0.0 --port 8081"]
