"""The Flask site over the inference API: recognise faces in a photo, enroll people, prune the gallery."""
