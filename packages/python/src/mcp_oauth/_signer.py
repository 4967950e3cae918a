"""The `signer` import: ES256 signatures for RFC 7523 client assertions
(`private_key_jwt`). The key stays here; the engine only sees signatures.
Needs the `cryptography` package (`pip install "mcp-oauth[jwt]"`)."""

from __future__ import annotations

from typing import Callable


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
