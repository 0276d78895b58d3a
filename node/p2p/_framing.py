"""Reading and writing protocol frames on a libp2p stream.

A stream read returns whatever has arrived, so a frame is assembled from several reads.
An abrupt peer death looks like a clean EOF (field notes 7.3), so EOF inside a frame is
an error, never a short message.
"""

from __future__ import annotations

from libp2p.abc import INetStream
from libp2p.network.stream.exceptions import StreamEOF

from protocol import FRAME_HEADER_SIZE, WireError, parse_frame_header

_READ_CHUNK = 1024 * 1024


async def _read_exactly(stream: INetStream, n: int, *, at_start: bool) -> bytes | None:
    parts: list[bytes] = []
    got = 0
    while got < n:
        try:
            data = await stream.read(min(n - got, _READ_CHUNK))
        except StreamEOF:
            data = b""
        if not data:
            if at_start and got == 0:
                return None
            raise WireError(f"stream ended {got} bytes into a {n}-byte read")
        parts.append(data)
        got += len(data)
    return b"".join(parts)


async def read_frame(stream: INetStream, cap: int) -> bytes | None:
    """Read one frame's body; None if the stream ended cleanly between frames.

    Raises:
        WireError: the announced length exceeds ``cap`` (code too_large; the stream can
            no longer be read in step and must be closed), or EOF inside a frame.
        libp2p stream errors (``StreamReset``, ...): the transport failed.
    """
    header = await _read_exactly(stream, FRAME_HEADER_SIZE, at_start=True)
    if header is None:
        return None
    length = parse_frame_header(header, cap)
    body = await _read_exactly(stream, length, at_start=False)
    assert body is not None
    return body


_JOIN_BELOW = 1024 * 1024


async def write_frame(stream: INetStream, body: bytes) -> None:
    """Write one frame (length prefix and body).

    A small frame (every request) goes in one write. A large one (a reply of up to
    8 MiB) goes as prefix, then body: joining them cost one more copy of the reply, and
    such a write is several Yamux frames anyway, so a cancelled write leaves the stream
    out of step either way (its owner resets it).
    """
    header = len(body).to_bytes(FRAME_HEADER_SIZE, "big")
    if len(body) < _JOIN_BELOW:
        await stream.write(header + body)
    else:
        await stream.write(header)
        await stream.write(body)
