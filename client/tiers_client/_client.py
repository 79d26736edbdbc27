"""The synchronous and asynchronous clients. Both send the calls of :mod:`tiers_client._calls`;
they differ only in how they wait."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tiers_client import _calls as calls
from tiers_client._blind_file import BlindFileReport, tokenise_blind
from tiers_client._calls import Call
from tiers_client._extras import blind_extra
from tiers_client._parquet import is_parquet, written_as
from tiers_client._transfer import (
    PART_BYTES,
    Counted,
    Progress,
    atomic_target,
    parts_of,
    total_of,
)
from tiers_client.blind import (
    BATCH,
    Blinded,
    BlindSetupError,
    blind_batch,
    refused_only,
    translated,
    unblinded,
)
from tiers_client.errors import StateConflict, error_for
from tiers_client.models import (
    BlindEvaluation,
    BlindKeys,
    CampaignReport,
    CardState,
    Delivery,
    ExchangeReport,
    FileResult,
    Job,
    LinkOutcome,
    Resolution,
    ValueRefused,
    Verification,
    WhoAmI,
)

__all__ = ["AsyncClient", "Client"]

T = TypeVar("T")
RETRIED = frozenset({429, 503})
MAX_WAIT = 60.0


class _Base:
    """What both clients hold: the address, the key (never shown), the purpose, the retries."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        purpose: str | None = None,
        timeout: float = 300.0,
        retries: int = 3,
        backoff: float = 0.5,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.purpose = purpose
        self.retries = retries
        self.backoff = backoff
        self._timeout = timeout
        self._api_key = api_key

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r}, purpose={self.purpose!r})"

    def _headers(self, purpose: str | None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self._api_key}", "User-Agent": "tiers-client"}
        if (chosen := purpose or self.purpose) is not None:
            headers["X-Purpose"] = chosen
        return headers

    def _again(self, call: Call[Any], attempt: int) -> bool:
        """Whether ``call``, whose connection was lost before its answer, is sent again."""
        return call.idempotent and attempt < self.retries

    def _wait(self, call: Call[Any], response: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before sending ``call`` again, or None to answer now."""
        if response.status_code not in RETRIED or not call.idempotent or attempt >= self.retries:
            return None
        return min(_retry_after(response) or self.backoff * 2**attempt, MAX_WAIT)

    def _exchange(
        self, source: Path | str, exchange_type: str, delimiter: str | None, encoding: str,
        purpose: str | None,
    ) -> tuple[dict[str, str], dict[str, str]]:  # fmt: skip
        if is_parquet(source):  # sent as its CSV export
            delimiter, encoding = ",", "utf-8"
        params = {"type": exchange_type, "encoding": encoding}
        if delimiter is not None:
            params["delimiter"] = delimiter
        return params, {**self._headers(purpose), "Content-Type": "text/csv"}

    @staticmethod
    def _read(call: Call[T], response: httpx.Response) -> T:
        _raise_for(response)
        body = response.json() if response.content else None
        return call.read((body, response.headers) if call.with_headers else body)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        code, message = "http_error", f"HTTP {response.status_code}"
    raise error_for(response.status_code, code, message, _retry_after(response))


def _file_job(
    output: Path | str,
    rejects: Path | str | None,
    *,
    source: Path | str,
    columns: Sequence[str],
    keep: Sequence[str],
    delimiter: str | None,
    encoding: str,
    register: bool,
) -> tuple[dict[str, Any], Path, Path]:
    """A file job's parameters, and where its output and rejects go (by default the rejects
    beside the output, as ``<output>.rejects.csv``). A Parquet source is sent as its CSV
    export, comma-separated UTF-8."""
    if is_parquet(source):
        delimiter, encoding = ",", "utf-8"
    params: dict[str, Any] = {"column": list(columns), "encoding": encoding}
    if keep:
        params["keep"] = ",".join(keep)
    if delimiter is not None:
        params["delimiter"] = delimiter
    if not register:
        params["register"] = "false"
    output = Path(output)
    return params, output, Path(rejects or output.with_name(output.name + ".rejects.csv"))


def _parts_options(params: dict[str, Any]) -> dict[str, Any]:
    """A file job's parameters (:func:`_file_job`) as the JSON body that opens a job in parts."""
    body: dict[str, Any] = {"column": params["column"], "encoding": params["encoding"]}
    if "keep" in params:
        body["keep"] = params["keep"].split(",")
    if "delimiter" in params:
        body["delimiter"] = params["delimiter"]
    if "register" in params:
        body["register"] = False
    return body


def _size(source: Path) -> int | None:
    """What progress counts up to: the file's size (unknown for a Parquet file's CSV export)."""
    return None if is_parquet(source) else source.stat().st_size


def _ended(job: Job) -> Job:
    """A job polled until it ended: itself when done, else its error."""
    if job.state != "done":
        raise error_for(409, job.error_code or "job_ended", f"the job {job.state}")
    return job


class Client(_Base):
    """A client of a `tiers` service: ``Client("https://tiers.example", key, purpose="…")``.

    Every call may take ``purpose=`` to override the client's. Reads and other calls that are
    idempotent by design are sent again on 429 and 503, after ``Retry-After``; a call that may
    have changed something is never sent twice, and its error carries ``retry_after``."""

    def __init__(self, base_url: str, api_key: str, **options: Any) -> None:
        super().__init__(base_url, api_key, **options)
        self._http = httpx.Client(base_url=self.base_url, timeout=self._timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _run(self, call: Call[T]) -> T:
        attempt = 0
        while True:
            try:
                response = self._http.request(
                    call.method, call.path, params=call.params, json=call.json,
                    content=call.content, headers={**self._headers(call.purpose), **call.headers},
                )  # fmt: skip
            except httpx.TransportError:
                if not self._again(call, attempt):
                    raise
                time.sleep(self.backoff * 2**attempt)
                attempt += 1
                continue
            wait = self._wait(call, response, attempt)
            if wait is None:
                return self._read(call, response)
            time.sleep(wait)
            attempt += 1

    def _download(
        self, path: str, target: Path, purpose: str | None, progress: Progress | None
    ) -> None:
        headers = self._headers(purpose)
        with self._http.stream("GET", path, headers=headers) as response:
            if response.status_code >= 400:
                response.read()
                _raise_for(response)
            total, done = total_of(response.headers), 0
            with atomic_target(target) as handle:
                for chunk in response.iter_bytes():
                    handle.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)

    def whoami(self) -> WhoAmI:
        return self._run(calls.whoami())

    def pseudonymise(
        self,
        kind: str,
        values: Sequence[str],
        *,
        domain: str | None = None,
        register: bool = True,
        purpose: str | None = None,
    ) -> list[str | ValueRefused]:
        """A pseudonym per value, in order; a :class:`ValueRefused` where one is refused."""
        return self._run(
            calls.pseudonymise(kind, values, domain=domain, register=register, purpose=purpose)
        )

    def tokenise_file(
        self,
        source: Path | str,
        output: Path | str,
        *,
        columns: Sequence[str],
        keep: Sequence[str] = (),
        rejects: Path | str | None = None,
        delimiter: str | None = None,
        encoding: str = "utf-8",
        register: bool = True,
        progress: Progress | None = None,
        purpose: str | None = None,
        part_bytes: int | None = None,
        resume: str | None = None,
    ) -> FileResult:
        """Send ``source`` as a file job, streamed; once tokenised, download its output and its
        rejects (``<output>.rejects.csv`` by default), each written whole or not at all.

        With ``part_bytes``, the file goes in parts of that size: a part whose connection is
        lost is sent again (the service applies it once), so a dropped connection costs a part,
        not the file. ``resume`` (a job's id) goes on with a job in parts that an earlier run
        left, from what the service says it has received."""
        params, output, rejects = _file_job(
            output,
            rejects,
            source=source,
            columns=columns,
            keep=keep,
            delimiter=delimiter,
            encoding=encoding,
            register=register,
        )
        if part_bytes is not None or resume is not None:
            job = self._in_parts(
                Path(source), _parts_options(params), part_bytes or PART_BYTES, resume,
                progress=progress, purpose=purpose,
            )  # fmt: skip
        else:
            with Counted(Path(source), progress) as body:
                response = self._http.post(
                    "/v1/files",
                    params=params,
                    headers=self._headers(purpose),
                    files={"file": (body.name, body, "text/csv")},  # type: ignore[dict-item]
                )
            job = Job.of(_answer(response))
        # The rejects first: the output appears last, only when both were written.
        self._download(f"/v1/jobs/{job.id}/rejects", rejects, purpose, None)
        with written_as(output) as target:
            self._download(f"/v1/jobs/{job.id}/output", target, purpose, None)
        return FileResult(job, str(output), str(rejects))

    def _in_parts(
        self, source: Path, options: dict[str, Any], part_bytes: int, resume: str | None,
        *, progress: Progress | None, purpose: str | None,
    ) -> Job:  # fmt: skip
        job = self._run(
            calls.job(resume, purpose) if resume else calls.open_parts(options, purpose)
        )
        if job.state != "running":
            return _ended(job)
        number, done, total = job.parts or 0, job.bytes_received or 0, _size(source)
        for data in parts_of(source, part_bytes, done):
            number += 1
            self._run(calls.part(job.id, number, data, purpose))
            done += len(data)
            if progress is not None:
                progress(done, total)
        try:
            return self._run(calls.complete(job.id, number, purpose))
        except (httpx.TransportError, StateConflict):
            # Its answer was lost, or it was sent before: the job ends by itself.
            return self._until_ended(job.id, purpose)

    def _until_ended(self, job_id: str, purpose: str | None) -> Job:
        while (job := self._run(calls.job(job_id, purpose))).state == "running":
            time.sleep(1.0)
        return _ended(job)

    def jobs(self, *, purpose: str | None = None) -> list[Job]:
        return self._run(calls.jobs(purpose))

    def job(self, job_id: str, *, purpose: str | None = None) -> Job:
        return self._run(calls.job(job_id, purpose))

    def delete_job(self, job_id: str, *, purpose: str | None = None) -> None:
        self._run(calls.delete_job(job_id, purpose))

    def blind_keys(self, domain: str | None = None, *, purpose: str | None = None) -> BlindKeys:
        """The domain's public elements and normalisation switches (default: your domain).
        Blind mode's libraries are looked for first: :class:`MissingExtra` if absent."""
        blind_extra()
        if domain is None:
            domain = _own_domain(self.whoami())
        return self._run(calls.blind_keys(domain, purpose))

    def blind_pseudonymise(
        self,
        kind: str,
        values: Sequence[str],
        *,
        domain: str | None = None,
        public_key: bytes | None = None,
        purpose: str | None = None,
    ) -> list[str | ValueRefused]:
        """A blind pseudonym per value, in order (:mod:`tiers_client.blind`): the values are
        normalised and blinded here, and only blinded elements are sent. ``public_key`` pins
        the domain's public element the proofs must hold against (default: the one the
        service publishes). A value that does not normalise is a :class:`ValueRefused`, and
        never sent."""
        keys = self.blind_keys(domain, purpose=purpose)
        found: list[str | ValueRefused] = []
        for start in range(0, len(values), BATCH):
            items = [(kind, value) for value in values[start : start + BATCH]]
            found += self.blind_items(items, keys, public_key=public_key, purpose=purpose)
        return found

    def blind_translate(
        self, pseudonyms: Sequence[str], *, domain: str | None = None, purpose: str | None = None
    ) -> list[str]:
        """Your blind pseudonyms of an earlier key version re-keyed by the service to the
        active one, in order, by batches of 10,000: after a rotation, without the identifiers.
        Each batch's proofs are checked against the domain's published keys first
        (:class:`~tiers_client.errors.BadProofError`, ``bad_proof``, if one fails)."""
        keys = self.blind_keys(domain, purpose=purpose)
        found: list[str] = []
        for start in range(0, len(pseudonyms), BATCH):
            batch = pseudonyms[start : start + BATCH]
            answer = self._run(calls.blind_translate(batch, domain, purpose))
            found += translated(batch, answer, keys)
        return found

    def blind_tokenise_file(
        self,
        source: Path | str,
        output: Path | str,
        *,
        columns: Sequence[str],
        keep: Sequence[str] = (),
        rejects: Path | str | None = None,
        delimiter: str | None = None,
        encoding: str = "utf-8",
        domain: str | None = None,
        public_key: bytes | None = None,
        progress: Progress | None = None,
        purpose: str | None = None,
    ) -> BlindFileReport:
        """Tokenise a CSV or Parquet file here, in blind mode: the service is sent only
        blinded elements, by batches of 10,000; the output (and the rejects,
        ``<output>.rejects.csv`` by default) appear whole or not at all."""
        keys = self.blind_keys(domain, purpose=purpose)
        return tokenise_blind(
            self, Path(source), Path(output), columns=columns, keep=keep, keys=keys,
            rejects=None if rejects is None else Path(rejects), delimiter=delimiter,
            encoding=encoding, public_key=public_key, progress=progress, purpose=purpose,
        )  # fmt: skip

    def blind_items(
        self,
        items: Sequence[tuple[str, str]],
        keys: BlindKeys,
        *,
        public_key: bytes | None = None,
        purpose: str | None = None,
    ) -> list[str | ValueRefused]:
        """One batch of at most :data:`~tiers_client.blind.BATCH` ``(kind, value)`` pairs
        blinded, evaluated by ``keys.domain``'s function, checked and unblinded."""
        batch = blind_batch(items, keys)
        answer = self.blind_send(batch, keys, purpose=purpose)
        return self.blind_finish(batch, answer, keys, public_key=public_key, purpose=purpose)

    def blind_send(
        self, batch: Blinded, keys: BlindKeys, *, purpose: str | None = None
    ) -> BlindEvaluation | None:
        """A blinded batch evaluated by the service (None if every value was refused here)."""
        if not batch.elements:
            return None
        return self._run(calls.blind_evaluate(batch.elements, keys.domain, purpose))

    def blind_finish(
        self,
        batch: Blinded,
        answer: BlindEvaluation | None,
        keys: BlindKeys,
        *,
        public_key: bytes | None = None,
        purpose: str | None = None,
    ) -> list[str | ValueRefused]:
        """The batch's pseudonyms once the answer's proof holds (``bad_proof`` otherwise)."""
        if answer is None:
            return refused_only(batch)
        public = public_key or keys.public.get(answer.version)
        if public is None:  # a version published after ``keys`` were read: a rotation
            public = self.blind_keys(keys.domain, purpose=purpose).public.get(answer.version)
        return unblinded(batch, answer, public)

    def enrol_cards(
        self, values: Sequence[str], *, purpose: str | None = None
    ) -> list[str | ValueRefused]:
        return self._run(calls.enrol(values, purpose))

    def associate(
        self, card: str, other_domain: str, other_card: str, *, purpose: str | None = None
    ) -> LinkOutcome:
        return self._run(calls.associate(card, other_domain, other_card, purpose))

    def dissociate(self, card: str, *, purpose: str | None = None) -> LinkOutcome:
        return self._run(calls.card_change("/v1/cards/dissociate", card, purpose))

    def transfer(self, card: str, *, purpose: str | None = None) -> LinkOutcome:
        return self._run(calls.card_change("/v1/customers/transfer", card, purpose))

    def withdraw(self, card: str, *, purpose: str | None = None) -> int:
        return self._run(calls.withdraw(card, purpose))

    def card_state(self, pseudonym: str, *, purpose: str | None = None) -> CardState:
        return self._run(calls.card_state(pseudonym, purpose))

    def send_exchange(
        self,
        source: Path | str,
        exchange_type: str,
        *,
        delimiter: str | None = None,
        encoding: str = "utf-8",
        progress: Progress | None = None,
        purpose: str | None = None,
    ) -> ExchangeReport:
        """Send a partner file to the hub, streamed; rejected rows come back to the inbox."""
        params, headers = self._exchange(source, exchange_type, delimiter, encoding, purpose)
        with Counted(Path(source), progress) as body:
            response = self._http.post(
                "/v1/exchanges", params=params, headers=headers, content=body.chunks()
            )
        return ExchangeReport.of(_answer(response))

    def inbox(self, *, include_acked: bool = False, purpose: str | None = None) -> list[Delivery]:
        return self._run(calls.inbox(include_acked, purpose))

    def download_delivery(
        self,
        delivery_id: str,
        target: Path | str,
        *,
        progress: Progress | None = None,
        purpose: str | None = None,
    ) -> Path:
        """Write a delivery's CSV to ``target``, whole or not at all."""
        self._download(f"/v1/inbox/{delivery_id}", Path(target), purpose, progress)
        return Path(target)

    def ack(self, delivery_id: str, *, purpose: str | None = None) -> None:
        self._run(calls.ack(delivery_id, purpose))

    def resolve(
        self, linking_keys: Sequence[str], *, purpose: str | None = None
    ) -> list[Resolution | str]:
        """The customer behind each hub linking key, in order (or its error's code)."""
        return self._run(calls.resolve(linking_keys, purpose))

    def send_campaign(
        self, name: str, linking_keys: Sequence[str], *, purpose: str | None = None
    ) -> CampaignReport:
        return self._run(calls.campaign(name, linking_keys, purpose))

    def audit_entries(self, *, purpose: str | None = None, **filters: Any) -> list[dict[str, Any]]:
        """Every entry that matches, page after page (``limit`` sets a page's size)."""
        found, after = self._run(calls.audit_entries(filters, purpose))
        while after is not None:
            page, after = self._run(calls.audit_entries(filters, purpose, after))
            found += page
        return found

    def audit_verify(self, *, purpose: str | None = None) -> Verification:
        return self._run(calls.audit_verify(purpose))

    def audit_subject(
        self, domain: str, kind: str, value: str, *, purpose: str | None = None
    ) -> list[dict[str, Any]]:
        return self._run(calls.audit_subject(domain, kind, value, purpose))


def _own_domain(who: WhoAmI) -> str:
    if who.domain is None:
        raise BlindSetupError(
            "this key has no domain of its own: name the domain to blind for", "no_domain"
        )
    return who.domain


def _answer(response: httpx.Response) -> Any:
    _raise_for(response)
    return response.json()


class AsyncClient(_Base):
    """:class:`Client` for asyncio: the same calls, awaited (``async with AsyncClient(…)``)."""

    def __init__(self, base_url: str, api_key: str, **options: Any) -> None:
        super().__init__(base_url, api_key, **options)
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=self._timeout)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _run(self, call: Call[T]) -> T:
        attempt = 0
        while True:
            try:
                response = await self._http.request(
                    call.method, call.path, params=call.params, json=call.json,
                    content=call.content, headers={**self._headers(call.purpose), **call.headers},
                )  # fmt: skip
            except httpx.TransportError:
                if not self._again(call, attempt):
                    raise
                await asyncio.sleep(self.backoff * 2**attempt)
                attempt += 1
                continue
            wait = self._wait(call, response, attempt)
            if wait is None:
                return self._read(call, response)
            await asyncio.sleep(wait)
            attempt += 1

    async def whoami(self) -> WhoAmI:
        return await self._run(calls.whoami())

    async def pseudonymise(
        self,
        kind: str,
        values: Sequence[str],
        *,
        domain: str | None = None,
        register: bool = True,
        purpose: str | None = None,
    ) -> list[str | ValueRefused]:
        return await self._run(
            calls.pseudonymise(kind, values, domain=domain, register=register, purpose=purpose)
        )

    async def blind_keys(
        self, domain: str | None = None, *, purpose: str | None = None
    ) -> BlindKeys:
        blind_extra()
        if domain is None:
            domain = _own_domain(await self.whoami())
        return await self._run(calls.blind_keys(domain, purpose))

    async def blind_pseudonymise(
        self,
        kind: str,
        values: Sequence[str],
        *,
        domain: str | None = None,
        public_key: bytes | None = None,
        purpose: str | None = None,
    ) -> list[str | ValueRefused]:
        """As :meth:`Client.blind_pseudonymise`."""
        keys = await self.blind_keys(domain, purpose=purpose)
        found: list[str | ValueRefused] = []
        for start in range(0, len(values), BATCH):
            batch = blind_batch([(kind, v) for v in values[start : start + BATCH]], keys)
            if not batch.elements:
                found += refused_only(batch)
                continue
            answer = await self._run(calls.blind_evaluate(batch.elements, keys.domain, purpose))
            public = public_key or keys.public.get(answer.version)
            if public is None:
                keys = await self.blind_keys(keys.domain, purpose=purpose)
                public = keys.public.get(answer.version)
            found += unblinded(batch, answer, public)
        return found

    async def blind_translate(
        self, pseudonyms: Sequence[str], *, domain: str | None = None, purpose: str | None = None
    ) -> list[str]:
        """As :meth:`Client.blind_translate`: each batch's proofs checked first."""
        keys = await self.blind_keys(domain, purpose=purpose)
        found: list[str] = []
        for start in range(0, len(pseudonyms), BATCH):
            batch = pseudonyms[start : start + BATCH]
            answer = await self._run(calls.blind_translate(batch, domain, purpose))
            found += translated(batch, answer, keys)
        return found

    async def blind_tokenise_file(
        self, source: Path | str, output: Path | str, **options: Any
    ) -> BlindFileReport:
        """As :meth:`Client.blind_tokenise_file` (the same options), run in a worker thread by
        a :class:`Client` of the same address, key and settings: reading, blinding and
        writing the file is work of this machine's that would otherwise hold the event loop.
        ``progress`` is called from that thread."""

        def run() -> BlindFileReport:
            with Client(
                self.base_url, self._api_key, purpose=self.purpose, timeout=self._timeout,
                retries=self.retries, backoff=self.backoff,
            ) as client:  # fmt: skip
                return client.blind_tokenise_file(source, output, **options)

        return await asyncio.to_thread(run)

    async def send_exchange(
        self,
        source: Path | str,
        exchange_type: str,
        *,
        delimiter: str | None = None,
        encoding: str = "utf-8",
        progress: Progress | None = None,
        purpose: str | None = None,
    ) -> ExchangeReport:
        params, headers = self._exchange(source, exchange_type, delimiter, encoding, purpose)
        with Counted(Path(source), progress) as body:
            response = await self._http.post(
                "/v1/exchanges", params=params, headers=headers, content=_aiter(body.chunks())
            )
        return ExchangeReport.of(_answer(response))

    async def _download(
        self, path: str, target: Path, purpose: str | None, progress: Progress | None
    ) -> None:
        headers = self._headers(purpose)
        async with self._http.stream("GET", path, headers=headers) as response:
            if response.status_code >= 400:
                await response.aread()
                _raise_for(response)
            total, done = total_of(response.headers), 0
            with atomic_target(target) as handle:
                async for chunk in response.aiter_bytes():
                    handle.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)

    async def tokenise_file(
        self,
        source: Path | str,
        output: Path | str,
        *,
        columns: Sequence[str],
        keep: Sequence[str] = (),
        rejects: Path | str | None = None,
        delimiter: str | None = None,
        encoding: str = "utf-8",
        register: bool = True,
        progress: Progress | None = None,
        purpose: str | None = None,
        part_bytes: int | None = None,
        resume: str | None = None,
    ) -> FileResult:
        """As :meth:`Client.tokenise_file`."""
        params, output, rejects = _file_job(
            output,
            rejects,
            source=source,
            columns=columns,
            keep=keep,
            delimiter=delimiter,
            encoding=encoding,
            register=register,
        )
        if part_bytes is not None or resume is not None:
            job = await self._in_parts(
                Path(source), _parts_options(params), part_bytes or PART_BYTES, resume,
                progress=progress, purpose=purpose,
            )  # fmt: skip
        else:
            with Counted(Path(source), progress) as body:
                response = await self._http.post(
                    "/v1/files",
                    params=params,
                    headers=self._headers(purpose),
                    files={"file": (body.name, body, "text/csv")},  # type: ignore[dict-item]
                )
            job = Job.of(_answer(response))
        await self._download(f"/v1/jobs/{job.id}/rejects", rejects, purpose, None)
        with written_as(output) as target:
            await self._download(f"/v1/jobs/{job.id}/output", target, purpose, None)
        return FileResult(job, str(output), str(rejects))

    async def download_delivery(
        self,
        delivery_id: str,
        target: Path | str,
        *,
        progress: Progress | None = None,
        purpose: str | None = None,
    ) -> Path:
        await self._download(f"/v1/inbox/{delivery_id}", Path(target), purpose, progress)
        return Path(target)

    async def _in_parts(
        self, source: Path, options: dict[str, Any], part_bytes: int, resume: str | None,
        *, progress: Progress | None, purpose: str | None,
    ) -> Job:  # fmt: skip
        job = await self._run(
            calls.job(resume, purpose) if resume else calls.open_parts(options, purpose)
        )
        if job.state != "running":
            return _ended(job)
        number, done, total = job.parts or 0, job.bytes_received or 0, _size(source)
        for data in parts_of(source, part_bytes, done):
            number += 1
            await self._run(calls.part(job.id, number, data, purpose))
            done += len(data)
            if progress is not None:
                progress(done, total)
        try:
            return await self._run(calls.complete(job.id, number, purpose))
        except (httpx.TransportError, StateConflict):
            return await self._until_ended(job.id, purpose)

    async def _until_ended(self, job_id: str, purpose: str | None) -> Job:
        while (job := await self._run(calls.job(job_id, purpose))).state == "running":
            await asyncio.sleep(1.0)
        return _ended(job)

    async def job(self, job_id: str, *, purpose: str | None = None) -> Job:
        return await self._run(calls.job(job_id, purpose))

    async def jobs(self, *, purpose: str | None = None) -> list[Job]:
        return await self._run(calls.jobs(purpose))

    async def withdraw(self, card: str, *, purpose: str | None = None) -> int:
        return await self._run(calls.withdraw(card, purpose))

    async def dissociate(self, card: str, *, purpose: str | None = None) -> LinkOutcome:
        return await self._run(calls.card_change("/v1/cards/dissociate", card, purpose))

    async def transfer(self, card: str, *, purpose: str | None = None) -> LinkOutcome:
        return await self._run(calls.card_change("/v1/customers/transfer", card, purpose))

    async def audit_subject(
        self, domain: str, kind: str, value: str, *, purpose: str | None = None
    ) -> list[dict[str, Any]]:
        return await self._run(calls.audit_subject(domain, kind, value, purpose))

    async def enrol_cards(
        self, values: Sequence[str], *, purpose: str | None = None
    ) -> list[str | ValueRefused]:
        return await self._run(calls.enrol(values, purpose))

    async def associate(
        self, card: str, other_domain: str, other_card: str, *, purpose: str | None = None
    ) -> LinkOutcome:
        return await self._run(calls.associate(card, other_domain, other_card, purpose))

    async def card_state(self, pseudonym: str, *, purpose: str | None = None) -> CardState:
        return await self._run(calls.card_state(pseudonym, purpose))

    async def inbox(
        self, *, include_acked: bool = False, purpose: str | None = None
    ) -> list[Delivery]:
        return await self._run(calls.inbox(include_acked, purpose))

    async def ack(self, delivery_id: str, *, purpose: str | None = None) -> None:
        await self._run(calls.ack(delivery_id, purpose))

    async def resolve(
        self, linking_keys: Sequence[str], *, purpose: str | None = None
    ) -> list[Resolution | str]:
        return await self._run(calls.resolve(linking_keys, purpose))

    async def send_campaign(
        self, name: str, linking_keys: Sequence[str], *, purpose: str | None = None
    ) -> CampaignReport:
        return await self._run(calls.campaign(name, linking_keys, purpose))

    async def audit_entries(
        self, *, purpose: str | None = None, **filters: Any
    ) -> list[dict[str, Any]]:
        """Every entry that matches, page after page (``limit`` sets a page's size)."""
        found, after = await self._run(calls.audit_entries(filters, purpose))
        while after is not None:
            page, after = await self._run(calls.audit_entries(filters, purpose, after))
            found += page
        return found

    async def audit_verify(self, *, purpose: str | None = None) -> Verification:
        return await self._run(calls.audit_verify(purpose))


async def _aiter(chunks: Iterator[bytes]) -> Any:
    for chunk in chunks:
        yield chunk
