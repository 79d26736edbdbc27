"""Where finished files live: job outputs and inbox deliveries.

A file is written whole on the local disk first (a *staging* path in the home, under a
temporary name until complete), then *published* in the transaction that lists it, so that a
reader only ever sees complete files. Where it then lives depends on the database:

- SQLite, one host (:class:`HomeFiles`): the staging path is the file's place; publishing moves
  nothing.
- PostgreSQL, any number of nodes (:class:`DatabaseFiles`): the file is copied into the database
  in chunks of :data:`CHUNK` bytes and removed from the disk, so that any node serves a file any
  other node wrote. A reader reads one snapshot of the chunks, so a deletion meanwhile cannot cut
  a download short; a deleted file is never half served.

Names are paths under the home with ``/``: ``jobs/<id>/output.csv``, ``inbox/<id>.csv``. A name
that ends with ``/`` in :meth:`FileStore.delete` is a folder and everything in it.
"""

from __future__ import annotations

import io
import os
import shutil
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

from sqlalchemy import Connection, Engine

from tiers.storage import stored_files as files_repo

__all__ = ["DatabaseFiles", "FileStore", "file_size", "store_for"]

CHUNK = 1 << 20


def file_size(handle: IO[bytes]) -> int:
    """The size of a file :meth:`FileStore.open` opened."""
    size = getattr(getattr(handle, "raw", handle), "size", None)
    return int(size) if size is not None else os.fstat(handle.fileno()).st_size


class FileStore(ABC):
    """The finished files of one deployment (see the module docstring)."""

    def __init__(self, home: Path) -> None:
        self.home = home

    def staging(self, name: str) -> Path:
        """Where file ``name`` is written before it is published (its folder exists)."""
        path = self.home.joinpath(*name.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        return path

    @abstractmethod
    def publish(self, connection: Connection, name: str) -> None:
        """Make the complete staged file ``name`` the stored one, in ``connection``'s
        transaction."""

    @abstractmethod
    def open(self, name: str) -> IO[bytes]:
        """File ``name`` for reading, whole (see :func:`file_size`); raises
        :class:`FileNotFoundError` when there is none."""

    @abstractmethod
    def delete(self, names: Sequence[str], connection: Connection | None = None) -> None:
        """Delete files and folders (names ending with ``/``), in ``connection``'s transaction
        when given; files staged for them on this host go too."""

    @abstractmethod
    def names(self, prefix: str) -> list[str]:
        """The names of the stored files that start with ``prefix``, sorted."""

    @abstractmethod
    def put_bytes(self, connection: Connection, name: str, data: bytes) -> None:
        """Store ``data`` as file ``name`` at once (a restored backup's files)."""

    def read_bytes(self, name: str) -> bytes:
        with self.open(name) as handle:
            return handle.read()

    def _remove_staged(self, names: Sequence[str]) -> None:
        for name in names:
            path = self.home.joinpath(*name.rstrip("/").split("/"))
            if name.endswith("/"):
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


class HomeFiles(FileStore):
    """Files of the home's folders (SQLite: one host)."""

    def publish(self, connection: Connection, name: str) -> None:
        if not self.staging(name).is_file():
            raise FileNotFoundError(name)

    def open(self, name: str) -> IO[bytes]:
        return open(self.home.joinpath(*name.split("/")), "rb")

    def delete(self, names: Sequence[str], connection: Connection | None = None) -> None:
        self._remove_staged(names)

    def names(self, prefix: str) -> list[str]:
        folder = prefix.rpartition("/")[0]
        directory = self.home.joinpath(*folder.split("/")) if folder else self.home
        if not directory.is_dir():
            return []
        found = (path.relative_to(self.home).as_posix() for path in directory.rglob("*"))
        return sorted(
            name
            for name in found
            if name.startswith(prefix)
            and (self.home / name).is_file()
            and not any(part.startswith(".") for part in name.split("/"))
        )

    def put_bytes(self, connection: Connection, name: str, data: bytes) -> None:
        self.staging(name).write_bytes(data)


class DatabaseFiles(FileStore):
    """Files in the database's ``stored_files`` (PostgreSQL: any number of nodes)."""

    def __init__(self, home: Path, engine: Engine, *, chunk: int = CHUNK) -> None:
        super().__init__(home)
        self._engine = engine
        self._chunk = chunk

    def publish(self, connection: Connection, name: str) -> None:
        path = self.staging(name)
        with path.open("rb") as handle:
            files_repo.add_chunks(
                connection, name=name, chunks=iter(lambda: handle.read(self._chunk), b"")
            )
        path.unlink()  # in the database now; a rollback leaves it unlisted anyway

    def open(self, name: str) -> IO[bytes]:
        return io.BufferedReader(_DatabaseFile(self._engine, name), CHUNK)

    def delete(self, names: Sequence[str], connection: Connection | None = None) -> None:
        files = [n for n in names if not n.endswith("/")]
        folders = [n for n in names if n.endswith("/")]
        if connection is None:
            with self._engine.begin() as own:
                files_repo.remove(own, names=files, prefixes=folders)
        else:
            files_repo.remove(connection, names=files, prefixes=folders)
        self._remove_staged(names)

    def names(self, prefix: str) -> list[str]:
        with self._engine.connect() as connection:
            return files_repo.names(connection, prefix=prefix)

    def put_bytes(self, connection: Connection, name: str, data: bytes) -> None:
        step = self._chunk
        chunks = [data[start : start + step] for start in range(0, len(data), step)]
        files_repo.add_chunks(connection, name=name, chunks=chunks)


class _DatabaseFile(io.RawIOBase):
    """A stored file read chunk by chunk in one repeatable-read transaction of its own."""

    def __init__(self, engine: Engine, name: str) -> None:
        self._connection = engine.connect()
        try:
            self._connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            sizes = files_repo.chunk_sizes(self._connection, name=name)
        except BaseException:
            self._connection.close()
            raise
        if not sizes:
            self._connection.close()
            raise FileNotFoundError(name)
        self.name_ = name
        self.size = sum(sizes)
        self._chunks: Iterator[int] = iter(range(len(sizes)))
        self._left = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._left:
            number = next(self._chunks, None)
            if number is None:
                return 0
            data = files_repo.chunk(self._connection, name=self.name_, number=number)
            if data is None:  # not in the snapshot: cannot happen under repeatable read
                raise OSError("a stored file lost a chunk while it was read")
            self._left = data
        size = min(len(target), len(self._left))
        target[:size] = self._left[:size]
        self._left = self._left[size:]
        return size

    def close(self) -> None:
        if not self.closed:
            self._connection.close()
        super().close()


def store_for(home: Path, engine: Engine, *, embedded: bool) -> FileStore:
    """The store of a deployment: its home's folders on SQLite, its database otherwise."""
    return HomeFiles(home) if embedded else DatabaseFiles(home, engine)
