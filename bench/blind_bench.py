"""Blind mode's cryptography on one core (the ``blind`` section): what the oblivious function of
``keys/oprf.py`` costs against libsodium's own scalar multiplication, and against the HMAC mode's
work per identifier, in the same run.

- libsodium: ``crypto_scalarmult_ristretto255`` on one element, the ceiling of every step.
- the service: a batch of 10,000 blinded elements evaluated, with the batch's one proof
  (RFC 9497's verifiable mode) and without (the base mode), evaluations per second.
- the partner: blinding (hash to the group and one multiplication) and finalising (an inverse,
  one multiplication and a hash), and checking a batch's proof, per second.
- the HMAC mode: the two HMAC-SHA256 of the two-layer scheme per identifier, prepared keys.

Not yet measured: the service's endpoint and a file end to end in blind mode (not built).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from keys._hmac import PreparedHmacSha256
from keys.oprf import Mode, OprfKey, blind, derive_key_pair, finalize, verify_proof

__all__ = ["available", "costs"]

BATCH = 10_000


def available() -> bool:
    try:
        import pysodium  # noqa: F401, PLC0415
    except (ImportError, OSError, ValueError):
        return False
    return True


def _rate(count: int, run: Callable[[], Any]) -> float:
    started = time.perf_counter()
    run()
    return count / (time.perf_counter() - started)


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
    results["client_blind"] = _rate(
        batch, lambda: blinded.extend(blind(data, Mode.VOPRF) for data in inputs)
    )
    elements = [element for _, element in blinded]
    results["service_evaluate"] = _rate(batch, lambda: key.evaluate(elements))
    proved: list[Any] = []
    results["service_evaluate_with_proof"] = _rate(
        batch, lambda: proved.append(key.evaluate_with_proof(elements))
    )
    evaluated, proof = proved[0]
    results["client_verify_proof"] = _rate(
        batch, lambda: verify_proof(key.public, elements, evaluated, proof)
    )
    pairs = list(zip(inputs, blinded, evaluated, strict=True))
    results["client_finalize"] = _rate(
        batch, lambda: [finalize(data, b, e) for data, (b, _), e in pairs]
    )
    base, domain = PreparedHmacSha256(b"b" * 32), PreparedHmacSha256(b"d" * 32)
    results["hmac_two_layers"] = _rate(batch, lambda: domain.digest_many(base.digest_many(inputs)))
    ceiling = results["scalar_multiplications"]
    results["evaluate_with_proof_vs_ceiling"] = results["service_evaluate_with_proof"] / ceiling
    results["evaluate_vs_ceiling"] = results["service_evaluate"] / ceiling
    results["evaluate_with_proof_vs_hmac"] = (
        results["service_evaluate_with_proof"] / results["hmac_two_layers"]
    )
    return {name: round(value, 3) for name, value in results.items()}
