"""The RSA key that signs OpenID Connect id_tokens (its public half is in the JWKS).

Production sets SMART_SIGNING_KEY (the PEM itself) or SMART_SIGNING_KEY_FILE (a path). With
neither, a development key is made once in var/ (git-ignored) and reused, so tokens issued by
`make run` stay valid across restarts; `make serve` refuses that fallback unless DEBUG is on.
"""
from __future__ import annotations

import os
from pathlib import Path


def load_signing_key(pem: str, path: str, fallback: Path) -> tuple[str, bool]:
    """(the PEM, whether it is the generated development key)."""
    if pem.strip():
        return pem, False
    if path:
        try:
            return Path(path).read_text(), False
        except OSError as exc:
            raise ValueError(f"SMART_SIGNING_KEY_FILE={path!r} cannot be read: {exc.strerror}") from None
    if not fallback.exists():
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
        fallback.parent.mkdir(parents=True, exist_ok=True)
        # Written aside and renamed: parallel test workers or servers never read half a key.
        tmp = fallback.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.chmod(tmp, 0o600)
        if not fallback.exists():
            os.replace(tmp, fallback)
        else:
            tmp.unlink()
    return fallback.read_text(), True
