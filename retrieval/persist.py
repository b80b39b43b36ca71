"""Files under the index folder: the manifest (the commit point), the write lock, and cleanup.

A write never changes a file in place. New FAISS and BM25 files are written under names that
carry the generation they reflect, fsynced, renamed into place, and only then does a new
`manifest.json` (itself written to a temporary file and renamed) point at them. A crash at any
moment leaves the previous manifest and the files it names intact.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from core.errors import IndexLockedError, IndexStateError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DATABASE = "library.sqlite"
LOCK = "write.lock"


def read_manifest(folder: Path) -> dict | None:
    """The committed manifest, or None for a new index."""
    path = folder / MANIFEST
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        raise IndexStateError(f"{path} is unreadable ({exc}); run `labmate index rebuild`.") from exc
    if data.get("format_version", 0) > FORMAT_VERSION:
        raise IndexStateError(
            f"{folder} was written by a newer labmate (format {data['format_version']}); upgrade labmate."
        )
    return data


def write_manifest(folder: Path, manifest: dict) -> None:
    """Atomically replace the manifest: the single moment a new generation becomes visible."""
    atomic_write_bytes(folder / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    """Make a rename durable (the directory entry itself must reach the disk)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    fsync_dir(folder)


def commit_path(tmp: Path, final: Path) -> None:
    """Rename a fully written temporary file or folder to its final name, durably."""
    if tmp.is_dir():
        fsync_tree(tmp)
    else:
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
    os.replace(tmp, final)
    fsync_dir(final.parent)


def remove_stale(folder: Path, keep: set[str]) -> None:
    """Delete generation files and temporaries the manifest no longer names."""
    for path in folder.iterdir():
        is_generated = path.name.startswith(("vectors.", "bm25.", ".vectors.", ".bm25.", ".manifest"))
        if is_generated and path.name not in keep:
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


@contextmanager
def write_lock(folder: Path, timeout: float = 0.0) -> Iterator[None]:
    """Exclusive writer lock (flock, so a killed writer releases it); readers never take it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK
    handle = open(path, "a+")
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    handle.seek(0)
                    owner = handle.read().strip() or "another process"
                    raise IndexLockedError(
                        f"The index at {folder} is being written by {owner}. Wait for it to finish "
                        "and try again (searches keep working meanwhile)."
                    ) from None
                time.sleep(0.1)
        handle.seek(0)
        handle.truncate()
        handle.write(f"labmate pid {os.getpid()}")
        handle.flush()
        yield
    finally:
        handle.close()  # closing releases the flock


@contextmanager
def lock_if_free(folder: Path) -> Iterator[bool]:
    """Hold the write lock if nobody else does: yields True while held, False if another
    process is writing (for opportunistic repairs that may simply be skipped)."""
    lock = write_lock(folder, 0.0)
    try:
        lock.__enter__()
    except IndexLockedError:
        yield False
        return
    try:
        yield True
    finally:
        lock.__exit__(None, None, None)


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
