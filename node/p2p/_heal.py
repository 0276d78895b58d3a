"""Getting our own blobs back from peers: restore from peers, and healing.

``fetch_snapshot`` makes every blob of one of our snapshots present and valid here: it
walks the snapshot's trees level by level (a tree must be here before its children are
known), fetching what is missing and replacing what fails its check; the chunks it finds
are fetched by two tasks of their own while the walk goes on. ``heal_blobs``
replaces named blobs (corrupt or missing) and ``heal_problems`` does it for what
``check --read-data`` found.

Replacing a corrupt blob: packs are append-only, so the good copy is appended like any
blob and the index record is pointed at it in the same commit (``BlobWriter.put`` with
``replace``); the corrupt bytes stay in their pack unreferenced (garbage for gc), and
check skips them as a stale duplicate. A crash before the commit leaves the old record;
``Store.open`` then adopts the appended copy (``Store._replaces``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import trio

from node.repo import (
    DIR,
    FILE,
    BlobKind,
    BlobNotFound,
    CorruptBlob,
    Node,
    Problem,
    RepoError,
    Repository,
    Snapshot,
    list_snapshots,
    load_snapshot,
    load_tree,
    walk_references,
)
from protocol import BlobId, peer_id_text

from ._fetch import FetchResult
from ._mesh import Mesh
from ._recover import SNAPSHOT_INDEX_PREFIX

log = logging.getLogger("shadowvault.p2p")

ID_BATCH = 16384
"""Blob ids handed to the fetcher at once (it splits them into requests itself)."""

DATA_TASKS = 2
"""Chunk fetches in flight at once during a restore (each spreads over the holders)."""
DATA_QUEUE = 4
"""Chunk batches found by the walk and waiting to be fetched (bounds the walk's lead)."""

HEALABLE = frozenset({"corrupt_blob", "missing_blob", "index_mismatch", "bad_index_record"})
"""Check problem codes about one blob, which a good copy from a peer fixes."""


class BlobFetcher(Protocol):
    """Where our blobs come back from: ``Mesh`` (into our store), or a drill's fetcher
    into a scratch store (``node.p2p._offsite``)."""

    async def fetch_blobs(
        self, ids: Sequence[BlobId], *, kind: BlobKind, replace: bool = False
    ) -> FetchResult: ...


@dataclass(frozen=True, slots=True)
class MissingBlob:
    """A blob of a snapshot that is not here (or, with ``corrupt``, does not read back)."""

    blob_id: BlobId
    kind: BlobKind
    path: str
    """The file (data) or directory (tree) it belongs to; "" for the snapshot record."""
    corrupt: bool = False


@dataclass
class FetchReport:
    """What ``fetch_snapshot`` did."""

    fetched: int = 0
    """Blobs fetched that were missing here."""
    replaced: int = 0
    """Blobs fetched to replace a local copy that failed its check."""
    bytes: int = 0
    by_peer: dict[str, int] = field(default_factory=dict)
    """Blobs received from each peer (base58 peer id)."""
    bytes_by_peer: dict[str, int] = field(default_factory=dict)
    """Bytes (sealed) received from each peer."""
    peer_errors: dict[str, str] = field(default_factory=dict)
    """Peers that failed a request (unreachable, refused, sent wrong bytes): last error."""
    unavailable: list[MissingBlob] = field(default_factory=list)
    """Blobs no peer could supply; their paths are the damaged files and directories."""

    @property
    def ok(self) -> bool:
        return not self.unavailable

    @property
    def affected(self) -> list[str]:
        """Files (and directories, for a lost tree: everything under them) not restorable."""
        return sorted({m.path or "/" for m in self.unavailable})

    def add(self, result: FetchResult, *, replaced: bool) -> None:
        if replaced:
            self.replaced += result.fetched
        else:
            self.fetched += result.fetched
        self.bytes += result.bytes
        for peer, n in result.by_peer.items():
            self.by_peer[peer] = self.by_peer.get(peer, 0) + n
        for peer, n in result.bytes_by_peer.items():
            self.bytes_by_peer[peer] = self.bytes_by_peer.get(peer, 0) + n
        self.peer_errors.update(result.peer_errors)


@dataclass
class HealReport(FetchReport):
    """What ``heal_blobs`` / ``heal_problems`` did."""

    healed: list[BlobId] = field(default_factory=list)
    """Blobs now present and valid that were not before."""
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(blob id hex or "", why) for what healing cannot fix: another owner's blob, a blob
    no snapshot references, a problem that is not about one blob (a damaged pack)."""


ProgressFn = Callable[[FetchReport], None]
"""Called after each tree level with the report so far."""


def missing_blobs(repo: Repository, snapshot: Snapshot) -> list[MissingBlob]:
    """Every blob of ``snapshot`` not stored here, without the network (blocking).

    A tree that is absent or does not read back is listed (``corrupt`` for the latter) and
    not descended into: what lies below it is unknown until it is fetched. Data chunks are
    only looked up, not read.
    """
    assert snapshot.id is not None
    out: list[MissingBlob] = []
    store = repo.store
    if not store.has(snapshot.id):
        out.append(MissingBlob(snapshot.id, BlobKind.SNAPSHOT, ""))
    seen: set[bytes] = set()
    stack: list[tuple[BlobId, str]] = [(snapshot.tree, "/")]
    while stack:
        tree_id, path = stack.pop()
        if tree_id in seen:
            continue
        seen.add(tree_id)
        try:
            nodes = load_tree(repo, tree_id)
        except BlobNotFound:
            out.append(MissingBlob(tree_id, BlobKind.TREE, path))
            continue
        except RepoError:
            out.append(MissingBlob(tree_id, BlobKind.TREE, path, corrupt=True))
            continue
        for node in nodes:
            child = _child(path, node)
            if node.type == FILE:
                for chunk in node.chunks:
                    if chunk not in seen and not store.has(chunk):
                        seen.add(chunk)
                        out.append(MissingBlob(chunk, BlobKind.DATA, child))
            elif node.type == DIR and node.subtree is not None:
                stack.append((node.subtree, child))
    return out


async def fetch_snapshot(
    mesh: BlobFetcher,
    repo: Repository,
    snapshot_id: BlobId,
    *,
    verify: bool = True,
    progress: ProgressFn | None = None,
    index_dedup: bool = True,
) -> FetchReport:
    """Make every blob of one of our snapshots present and valid here, from peers.

    Blobs stored here are not fetched; with ``verify`` each one is read and checked
    against its id first, and a copy that fails is replaced from a peer.

    Args:
        mesh: fetches blobs into ``repo``'s store (``Mesh``, or a drill's scratch fetcher).
        index_dedup: give fetched chunks and trees their dedup records (a recovery needs
            them; a drill's throw-away store does not, and skipping saves opening every
            blob twice).

    Returns:
        What was fetched and replaced, per peer, and what no peer could supply (with the
        files affected). Nothing is raised for an unavailable blob.
    """
    report = FetchReport()
    state = await trio.to_thread.run_sync(_blob_state, repo, snapshot_id, True)
    if state != "ok":
        await _get(mesh, [snapshot_id], BlobKind.SNAPSHOT, state == "corrupt", report)
    try:
        snap = await trio.to_thread.run_sync(load_snapshot, repo, snapshot_id)
    except RepoError:
        report.unavailable.append(MissingBlob(snapshot_id, BlobKind.SNAPSHOT, ""))
        return report

    # The walk only waits for trees; the chunks it finds go to two data tasks that keep
    # fetching while it descends (a level boundary never leaves the wire idle).
    send, receive = trio.open_memory_channel[tuple[dict[BlobId, str], bool]](DATA_QUEUE)
    async with trio.open_nursery() as nursery:
        async with receive:
            for _ in range(DATA_TASKS):
                nursery.start_soon(_fetch_data, mesh, repo, receive.clone(), report, index_dedup)
        async with send:
            await _walk(mesh, repo, snap.tree, verify, send, report, progress, index_dedup)
    return report


async def _walk(
    mesh: BlobFetcher,
    repo: Repository,
    root: BlobId,
    verify: bool,
    data: trio.MemorySendChannel[tuple[dict[BlobId, str], bool]],
    report: FetchReport,
    progress: ProgressFn | None,
    index_dedup: bool,
) -> None:
    """Walk the trees level by level, fetching them; hand the chunks to ``data``."""
    seen: set[bytes] = set()
    level: list[tuple[BlobId, str]] = [(root, "/")]
    while level:
        level = [(t, p) for t, p in dict(level).items() if t not in seen]
        seen.update(t for t, _ in level)
        trees, missing, corrupt = await trio.to_thread.run_sync(_load_level, repo, level)
        if missing or corrupt:
            async with trio.open_nursery() as nursery:
                if missing:
                    nursery.start_soon(
                        _get_named, mesh, repo, missing, BlobKind.TREE, False, report, index_dedup
                    )
                if corrupt:
                    nursery.start_soon(_get_named, mesh, repo, corrupt, BlobKind.TREE, True, report)
            retry = [(t, p) for t, p in level if t in missing or t in corrupt]
            again, lost, bad = await trio.to_thread.run_sync(_load_level, repo, retry)
            trees.extend(again)
            for tree_id, path in (lost | bad).items():
                report.unavailable.append(MissingBlob(tree_id, BlobKind.TREE, path))
        level = []
        chunks: dict[BlobId, str] = {}
        for path, nodes in trees:
            for node in nodes:
                child = _child(path, node)
                if node.type == FILE:
                    for chunk in node.chunks:
                        if chunk not in seen:
                            seen.add(chunk)
                            chunks[chunk] = child
                elif node.type == DIR and node.subtree is not None:
                    level.append((node.subtree, child))
        items = list(chunks.items())
        for i in range(0, len(items), ID_BATCH):
            absent, damaged = await trio.to_thread.run_sync(
                _classify_data, repo, dict(items[i : i + ID_BATCH]), verify
            )
            if absent:
                await data.send((absent, False))
            if damaged:
                await data.send((damaged, True))
        if progress is not None:
            progress(report)


async def _fetch_data(
    mesh: BlobFetcher,
    repo: Repository,
    work: trio.MemoryReceiveChannel[tuple[dict[BlobId, str], bool]],
    report: FetchReport,
    index_dedup: bool,
) -> None:
    async with work:
        async for wanted, replace in work:
            await _get_named(mesh, repo, wanted, BlobKind.DATA, replace, report, index_dedup)


async def heal_blobs(mesh: Mesh, repo: Repository, blob_ids: Iterable[BlobId]) -> HealReport:
    """Fetch each of our blobs that is missing or fails its check, and replace it.

    A blob that reads back fine is left alone. What each blob is (tree, data, snapshot
    record) comes from its index record or, where that is lost, from the snapshots that
    reference it. Another owner's (FOREIGN) blob comes from that owner's other holders
    or the owner (found by our held-for records); one no snapshot names is skipped.
    """
    report = HealReport()
    ids = list(dict.fromkeys(blob_ids))
    plan, foreign = await trio.to_thread.run_sync(_plan, repo, ids, report, mesh)
    for (kind, replace), group in sorted(plan.items()):
        before = report.unavailable[:]
        await _get_named(mesh, repo, dict.fromkeys(group, ""), kind, replace, report)
        lost = {bytes(m.blob_id) for m in report.unavailable[len(before) :]}
        report.healed.extend(b for b in group if b not in lost)
    for owner, group in foreign.items():
        result = await mesh.fetch_blobs(
            group, kind=BlobKind.FOREIGN, owner=peer_id_text(owner), replace=True
        )
        report.add(result, replaced=True)
        gone = set(result.missing)
        report.unavailable.extend(MissingBlob(b, BlobKind.FOREIGN, "", True) for b in gone)
        report.healed.extend(b for b in group if b not in gone)
    return report


async def heal_problems(mesh: Mesh, repo: Repository, problems: Iterable[Problem]) -> HealReport:
    """Repair what a check found (``check --read-data --repair``): fetch and replace every
    corrupt or missing blob it names, then fetch whatever the snapshots reference that a
    healed tree revealed as missing. After it, the same check passes unless the report
    lists something unavailable or skipped (a damaged pack header is not a blob problem:
    its blobs are healed, the pack itself stays for gc)."""
    ids: list[BlobId] = []
    skipped: list[tuple[str, str]] = []
    for p in problems:
        if p.what in HEALABLE and p.blob:
            ids.append(BlobId(bytes.fromhex(p.blob)))
        else:
            skipped.append((p.blob or "", f"{p.what}: {p}"))
    report = await heal_blobs(mesh, repo, ids)
    report.skipped.extend(skipped)
    # Blobs under a tree that could not be read were never checked: look again.
    snaps = await trio.to_thread.run_sync(_snapshots, repo)
    for snap in snaps:
        previous: list[MissingBlob] = []
        while True:  # each round reveals at most one more tree level
            missing = await trio.to_thread.run_sync(missing_blobs, repo, snap)
            if not missing or missing == previous:
                break
            previous = missing
            before = len(report.unavailable)
            by_kind: dict[tuple[BlobKind, bool], dict[BlobId, str]] = {}
            for m in missing:
                by_kind.setdefault((m.kind, m.corrupt), {})[m.blob_id] = m.path
            for (kind, corrupt), wanted in by_kind.items():
                await _get_named(mesh, repo, wanted, kind, corrupt, report)
            report.healed.extend(m.blob_id for m in missing)
            if len(report.unavailable) > before:
                lost = {bytes(m.blob_id) for m in report.unavailable[before:]}
                report.healed = [b for b in report.healed if b not in lost]
                break
    return report


# -- helpers ------------------------------------------------------------------------------------


def _child(path: str, node: Node) -> str:
    return path.rstrip("/") + "/" + node.name.decode(errors="replace")


def _snapshots(repo: Repository) -> list[Snapshot]:
    try:
        return list_snapshots(repo)
    except RepoError:
        return []


def _blob_state(repo: Repository, blob_id: BlobId, verify: bool) -> str:
    """ "ok", "missing" or "corrupt" (present in the index but not reading back)."""
    try:
        if verify:
            repo.store.read(blob_id)
        else:
            repo.store.location(blob_id)
    except BlobNotFound:
        return "missing"
    except CorruptBlob:
        return "corrupt"
    return "ok"


def _load_level(
    repo: Repository, level: Sequence[tuple[BlobId, str]]
) -> tuple[list[tuple[str, list[Node]]], dict[BlobId, str], dict[BlobId, str]]:
    """Load a level's trees: (path, nodes) of those that open, then the missing and the
    corrupt ones (id -> path)."""
    loaded: list[tuple[str, list[Node]]] = []
    missing: dict[BlobId, str] = {}
    corrupt: dict[BlobId, str] = {}
    for tree_id, path in level:
        try:
            loaded.append((path, load_tree(repo, tree_id)))
        except BlobNotFound:
            missing[tree_id] = path
        except RepoError:  # CorruptBlob, or bytes that do not decode as a tree
            corrupt[tree_id] = path
    return loaded, missing, corrupt


def _classify_data(
    repo: Repository, chunks: dict[BlobId, str], verify: bool
) -> tuple[dict[BlobId, str], dict[BlobId, str]]:
    missing: dict[BlobId, str] = {}
    corrupt: dict[BlobId, str] = {}
    for chunk, path in chunks.items():
        state = _blob_state(repo, chunk, verify)
        if state == "missing":
            missing[chunk] = path
        elif state == "corrupt":
            corrupt[chunk] = path
    return missing, corrupt


async def _get(
    mesh: BlobFetcher, ids: Sequence[BlobId], kind: BlobKind, replace: bool, report: FetchReport
) -> list[BlobId]:
    """Fetch ``ids`` in batches; returns those no peer could supply."""
    lost: list[BlobId] = []
    for i in range(0, len(ids), ID_BATCH):
        result = await mesh.fetch_blobs(ids[i : i + ID_BATCH], kind=kind, replace=replace)
        report.add(result, replaced=replace)
        lost.extend(result.missing)
    return lost


async def _get_named(
    mesh: BlobFetcher,
    repo: Repository,
    wanted: dict[BlobId, str],
    kind: BlobKind,
    replace: bool,
    report: FetchReport,
    index_dedup: bool = True,
) -> None:
    lost = await _get(mesh, list(wanted), kind, replace, report)
    for blob_id in lost:
        report.unavailable.append(MissingBlob(blob_id, kind, wanted[blob_id], replace))
    if (
        index_dedup and kind in (BlobKind.DATA, BlobKind.TREE) and not replace
    ):  # replaced ones kept theirs
        gone = set(lost)
        got = [b for b in wanted if b not in gone]
        await trio.to_thread.run_sync(_index_dedup, repo, got, kind)


def _index_dedup(repo: Repository, blobs: list[BlobId], kind: BlobKind) -> None:
    """Give fetched chunks and trees their dedup records (peers never know the keyed
    hash): without them the first backup after a recovery would store everything again."""
    pairs = []
    for blob_id in blobs:
        try:
            plain = repo.load(blob_id)
            key = (
                repo.dedup_key(plain)
                if kind is BlobKind.DATA
                else repo.tree_dedup_key(bytes(plain))
            )
        except RepoError:  # unreadable now: it is reported when restored or checked
            continue
        pairs.append((key, blob_id))
    if pairs:
        repo.store.index_dedup(pairs)


def _plan(
    repo: Repository, ids: list[BlobId], report: HealReport, mesh: Mesh
) -> tuple[dict[tuple[BlobKind, bool], list[BlobId]], dict[bytes, list[BlobId]]]:
    """Group the blobs needing a peer's copy by (kind, replace an indexed copy), and the
    corrupt copies of other owners' blobs we hold by owner (replaced from the owner's
    other holders, or the owner)."""
    store = repo.store
    snapshot_ids = {bytes(k[1:]) for k, _ in store.iter_records(SNAPSHOT_INDEX_PREFIX)}
    owners = [rec.raw_id for rec in mesh.peers.all() if rec.store_for]
    plan: dict[tuple[BlobKind, bool], list[BlobId]] = {}
    foreign: dict[bytes, list[BlobId]] = {}
    unknown: dict[bytes, bool] = {}
    for blob_id in ids:
        state = _blob_state(repo, blob_id, True)
        if state == "ok":
            continue
        indexed = store.has(blob_id)
        kind: BlobKind | None = None
        try:
            kind = store.location(blob_id).kind
        except (BlobNotFound, CorruptBlob):
            if bytes(blob_id) in snapshot_ids:
                kind = BlobKind.SNAPSHOT
        if kind is BlobKind.FOREIGN:
            owner = next((o for o in owners if mesh.state.is_held_for(o, blob_id)), None)
            if owner is None:
                report.skipped.append((blob_id.hex(), "another owner's blob, owner unknown"))
            else:
                foreign.setdefault(owner, []).append(blob_id)
            continue
        if kind is None:
            unknown[bytes(blob_id)] = indexed
            continue
        plan.setdefault((kind, indexed), []).append(blob_id)
    if unknown:
        # The index record is lost or damaged: the snapshots say what the blob is.
        for ref in walk_references(repo, _snapshots(repo)):
            replace = unknown.pop(bytes(ref.blob_id), None)
            if replace is not None:
                kind = BlobKind.TREE if ref.is_tree else BlobKind.DATA
                plan.setdefault((kind, replace), []).append(ref.blob_id)
        for raw in unknown:
            report.skipped.append((raw.hex(), "no snapshot references it"))
    return plan, foreign
