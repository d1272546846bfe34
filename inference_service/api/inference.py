"""POST /detect, /embed, /recognize, /verify: read the upload, run the job on a worker, answer."""

from __future__ import annotations

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile

from ..analysis import photos
from .app_state import Services
from .deps import ServicesDep
from .schemas import DetectResponse, EmbedResponse, RecognizeResponse, VerifyResponse, error_responses
from .security import require_read_key
from .uploads import read_upload, upload_label

router = APIRouter(tags=["inference"], dependencies=[Depends(require_read_key)])

IMAGE_ERRORS = error_responses(400, 401, 408, 413, 415, 422, 503)
IMAGE_DOC = "The photo: JPEG, PNG, WebP, BMP, GIF or TIFF."
THRESHOLD_DOC = "Cosine threshold for this request, -1 to 1; default is the embedder's (see /health)."


def _threshold(services: Services, form_value: float | None, query_value: float | None) -> float:
    """The form field wins over the query parameter; neither means the service's threshold."""
    if form_value is not None:
        return form_value
    if query_value is not None:
        return query_value
    return services.engine.threshold


@router.post(
    "/detect",
    response_model=DetectResponse,
    responses=IMAGE_ERRORS,
    summary="Find the faces in a photo",
)
async def detect(
    services: ServicesDep,
    image: UploadFile = File(description=IMAGE_DOC),
) -> dict:
    data = await read_upload(image)
    return await services.pool.run(
        photos.detect, services.engine, data, services.pixel_limits, upload_label(image, "image")
    )


@router.post(
    "/embed",
    response_model=EmbedResponse,
    responses=IMAGE_ERRORS,
    summary="Find the faces in a photo and return an embedding for each",
)
async def embed(
    services: ServicesDep,
    image: UploadFile = File(description=IMAGE_DOC),
) -> dict:
    data = await read_upload(image)
    return await services.pool.run(
        photos.embed, services.engine, data, services.pixel_limits, upload_label(image, "image")
    )


@router.post(
    "/recognize",
    response_model=RecognizeResponse,
    responses=IMAGE_ERRORS,
    summary="Find the faces in a photo and name the enrolled ones",
)
async def recognize(
    services: ServicesDep,
    image: UploadFile = File(description=IMAGE_DOC),
    threshold_form: float | None = Form(None, alias="threshold", ge=-1.0, le=1.0, description=THRESHOLD_DOC),
    threshold_query: float | None = Query(None, alias="threshold", ge=-1.0, le=1.0, description=THRESHOLD_DOC),
) -> dict:
    threshold = _threshold(services, threshold_form, threshold_query)
    data = await read_upload(image)
    return await services.pool.run(
        photos.recognize,
        services.engine,
        services.gallery,
        data,
        services.pixel_limits,
        threshold,
        upload_label(image, "image"),
    )


@router.post(
    "/verify",
    response_model=VerifyResponse,
    responses=IMAGE_ERRORS,
    summary="Are the largest faces of two photos the same person?",
)
async def verify(
    services: ServicesDep,
    image_a: UploadFile = File(description="First photo; its largest face is compared."),
    image_b: UploadFile = File(description="Second photo; its largest face is compared."),
    threshold_form: float | None = Form(None, alias="threshold", ge=-1.0, le=1.0, description=THRESHOLD_DOC),
    threshold_query: float | None = Query(None, alias="threshold", ge=-1.0, le=1.0, description=THRESHOLD_DOC),
) -> dict:
    threshold = _threshold(services, threshold_form, threshold_query)
    data_a = await read_upload(image_a)
    data_b = await read_upload(image_b)
    return await services.pool.run(photos.verify, services.engine, data_a, data_b, services.pixel_limits, threshold)
