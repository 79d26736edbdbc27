"""Blind mode, the partner's side: identifiers pseudonymised by the service without the service
seeing them (RFC 9497, ristretto255-SHA512, verifiable mode).

For each value: normalise it as the service would (:mod:`tiers_client.identifiers`, with the
switches the domain publishes), hash its kind and canonical form to the group, blind it with a
fresh random scalar, and send only the blinded element. The service answers each batch with the
evaluated elements and one proof; the proof is checked against the domain's public element for
the key version that answered (a batch whose proof fails is refused whole: ``bad_proof``), and
each evaluated element is unblinded.

The result, the *blind pseudonym*, is the unblinded element ``k·H(kind, value)``, where ``k`` is
the domain key version's secret scalar: the same for one identifier however it was blinded,
unrelated in another domain or key version, and never computable without the service. Its text
is ``<domain>.v<version>.<base32 of the 32-byte element>``, lower case, no padding
(52 characters of base32; the service's own pseudonyms have 32).

The proof shows the batch was evaluated with the key whose public element it is checked
against. Checked against the element the service publishes, it shows the service used one
consistent key; pinned (``public_key=``, an element obtained from the operator beforehand), it
shows the service used *that* key.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field

from tiers_client import oprf
from tiers_client.errors import BadProofError
from tiers_client.identifiers import IdentifierRefused, normalise
from tiers_client.models import (
    BlindEvaluation,
    BlindKeys,
    BlindTranslation,
    ValueRefused,
    unpadded_b64,
)

__all__ = [
    "BATCH",
    "BlindSetupError",
    "Blinded",
    "blind_batch",
    "pinned_key",
    "pseudonym_text",
    "refused_only",
    "translated",
    "unblinded",
]

# Elements the service evaluates in one call (one proof covers them all).
BATCH = 10_000


class BlindSetupError(ValueError):
    """Blind mode asked for in a way that cannot work: ``code`` says which."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(slots=True)
class Blinded:
    """A batch ready to send: the codes of the values refused before anything was sent, and
    for the others their place in the batch, their blind and their blinded element."""

    size: int
    refused: dict[int, str] = field(default_factory=dict)
    positions: list[int] = field(default_factory=list)
    blinds: list[bytes] = field(default_factory=list)
    elements: list[bytes] = field(default_factory=list)


def blind_batch(items: Sequence[tuple[str, str]], keys: BlindKeys) -> Blinded:
    """Each ``(kind, value)`` normalised as the domain does, hashed and blinded; a value that
    does not normalise is refused with the service's code and never leaves the machine."""
    batch = Blinded(len(items))
    for index, (kind, value) in enumerate(items):
        try:
            canonical = normalise(
                kind, value, card_luhn=keys.card_luhn, phone_region=keys.phone_region
            )
        except IdentifierRefused as refused:
            batch.refused[index] = refused.code
            continue
        blinding, element = oprf.blind(oprf.identifier_input(kind, canonical))
        batch.positions.append(index)
        batch.blinds.append(blinding)
        batch.elements.append(element)
    return batch


def unblinded(
    batch: Blinded, answer: BlindEvaluation, public: bytes | None
) -> list[str | ValueRefused]:
    """The batch's blind pseudonyms, in order, a :class:`ValueRefused` where a value was
    refused; :class:`BadProofError` (``bad_proof``) unless the answer's proof holds against
    ``public`` (None: no key of that version is known)."""
    holds = (
        public is not None
        and len(answer.evaluated) == len(batch.elements)
        and oprf.verify_proof(public, batch.elements, answer.evaluated, answer.proof)
    )
    if not holds:
        raise BadProofError(
            f"the service's proof of a batch fails against {answer.domain}'s public key "
            f"for version {answer.version}: no pseudonym of the batch is used",
            code="bad_proof",
        )
    done = {
        index: pseudonym_text(answer.domain, answer.version, oprf.unblind(blinding, evaluated))
        for index, blinding, evaluated in zip(
            batch.positions, batch.blinds, answer.evaluated, strict=True
        )
    }
    return [done.get(i) or ValueRefused(i, batch.refused[i]) for i in range(batch.size)]


def translated(sent: Sequence[str], answer: BlindTranslation, keys: BlindKeys) -> list[str]:
    """The answer's pseudonyms, once each source version's proof holds against the two
    published keys (that version's as RFC 9497's ``A``, the active one's as ``B``): every
    pseudonym of that version was re-keyed by the one scalar between the two keys. Else
    :class:`BadProofError` (``bad_proof``): no pseudonym of the batch is used."""
    groups: dict[int, list[int]] = {}
    for index, text in enumerate(sent):
        groups.setdefault(_version_of(text), []).append(index)
    target = keys.public.get(answer.version)
    moved = [_element_of(text) for text in answer.pseudonyms]
    holds = (
        target is not None
        and answer.domain == keys.domain
        and len(moved) == len(sent)
        and all(  # each in the canonical text of the domain's active version
            text == pseudonym_text(keys.domain, answer.version, element)
            for text, element in zip(answer.pseudonyms, moved, strict=True)
        )
        and all(
            _proof_holds(
                target,
                keys.public.get(version),
                answer.proofs.get(version),
                [_element_of(sent[i]) for i in places],
                [moved[i] for i in places],
            )
            for version, places in groups.items()
        )
    )
    if not holds:
        raise BadProofError(
            f"the service's proof of a translation fails against {answer.domain}'s public keys: "
            "no pseudonym of the batch is used",
            code="bad_proof",
        )
    return list(answer.pseudonyms)


def _proof_holds(
    target: bytes,
    source: bytes | None,
    proof: bytes | None,
    elements: list[bytes],
    moved: list[bytes],
) -> bool:
    """Whether ``proof`` shows ``moved`` are ``elements`` re-keyed from ``source`` to
    ``target`` (False when the key of the source version, or its proof, is missing)."""
    return (
        source is not None
        and proof is not None
        and oprf.verify_proof(target, elements, moved, proof, generator=source)
    )


def _version_of(text: str) -> int:
    """The key version of a blind pseudonym's text (0 when it has none: no key matches)."""
    parts = text.strip().split(".")
    version = parts[1][1:] if len(parts) == 3 and parts[1].startswith("v") else ""
    return int(version) if version.isdigit() else 0


def _element_of(text: str) -> bytes:
    """The element in a blind pseudonym's text (empty when malformed: its proof then fails)."""
    encoded = text.strip().rsplit(".", 1)[-1].upper()
    try:
        return base64.b32decode(encoded + "=" * (-len(encoded) % 8))
    except ValueError:
        return b""


def pseudonym_text(domain: str, version: int, element: bytes) -> str:
    """``<domain>.v<version>.<base32 of the element>``, lower case, without padding."""
    encoded = base64.b32encode(element).decode("ascii").rstrip("=").lower()
    return f"{domain}.v{version}.{encoded}"


def pinned_key(text: str | None) -> bytes | None:
    """A public element given by the partner (unpadded base64url, as published), checked to
    be 32 bytes; None when none is given."""
    if text is None:
        return None
    try:
        data = unpadded_b64(text.strip())
    except ValueError:
        data = b""
    if len(data) != oprf.ELEMENT_BYTES:
        raise BlindSetupError(
            "the pinned public key is not 32 bytes of unpadded base64url", "bad_public_key"
        )
    return data


def refused_only(batch: Blinded) -> list[str | ValueRefused]:
    """A batch in which every value was refused: nothing to send."""
    return [ValueRefused(index, code) for index, code in sorted(batch.refused.items())]
