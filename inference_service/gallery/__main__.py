"""``python -m inference_service.gallery copy SRC DST``: move a gallery between stores.

SRC and DST are what ``FACE_GALLERY`` takes (a SQLite path or ``sqlite:///path``, or
``postgresql://...``), in either direction. Faces keep their ids, names, boxes and times; a face
whose id DST already holds is skipped, so an interrupted copy is finished by running it again.
A DST written by another embedder is refused: its vectors cannot be compared with SRC's.
"""

from __future__ import annotations

import argparse
import logging
import sys

from .errors import GalleryError
from .factory import describe, is_postgres, open_store, sqlite_path, stored_embedder

BATCH = 5_000  # faces per transaction: bounded memory per write, few round trips


def copy_gallery(src: str, dst: str, batch: int = BATCH) -> dict[str, int]:
    """Copy every face of ``src`` missing from ``dst``; returns counts. Raises GalleryError."""
    if not is_postgres(src) and not sqlite_path(src).is_file():
        raise GalleryError(f"source gallery {describe(src)} does not exist")
    source = open_store(src)
    try:
        embedder = source.embedder()
        records = source.load_all()
        terms = source.all_terms()  # consent records and expiries travel with the faces
    finally:
        source.close()
    if embedder is None or not records:
        return {"copied": 0, "skipped": 0, "identities": 0}
    stored = stored_embedder(dst)
    if stored is not None and stored != embedder:
        raise GalleryError(
            f"{describe(dst)} holds {stored} embeddings and {describe(src)} {embedder} ones; vectors of "
            "different models cannot be mixed in one gallery"
        )
    dim = len(records[0].embedding)
    target = open_store(dst, embedder, dim)
    try:
        present = {raw.decode() for raw in target.load_table(dim).face_ids}
        missing = [r for r in records if r.face_id not in present]
        for start in range(0, len(missing), batch):
            target.add_faces(missing[start : start + batch])
        target.restore_terms(list(terms.values()))
    finally:
        target.close()
    return {
        "copied": len(missing),
        "skipped": len(records) - len(missing),
        "identities": len({r.identity for r in missing}),
    }


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="python -m inference_service.gallery", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    copy = commands.add_parser("copy", help="copy every face of SRC missing from DST (safe to re-run)")
    copy.add_argument("src", metavar="SRC", help="gallery to read: path, sqlite:///path or postgresql://...")
    copy.add_argument("dst", metavar="DST", help="gallery to write (created when new)")
    copy.add_argument("--batch", type=int, default=BATCH, help=f"faces per transaction (default {BATCH})")
    args = parser.parse_args(argv)
    try:
        counts = copy_gallery(args.src, args.dst, max(1, args.batch))
    except GalleryError as exc:
        print(f"cannot copy: {exc}", file=sys.stderr)
        return 2
    print(
        f"copied {counts['copied']} faces of {counts['identities']} identities from {describe(args.src)} "
        f"to {describe(args.dst)}; {counts['skipped']} already there"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
