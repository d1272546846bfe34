"""A Python client of the face API, importable without torch::

from face_client import FaceClient, ApiError, Upload

api = FaceClient("http://127.0.0.1:8000", api_key="...", timeout=30)
for face in api.recognize(open("group.jpg", "rb").read())["faces"]:
    print(face["identity"] or "unknown", face["similarity"])
"""

from .client import FaceClient, Upload
from .errors import ApiError

__all__ = ["ApiError", "FaceClient", "Upload"]
