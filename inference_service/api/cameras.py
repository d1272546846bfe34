"""GET /cameras (each camera's state, rates and lag, who is in view), start and stop by name.

Cameras are configured by the operator (``FACE_CAMERAS``); no request can add one or name a URL.
Reading needs the read key where one is set; starting and stopping need the write key.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException

from ..cameras import Cameras, UnknownCameraError
from .deps import CamerasDep
from .schemas import error_responses
from .security import require_api_key, require_read_key

router = APIRouter(prefix="/cameras", tags=["cameras"])


def _one(cameras: Cameras, name: str, action: str | None = None) -> dict[str, Any]:
    try:
        if action == "start":
            return cameras.start(name)
        if action == "stop":
            return cameras.stop(name)
        return cameras.get(name).describe()
    except UnknownCameraError as exc:
        raise HTTPException(status_code=404, detail=exc.detail) from None


@router.get(
    "", dependencies=[Depends(require_read_key)], responses=error_responses(401), summary="Every camera's state"
)
async def list_cameras(cameras: CamerasDep) -> dict[str, Any]:
    return {"cameras": cameras.describe()}


@router.get(
    "/{name}",
    dependencies=[Depends(require_read_key)],
    responses=error_responses(401, 404, 422),
    summary="One camera's state",
)
async def camera(cameras: CamerasDep, name: str) -> dict[str, Any]:
    return _one(cameras, name)


@router.post(
    "/{name}/start",
    dependencies=[Depends(require_api_key)],
    responses=error_responses(401, 404, 422),
    summary="Watch a configured camera",
)
def start_camera(cameras: CamerasDep, name: str) -> dict[str, Any]:
    return _one(cameras, name, "start")


@router.post(
    "/{name}/stop",
    dependencies=[Depends(require_api_key)],
    responses=error_responses(401, 404, 422),
    summary="Stop watching a camera",
)
def stop_camera(cameras: CamerasDep, name: str) -> dict[str, Any]:
    # a plain def: FastAPI runs it on a thread, since stopping waits for the reader to let go
    return _one(cameras, name, "stop")
