"""The `signer` import: ES256 signatures for RFC 7523 client assertions
(`private_key_jwt`), and DPoP proofs (RFC 9449) with a key pair per key id
kept in the store. The keys stay here; the engine only sees signatures and
proofs. Needs the `cryptography` package (`pip install "mcp-oauth[jwt]"`)."""

from __future__ import annotations

import base64
import json
import threading
from typing import Any, Callable, Optional

from ._errors import ConfigError
from ._seam import Store, StoreError, StoreUnavailable


def es256_signer(private_key_pem: str | bytes) -> Callable[[bytes], bytes]:
    """A signer for a P-256 private key in PEM (PKCS#8 or SEC1): input -> 64-byte r||s."""
    try:
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
    except ImportError:
        raise ImportError(
            'private_key_jwt needs the cryptography package: pip install "mcp-oauth[jwt]" '
            "(or pass signer=, a callable returning the 64-byte ES256 signature)"
        ) from None
    pem = private_key_pem.encode() if isinstance(private_key_pem, str) else private_key_pem
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise ValueError("not a P-256 private key in PEM") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("not a P-256 private key in PEM")

    def sign(data: bytes) -> bytes:
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    return sign


DPOP_NEEDS_CRYPTOGRAPHY = (
    'this server wants DPoP-bound tokens, which need the cryptography package: pip install "mcp-oauth[jwt]"'
)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class DpopError(Exception):
    """No proof: the message says why (never key material)."""


class _DpopKey:
    """A loaded key pair and its proof header. Holds the private key; shows nothing of it."""

    __slots__ = ("_key", "header")

    def __init__(self, key: Any, header: str) -> None:
        self._key = key
        self.header = header

    def __repr__(self) -> str:
        return "<DPoP key>"


# Loaded keys, per process: (store id, key id) -> _DpopKey.
_shared: dict = {}
_shared_lock = threading.Lock()


def forget(store: Store, key_id: str) -> None:
    """Drops a loaded key (its file was removed: logout)."""
    with _shared_lock:
        _shared.pop((store.id, key_id), None)


class DpopKeys:
    """The `signer.dpop-proof` import: one ES256 (P-256) key pair per key id,
    made on first use and kept in the store as `<key-id>.pem` (PKCS#8, 0600):
    a token bound to it is useless without it, so a file that cannot be used
    is refused (the proof fails naming it), never replaced."""

    def __init__(self, store: Store, cache: Optional[dict] = None) -> None:
        self.store = store
        self._cache = _shared if cache is None else cache
        self._lock = _shared_lock if cache is None else threading.Lock()

    def __repr__(self) -> str:
        return f"DpopKeys({self.store.id!r})"

    def proof(self, key_id: str, claims: str) -> str:
        """The compact JWS over `claims` (a JSON string, signed exactly as given)."""
        try:
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.asymmetric import ec
            from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
        except ImportError:
            raise DpopError(DPOP_NEEDS_CRYPTOGRAPHY) from None
        key = self._load(key_id)
        signing_input = f"{key.header}.{_b64url(claims.encode('utf-8'))}"
        try:
            der = key._key.sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256()))
        except Exception as e:
            raise DpopError(f"signing the DPoP proof failed ({type(e).__name__})") from None
        r, s = decode_dss_signature(der)
        return f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def _load(self, key_id: str) -> _DpopKey:
        ident = (self.store.id, key_id)
        with self._lock:  # one load or creation at a time in this process
            key = self._cache.get(ident)
            if key is None:
                key = self._cache[ident] = self._load_or_create(key_id)
            return key

    def _load_or_create(self, key_id: str) -> _DpopKey:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        try:
            stored = self.store.get_key(key_id)
            if stored is None:
                new = ec.generate_private_key(ec.SECP256R1())
                pem = new.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
                # Created only if no other process made it meanwhile (then its key is the one).
                stored = self.store.put_key_once(key_id, pem)
                key = new if stored == pem else _parse_key(stored)
            else:
                key = _parse_key(stored)
        except (StoreUnavailable, ConfigError):
            raise  # a shared store that cannot answer: the call fails with it
        except StoreError as e:
            raise DpopError(str(e)) from None
        if key is None:
            # Refused, never replaced: a token bound to the key is useless
            # without it, and the user decides what to do with the file.
            raise DpopError(
                f"the DPoP key file {self.store.key_location(key_id)} is not a P-256 private key in PKCS#8 PEM; "
                "it was left as it is (restore it, or remove it and sign in again)"
            )
        numbers = key.public_key().public_numbers()
        jwk = {"kty": "EC", "crv": "P-256", "x": _b64url(numbers.x.to_bytes(32, "big")), "y": _b64url(numbers.y.to_bytes(32, "big"))}
        header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk}
        return _DpopKey(key, _b64url(json.dumps(header, separators=(",", ":")).encode("ascii")))


def _parse_key(pem: bytes) -> Any:
    """The P-256 private key in `pem` (PKCS#8, as every host writes and reads
    it), or None (corrupt, SEC1, encrypted, or another kind of key)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    if not pem.lstrip().startswith(b"-----BEGIN PRIVATE KEY-----"):
        return None
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except Exception:  # corrupt, encrypted, an unsupported algorithm
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1":
        return key
    return None
