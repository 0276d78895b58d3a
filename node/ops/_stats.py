"""Stats: how much is stored, how well it deduplicates and compresses, what is garbage.

Definitions (the keys of ``shadowvault stats --json``):

- ``logical_bytes``: the sum over snapshots of the bytes of their files (what restoring
  every snapshot would write);
- ``stored_bytes``: sealed bytes of every blob in the store;
- ``dedup_ratio``: logical bytes / plaintext bytes of the distinct blobs referenced;
- ``compression_ratio``: plaintext bytes / sealed bytes over the stored blobs;
- ``unreferenced_bytes``: sealed bytes of blobs no snapshot references (gc frees them).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from node.repo import BlobKind, Repository, list_snapshots, walk_references


@dataclass
class StoreStats:
    snapshots: int
    logical_bytes: int
    stored_bytes: int
    blob_count: int
    pack_count: int
    dedup_ratio: float
    compression_ratio: float
    unreferenced_bytes: int
    unreferenced_blobs: int
    pack_bytes: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def run_stats(repo: Repository) -> StoreStats:
    """Compute the statistics of an open repository (walks every snapshot once)."""
    snaps = list_snapshots(repo)
    logical = sum(int(s.summary.get("bytes_processed", 0)) for s in snaps)
    referenced: set[bytes] = {bytes(ref.blob_id) for ref in walk_references(repo, snaps)}
    stored = plain = blobs = 0
    unref_bytes = unref_blobs = 0
    ref_plain = 0
    for blob_id, loc in repo.store.iter_blobs():
        if loc is None:
            continue
        blobs += 1
        stored += loc.stored_len
        if loc.kind is not BlobKind.FOREIGN:
            plain += loc.plain_len
        if bytes(blob_id) in referenced:
            if loc.kind is BlobKind.DATA:
                ref_plain += loc.plain_len
        else:
            unref_blobs += 1
            unref_bytes += loc.stored_len
    files = repo.store.pack_files()
    return StoreStats(
        snapshots=len(snaps),
        logical_bytes=logical,
        stored_bytes=stored,
        blob_count=blobs,
        pack_count=len(files),
        dedup_ratio=round(logical / ref_plain, 3) if ref_plain else 1.0,
        compression_ratio=round(plain / stored, 3) if stored else 1.0,
        unreferenced_bytes=unref_bytes,
        unreferenced_blobs=unref_blobs,
        pack_bytes=sum(p.stat().st_size for p in files.values()),
    )
