"""Blind mode's cryptography on one core (the ``blind`` section): what the oblivious function of
``keys/oprf.py`` costs against libsodium's own scalar multiplication, and against the HMAC mode's
work per identifier, in the same run.

- libsodium: ``crypto_scalarmult_ristretto255`` on one element, the ceiling of every step.
- the service: a batch of 10,000 blinded elements evaluated, with the batch's one proof
  (RFC 9497's verifiable mode) and without (the base mode), evaluations per second.
- the partner (``tiers_client.oprf``, the client's own implementation): blinding an identifier
  (its encoding hashed to the group, one multiplication), unblinding an evaluation (an inverse
  and one multiplication), and checking a batch's proof, per second.
- the HMAC mode: the two HMAC-SHA256 of the two-layer scheme per identifier, prepared keys.

And the service's endpoint under load (:func:`endpoint`): ``tiers serve`` (one worker, SQLite)
answering ``POST /v1/blind/evaluate`` with batches of 10,000 blinded elements, against the same
server's ``POST /v1/pseudonymise`` with batches of 10,000 new card numbers (the HMAC mode,
registering), in the same run.

And the two schemes (:func:`schemes_compared`): the service's tokeniser turning a batch of
10,000 clear e-mail addresses into domain pseudonyms on one core, in a deployment of the
``hmac`` scheme and in one of the ``oprf`` scheme (two scalar multiplications and a hash to
the group per value), in the same run; nothing registered.

And a file end to end (:func:`file_end_to_end`): one customer file's card column tokenised
through ``tiers serve``, by the service from the clear cards (``tiers-client tokenise``, the
HMAC mode, nothing registered) and in blind mode by the partner's client (``tiers-client
blind-tokenise``: normalised, blinded, proofs checked and unblinded on the partner's side), in
the same run, each timed from the command's start to its output in place.
"""

from __future__ import annotations

import base64
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tiers_client import Client
from tiers_client import oprf as partner

from bench.data import write_customer_file
from keys._hmac import PreparedHmacSha256
from keys.oprf import Mode, OprfKey, blind, derive_key_pair

__all__ = ["available", "costs", "endpoint", "file_end_to_end", "schemes_compared"]

BATCH = 10_000


def available() -> bool:
    try:
        import pysodium  # noqa: F401, PLC0415
    except (ImportError, OSError, ValueError):
        return False
    return True


# Each rate is the best of this many runs: on this shared machine one run of the same loop
# varied by half from one minute to the next (17,345 then 8,820 multiplications a second).
REPEATS = 3


def _rate(count: int, run: Callable[[], Any]) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return count / best


def costs(batch: int = BATCH) -> dict[str, float]:
    """Operations per second on this core (see the module's docstring)."""
    import pysodium  # noqa: PLC0415

    key = OprfKey(*derive_key_pair(b"bench" * 8, b"casino v1", Mode.VOPRF))
    inputs = [f"client{n}@example.fr".encode() for n in range(batch)]
    point = pysodium.crypto_core_ristretto255_random()
    scalar = pysodium.crypto_core_ristretto255_scalar_random()
    multiply = pysodium.crypto_scalarmult_ristretto255
    results: dict[str, float] = {
        "scalar_multiplications": _rate(batch, lambda: [multiply(scalar, point) for _ in inputs])
    }
    blinded: list[tuple[bytes, bytes]] = []
    encoded = [partner.identifier_input("email", d.decode()) for d in inputs]
    results["client_blind"] = _rate(
        batch, lambda: blinded.__setitem__(slice(None), [partner.blind(d) for d in encoded])
    )
    elements = [element for _, element in blinded]
    results["service_evaluate"] = _rate(batch, lambda: key.evaluate(elements))
    proved: list[Any] = []
    results["service_evaluate_with_proof"] = _rate(
        batch, lambda: proved.append(key.evaluate_with_proof(elements))
    )
    evaluated, proof = proved[0]
    if not partner.verify_proof(key.public, elements, evaluated, proof):
        raise AssertionError("the partner's check refuses the service's proof")
    results["client_verify_proof"] = _rate(
        batch, lambda: partner.verify_proof(key.public, elements, evaluated, proof)
    )
    pairs = list(zip(blinded, evaluated, strict=True))
    results["client_unblind"] = _rate(batch, lambda: [partner.unblind(b, e) for (b, _), e in pairs])
    base, domain = PreparedHmacSha256(b"b" * 32), PreparedHmacSha256(b"d" * 32)
    results["hmac_two_layers"] = _rate(batch, lambda: domain.digest_many(base.digest_many(inputs)))
    ceiling = results["scalar_multiplications"]
    results["evaluate_with_proof_vs_ceiling"] = results["service_evaluate_with_proof"] / ceiling
    results["evaluate_vs_ceiling"] = results["service_evaluate"] / ceiling
    results["evaluate_with_proof_vs_hmac"] = (
        results["service_evaluate_with_proof"] / results["hmac_two_layers"]
    )
    # The partner's whole work per identifier: blind, its share of the check, unblind.
    per_identifier = sum(
        1 / results[name] for name in ("client_blind", "client_verify_proof", "client_unblind")
    )
    results["client_identifiers"] = 1 / per_identifier
    results["client_vs_hmac"] = results["client_identifiers"] / results["hmac_two_layers"]
    return {name: round(value, 3) for name, value in results.items()}


def schemes_compared(batch: int = BATCH) -> dict[str, float]:
    """Clear identifiers tokenised per second on one core under each scheme (see the module's
    docstring), each batch's pseudonyms checked to be of its scheme's length."""
    from datetime import UTC, datetime  # noqa: PLC0415

    from tiers.admin import add_domain, initialise  # noqa: PLC0415
    from tiers.auditing import Access  # noqa: PLC0415
    from tiers.deployment import Deployment  # noqa: PLC0415
    from tiers.identifiers import get_kind  # noqa: PLC0415
    from tiers.settings import Settings  # noqa: PLC0415
    from tiers.tokenisation import Tokeniser  # noqa: PLC0415

    operator = Access("bench", "operator", "benchmark", datetime.now(UTC))
    values = [f"client{n}@example.fr" for n in range(batch)]
    rates: dict[str, float] = {}
    for scheme, length in (("hmac", 20), ("oprf", 32)):
        with tempfile.TemporaryDirectory(prefix="tiers-bench-scheme-") as home:
            settings = Settings(home=Path(home), argon2_profile="test")
            initialise(settings, access=operator, scheme=scheme)
            deployment = Deployment.open(settings)
            try:
                add_domain(deployment, access=operator, name="casino", role="partner")
                with deployment.reading() as connection:
                    tokeniser = Tokeniser.open(deployment, connection, "casino")
            finally:
                deployment.close()
        tokens: list[Any] = []

        def tokenise(tokeniser: Tokeniser = tokeniser, tokens: list[Any] = tokens) -> None:
            tokens[:] = tokeniser.tokenise_many(get_kind("email"), values)

        rates[f"{scheme}_identifiers"] = _rate(batch, tokenise)
        if {len(token[1]) for token in tokens} != {length}:
            raise AssertionError(f"the {scheme} scheme gave pseudonyms of another length")
    rates["oprf_vs_hmac"] = rates["oprf_identifiers"] / rates["hmac_identifiers"]
    return {name: round(value, 4) for name, value in rates.items()}


def _text(element: bytes) -> str:
    return base64.urlsafe_b64encode(element).rstrip(b"=").decode()


def endpoint(seconds: float) -> dict[str, Any]:
    """Elements evaluated per second by the service's endpoint, batches of :data:`BATCH` from
    two connections, against the HMAC mode's identifiers per second through the same server
    (see the module's docstring); every answer checked to be a success."""
    from bench.service_bench import _load, _serving, batch_connections, partner_home  # noqa: PLC0415

    inputs = [f"client{n}@example.fr".encode() for n in range(BATCH)]
    elements = [_text(blind(data, Mode.VOPRF)[1]) for data in inputs]
    with tempfile.TemporaryDirectory(prefix="tiers-bench-blind-") as home:
        env = {
            **os.environ, "TIERS_HOME": home, "TIERS_RATE_LIMIT_PER_SECOND": "1000000",
            "TIERS_RATE_LIMIT_BURST": "1000000", "TIERS_BUDGET_IDENTIFIERS_PER_SECOND": "10000000",
            "TIERS_BUDGET_IDENTIFIERS_PER_HOUR": "1000000000",
        }  # fmt: skip
        token = partner_home(env)
        command = [str(Path(sys.executable).with_name("tiers")), "serve", "--workers", "1"]
        connections = batch_connections(1)
        with _serving(command, env) as port:
            evaluate = _load(
                port, token, seconds, path="/v1/blind/evaluate", connections=connections,
                body={"elements": elements},
            )  # fmt: skip
            hmac = _load(
                port, token, seconds, path="/v1/pseudonymise", connections=connections,
                fresh_cards=BATCH,
            )  # fmt: skip
    if evaluate["errors"] or hmac["errors"] or not evaluate["requests"]:
        raise AssertionError(f"the endpoint answered errors: {evaluate}, {hmac}")
    per_second = evaluate["requests_per_second"] * BATCH
    identifiers = hmac["requests_per_second"] * BATCH
    return {
        "batch": BATCH,
        "endpoint_elements_per_second": round(per_second),
        "endpoint_p50_ms": evaluate["p50_ms"],
        "hmac_identifiers_per_second": round(identifiers),
        "endpoint_vs_hmac": round(per_second / identifiers, 3),
    }


def file_end_to_end(rows: int) -> dict[str, Any]:
    """Rows per second of one file through the service in the HMAC mode and in blind mode
    (see the module's docstring); both outputs checked to hold every row."""
    from bench.service_bench import _serving, partner_home  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="tiers-bench-blind-file-") as home:
        env = {
            **os.environ, "TIERS_HOME": home, "TIERS_BUDGET_IDENTIFIERS_PER_SECOND": "10000000",
            "TIERS_BUDGET_IDENTIFIERS_PER_HOUR": "1000000000",
        }  # fmt: skip
        token = partner_home(env)
        source = write_customer_file(Path(home) / "customers.csv", rows)
        command = [str(Path(sys.executable).with_name("tiers")), "serve", "--workers", "1"]
        with _serving(command, env) as port:
            hmac_seconds, blind_seconds = _both_ways(port, token, source, rows)
    return {
        "rows": rows,
        "hmac_rows_per_second": round(rows / hmac_seconds),
        "blind_rows_per_second": round(rows / blind_seconds),
        "blind_vs_hmac": round(hmac_seconds / blind_seconds, 3),
    }


def _both_ways(port: int, token: str, source: Path, rows: int) -> tuple[float, float]:
    """Seconds to tokenise ``source``'s cards in the HMAC mode, then in blind mode."""
    with Client(f"http://127.0.0.1:{port}", token, purpose="bench") as client:
        started = time.perf_counter()
        clear = client.tokenise_file(
            source, source.with_name("hmac.csv"), columns=["card=card"], keep=["amount"],
            register=False,
        )  # fmt: skip
        hmac_seconds = time.perf_counter() - started
        started = time.perf_counter()
        blind_file = client.blind_tokenise_file(
            source, source.with_name("blind.csv"), columns=["card=card"], keep=["amount"]
        )
        blind_seconds = time.perf_counter() - started
    if (clear.job.rows_out, blind_file.rows_out) != (rows, rows):
        raise AssertionError(f"rows missing: {clear.job}, {blind_file}")
    return hmac_seconds, blind_seconds
