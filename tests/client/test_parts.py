"""A file sent in parts by tiers-client to a real ``tiers serve`` through a proxy that the test
uses to cut the connection: a part cut off on its way is sent again and applied once, a part
whose answer is lost is sent again and recognised, a run stopped half-way is resumed, and each
time the output is byte for byte that of the file sent in one upload."""

from __future__ import annotations

import csv
import io
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tiers_client import AsyncClient, Client
from tiers_client.models import FileResult

from tests.api.test_file_parts import CONTENT
from tests.client.conftest import Service
from tests.conftest import run_coroutine

pytestmark = pytest.mark.slow  # a real server

PART = 256 * 1024
COLUMNS = ["card=card", "email=email"]


@dataclass
class Cutter:
    """A TCP proxy in front of the service that cuts the connection carrying part ``part``:
    after ``after`` bytes of its request (``way="request"``), or when its answer starts
    (``way="answer"``); once."""

    target: int
    part: int
    way: str
    after: int = 100_000
    armed: bool = True
    cuts: int = 0
    server: socket.socket = field(default_factory=socket.socket)

    def start(self) -> int:
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()
        return int(self.server.getsockname()[1])

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            state = {"seen": -1}
            threading.Thread(
                target=self._pump, args=(downstream, upstream, state, True), daemon=True
            ).start()
            threading.Thread(
                target=self._pump, args=(upstream, downstream, state, False), daemon=True
            ).start()

    def _pump(
        self, source: socket.socket, sink: socket.socket, state: dict[str, int], request: bool
    ) -> None:
        marker = f"/parts/{self.part} HTTP".encode()
        try:
            while data := source.recv(65536):
                if request and self.armed and marker in data:
                    state["seen"] = 0
                if request and state["seen"] >= 0:
                    state["seen"] += len(data)
                    if self.way == "request" and state["seen"] > self.after:
                        return self._cut(source, sink)
                if not request and state["seen"] >= 0 and self.way == "answer" and self.armed:
                    return self._cut(source, sink)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                end.close()

    def _cut(self, source: socket.socket, sink: socket.socket) -> None:
        self.armed = False
        self.cuts += 1
        for end in (source, sink):
            end.shutdown(socket.SHUT_RDWR)
            end.close()

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "customers.csv"
    path.write_bytes(CONTENT)
    return path


@pytest.fixture
def single(service: Service, source: Path, tmp_path: Path) -> bytes:
    with Client(service.url, service.keys["casino-app"], purpose="tests") as casino:
        result = casino.tokenise_file(source, tmp_path / "single.csv", columns=COLUMNS)
    assert "done" == result.job.state
    return Path(result.output).read_bytes()


@contextmanager
def _cutter(service: Service, way: str) -> Iterator[tuple[Cutter, str]]:
    cutter = Cutter(int(service.url.rsplit(":", 1)[1]), part=2, way=way)
    port = cutter.start()
    try:
        yield cutter, f"http://127.0.0.1:{port}"
    finally:
        cutter.close()


@pytest.mark.parametrize("way", ["request", "answer"])
def test_a_connection_cut_during_a_part_costs_that_part_only(
    service: Service, source: Path, single: bytes, tmp_path: Path, way: str
) -> None:
    with _cutter(service, way) as (cutter, url):
        with Client(url, service.keys["casino-app"], purpose="tests", backoff=0.1) as casino:
            seen: list[int] = []
            result = casino.tokenise_file(
                source, tmp_path / "out.csv", columns=COLUMNS, part_bytes=PART,
                progress=lambda done, _total: seen.append(done),
            )  # fmt: skip
        assert 1 == cutter.cuts
    assert ("done", 30_000, 2) == (result.job.state, result.job.rows_in, result.job.rows_rejected)
    assert single == Path(result.output).read_bytes()
    assert len(CONTENT) == seen[-1] and seen == sorted(seen)


class _Stop(Exception):
    pass


def test_a_run_stopped_half_way_is_resumed_where_the_service_says(
    service: Service, source: Path, single: bytes, tmp_path: Path
) -> None:
    def stop_after_two(done: int, _total: int | None) -> None:
        if done >= 2 * PART:
            raise _Stop

    with Client(service.url, service.keys["casino-app"], purpose="tests") as casino:
        with pytest.raises(_Stop):
            casino.tokenise_file(
                source, tmp_path / "out.csv", columns=COLUMNS, part_bytes=PART,
                progress=stop_after_two,
            )  # fmt: skip
        assert not (tmp_path / "out.csv").exists()
        [running] = [job for job in casino.jobs() if job.state == "running"]
        job = casino.job(running.id)
        assert ("running", 2, 2 * PART) == (job.state, job.parts, job.bytes_received)
        # Resumed in parts of another size: the service says where to start.
        result = casino.tokenise_file(
            source, tmp_path / "out.csv", columns=COLUMNS, part_bytes=PART // 3, resume=job.id
        )
    assert (job.id, "done") == (result.job.id, result.job.state)
    assert single == Path(result.output).read_bytes()


def test_the_async_client_sends_in_parts_too(
    service: Service, source: Path, single: bytes, tmp_path: Path
) -> None:
    async def send() -> FileResult:
        async with AsyncClient(service.url, service.keys["casino-app"], purpose="tests") as casino:
            return await casino.tokenise_file(
                source, tmp_path / "out.csv", columns=COLUMNS, part_bytes=PART
            )

    result = run_coroutine(send())
    assert ("done", 30_000) == (result.job.state, result.job.rows_in)
    assert single == Path(result.output).read_bytes()


def _as_parquet(source: Path, target: Path) -> Path:
    """The CSV file as Parquet with typed columns (a number column), as a data team has it."""
    import pyarrow.csv as pa_csv  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    options = pa_csv.ParseOptions(delimiter=";")
    pq.write_table(pa_csv.read_csv(source, parse_options=options), target, row_group_size=7_000)
    return target


def test_a_parquet_file_goes_as_its_csv_export_and_comes_back_as_parquet(
    service: Service, source: Path, tmp_path: Path
) -> None:
    import pyarrow.parquet as pq  # noqa: PLC0415

    parquet = _as_parquet(source, tmp_path / "customers.parquet")
    export = tmp_path / "export.csv"  # what the client sends: the cells' text, comma-separated
    table = pq.read_table(parquet)
    with open(export, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(table.column_names)
        writer.writerows(
            zip(*[[str(v) for v in c.to_pylist()] for c in table.columns], strict=True)
        )
    with Client(service.url, service.keys["casino-app"], purpose="tests") as casino:
        by_csv = casino.tokenise_file(export, tmp_path / "by-csv.csv", columns=COLUMNS)
        whole = casino.tokenise_file(parquet, tmp_path / "whole.csv", columns=COLUMNS)
        parts = casino.tokenise_file(
            parquet, tmp_path / "parts.parquet", columns=COLUMNS, part_bytes=PART
        )
    expected = Path(by_csv.output).read_bytes()
    assert expected == Path(whole.output).read_bytes()
    assert (30_000, 2) == (parts.job.rows_in, parts.job.rows_rejected)
    back = pq.read_table(tmp_path / "parts.parquet")
    rows = list(csv.reader(io.StringIO(expected.decode(), newline="")))
    assert rows[0] == back.column_names
    assert rows[1:] == [list(r) for r in zip(*[c.to_pylist() for c in back.columns], strict=True)]
    assert not list(tmp_path.glob(".*"))  # no download left beside the outputs
