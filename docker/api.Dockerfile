# The inference API with CPU-only torch (the default PyPI torch wheel carries CUDA: gigabytes more).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
# torch/torchvision from the PyTorch CPU wheel index, at the versions pyproject.toml pins.
RUN grep -oE '"(torch|torchvision)==[^"]+"' pyproject.toml | tr -d '"' > /tmp/torch.txt \
 && pip install --index-url https://download.pytorch.org/whl/cpu -r /tmp/torch.txt
# The project's runtime dependencies (no test tools), then the code itself.
COPY face_client/ ./face_client/
COPY inference_service/ ./inference_service/
COPY pipeline/ ./pipeline/
COPY web_frontend/ ./web_frontend/
RUN pip install .

# Named volumes start with the ownership of these folders: the gallery (/data) and the
# downloaded model weights (TORCH_HOME under /models) stay writable for the unprivileged user.
RUN useradd --create-home --uid 10001 app \
 && mkdir -p /data /models/torch \
 && chown -R app:app /data /models
USER app

ENV FACE_GALLERY=/data/gallery.sqlite3 \
    TORCH_HOME=/models/torch
EXPOSE 8000
CMD ["python", "-m", "inference_service"]
