"""XChaCha20-Poly1305 (IETF) on buffers, without the copies of PyNaCl's wrappers.

``nacl.bindings`` accepts only ``bytes``, zero-fills each output and then copies it into
a new ``bytes``: three extra passes over every blob, which cost more than the cipher on
these VMs. Here libsodium (through PyNaCl's own cffi module) reads any buffer in place
and writes into uninitialised memory. cffi releases the GIL during the call.
"""

from __future__ import annotations

from typing import Any

from nacl._sodium import ffi, lib

TAG_SIZE = 16
_uninitialised = ffi.new_allocator(should_clear_after_alloc=False)


class AuthenticationFailed(Exception):
    """The tag did not verify: damaged data or the wrong key."""


def seal_into(prefix: bytes, plaintext: Any, nonce: bytes, aad: bytes, key: bytes) -> memoryview:
    """Return ``prefix || ciphertext || tag`` in one new buffer.

    Args:
        prefix: bytes placed before the ciphertext (the blob header and nonce).
        plaintext: any bytes-like object; read in place.
    """
    size = len(plaintext)
    out = _uninitialised("unsigned char[]", len(prefix) + size + TAG_SIZE)
    ffi.memmove(out, prefix, len(prefix))
    clen = ffi.new("unsigned long long *")
    rc = lib.crypto_aead_xchacha20poly1305_ietf_encrypt(
        out + len(prefix),
        clen,
        ffi.from_buffer(plaintext),
        size,
        aad,
        len(aad),
        ffi.NULL,
        nonce,
        key,
    )
    if rc != 0:  # pragma: no cover - libsodium fails only on impossible sizes
        raise ValueError("encryption failed")
    return memoryview(ffi.buffer(out))


def open_from(ciphertext: Any, nonce: bytes, aad: bytes, key: bytes) -> memoryview:
    """Verify and decrypt ``ciphertext || tag`` (any bytes-like object, read in place).

    Raises:
        AuthenticationFailed: the tag does not verify.
    """
    clen = len(ciphertext)
    if clen < TAG_SIZE:
        raise AuthenticationFailed()
    out = _uninitialised("unsigned char[]", max(clen - TAG_SIZE, 1))
    mlen = ffi.new("unsigned long long *")
    rc = lib.crypto_aead_xchacha20poly1305_ietf_decrypt(
        out, mlen, ffi.NULL, ffi.from_buffer(ciphertext), clen, aad, len(aad), nonce, key
    )
    if rc != 0:
        raise AuthenticationFailed()
    return memoryview(ffi.buffer(out, mlen[0]))
