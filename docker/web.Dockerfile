# The Flask site under waitress: Flask, requests, Pillow, pydantic-settings and waitress only
# (no torch, no models), and the API's Python client.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY web_frontend/requirements.txt /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt

COPY face_client/ ./face_client/
COPY web_frontend/ ./web_frontend/
RUN useradd --create-home --uid 10001 app
USER app

EXPOSE 5000
# docker-compose.yml sets WEB_HOST=0.0.0.0 and FACE_API_URL=http://api:8000.
CMD ["python", "-m", "web_frontend"]
