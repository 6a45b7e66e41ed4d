"""Writing points for `mmrag index --ray`: requests capped by bytes and points, retried with backoff.

Two writers share the same request shape (`request_batches`) and the same retry (`with_retries`):

- `LocalWrites`: the driver writes (the embedded store: one process holds its lock);
- `ActorWrites`: `ShardWriter` actors, one per shard of a Qdrant server collection by default, each
  with its own client, at most two requests in flight each.

Both hand back acknowledgements, `(file key, point id)` per point written with `wait=True`: the
driver records a file once all its points are acknowledged. Point ids are deterministic, so a
retried request overwrites what a failed one may have written, never duplicates it.

`--bulk` (`begin_bulk`/`end_bulk`) loads a new server collection with HNSW off (`m=0`), payload
indexes made first, and builds the graph once at the end, as Qdrant's bulk-upload guidance says.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from mmrag.types import MMRAGError

if TYPE_CHECKING:
    from mmrag.config import MMRAGConfig
    from mmrag.store.base import Store, StoreSchema
    from mmrag.store.server_setup import ServerOptions
    from mmrag.types import PointData

Ack = tuple[str, str]
"""(file key, point id) of a point the store acknowledged."""
_RETRY_WORDS = ("please retry", "too many requests", "timed out", "did not answer")


def point_bytes(p: PointData) -> int:
    """What a point weighs in a request: its vectors as float32 (a ColPali page: about 512 KB), sparse
    entries at 8 bytes, and its payload's text, as a lower bound of what goes over the wire."""
    import numpy as np

    dense = sum(int(np.asarray(v).size) * 4 for v in p.dense.values())
    sparse = 8 * len(p.sparse.indices) if p.sparse is not None else 0
    return dense + sparse + len(repr(p.payload))


def request_batches(
    items: Sequence[tuple[str, PointData]],
    max_points: int,
    max_bytes: int,
    weights: Sequence[int] | None = None,
) -> Iterator[list[tuple[str, PointData]]]:
    """`items` cut into requests of at most `max_points` points and `max_bytes` bytes (`point_bytes`,
    or the items' `weights` when the caller has them already); a point heavier than `max_bytes` goes
    alone."""
    batch: list[tuple[str, PointData]] = []
    size = 0
    for i, item in enumerate(items):
        weight = weights[i] if weights is not None else point_bytes(item[1])
        if batch and (len(batch) >= max_points or size + weight > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += weight
    if batch:
        yield batch


def retryable(e: BaseException) -> bool:
    """Whether a failed write is worth retrying: HTTP 429 or 5xx, a timeout, a dropped connection, or
    a server that says "Please retry" (what parallel writes to Qdrant meet under load)."""
    seen: BaseException | None = e
    for _ in range(4):  # the error, and what it wraps (ClientStore raises MMRAGError from the client's)
        if seen is None:
            return False
        status = getattr(seen, "status_code", None)
        if isinstance(status, int) and (status == 429 or status >= 500):
            return True
        name = type(seen).__name__
        if "Timeout" in name or "Connect" in name or name == "ResponseHandlingException":
            return True
        if any(w in str(seen).lower() for w in _RETRY_WORDS):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def with_retries(
    write: Callable[[], None],
    retries: int,
    base: float = 0.5,
    cap: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Run `write`, retrying it up to `retries` times while it fails with a `retryable` error, after
    an exponential backoff with jitter (`base` * 2^attempt, at most `cap` seconds). Returns the
    retries it took.

    Raises:
        Exception: The last error, once retries are spent or when it is not retryable.
    """
    for attempt in range(retries + 1):
        try:
            write()
            return attempt
        except Exception as e:
            if attempt >= retries or not retryable(e):
                raise
            sleep(min(cap, base * 2**attempt) * (0.5 + random.random() / 2))
    raise AssertionError("unreachable")  # pragma: no cover


class LocalWrites:
    """The driver writes each request itself (the embedded store), acknowledged at once."""

    def __init__(self, store: Store, retries: int) -> None:
        self.store, self.retries = store, retries
        self.seconds = 0.0
        self.requests = 0
        self.retried = 0

    def send(self, batch: list[tuple[str, PointData]]) -> list[Ack]:
        t0 = time.perf_counter()
        self.retried += with_retries(lambda: self.store.upsert([p for _, p in batch]), self.retries)
        self.seconds += time.perf_counter() - t0
        self.requests += 1
        return [(key, p.id) for key, p in batch]

    def poll(self, block: bool = False) -> list[Ack]:
        return []

    def busy(self) -> bool:
        return False

    def close(self) -> None:
        return None


class ShardWriter:
    """A writer actor: its own client to the Qdrant collection, writing the requests it is sent.

    Args:
        url: The server (the driver made the collection; `local:/folder` in tests).
        schema: The collection's vector spaces (checked against the collection).
        collection: Collection name.
        api_key: Qdrant API key.
        options: Timeouts and search options of the store.
        retries: Retries of a refused request (`with_retries`).
    """

    def __init__(
        self, url: str, schema: StoreSchema, collection: str, api_key: str | None, options: Any, retries: int
    ) -> None:
        from mmrag.store.server import ClientStore

        self.store = ClientStore(url, schema, collection, api_key=api_key, options=options)
        self.retries = retries

    def write(self, points: list[PointData]) -> tuple[float, int]:
        """Upsert one request (waiting for the server to apply it); (seconds, retries taken)."""
        t0 = time.perf_counter()
        retried = with_retries(lambda: self.store.upsert(points), self.retries)
        return time.perf_counter() - t0, retried


class ActorWrites:
    """Requests spread over `ShardWriter` actors, round robin, at most `in_flight` each."""

    def __init__(self, ray: Any, writers: list[Any], in_flight: int = 2) -> None:
        self.ray, self.writers = ray, writers
        self.limit = in_flight * len(writers)
        self.pending: dict[Any, list[Ack]] = {}
        self._next = 0
        self.seconds = 0.0
        self.requests = 0
        self.retried = 0

    def send(self, batch: list[tuple[str, PointData]]) -> list[Ack]:
        acks = self.poll(block=len(self.pending) >= self.limit)
        writer = self.writers[self._next % len(self.writers)]
        self._next += 1
        self.pending[writer.write.remote([p for _, p in batch])] = [(key, p.id) for key, p in batch]
        return acks

    def poll(self, block: bool = False) -> list[Ack]:
        """Acknowledgements of the requests done (waiting for one when `block` and any is pending).

        Raises:
            MMRAGError: A request failed after its retries (the run stops; a rerun resumes).
        """
        if not self.pending:
            return []
        refs = list(self.pending)
        ready, _ = self.ray.wait(refs, num_returns=1 if block else len(refs), timeout=None if block else 0)
        acks: list[Ack] = []
        for ref in ready:
            done = self.pending.pop(ref)
            try:
                seconds, retried = self.ray.get(ref)
            except Exception as e:
                raise MMRAGError(f"writing points failed after retries: {e}") from e
            self.seconds += seconds
            self.retried += retried
            self.requests += 1
            acks.extend(done)
        return acks

    def busy(self) -> bool:
        """Whether requests are in flight."""
        return bool(self.pending)

    def close(self) -> None:
        for w in self.writers:
            self.ray.kill(w)


def start_writers(ray: Any, store: Any, cfg: MMRAGConfig) -> ActorWrites:
    """One `ShardWriter` per shard of the collection (or `ray.writers`), on a fraction of a CPU each,
    writing to the collection that the driver's `store` opened (its schema and options)."""
    st = cfg.store
    n = cfg.ray.writers or _shards(store)
    actor = ray.remote(num_cpus=0.1, max_restarts=-1, max_task_retries=2)(ShardWriter)
    args = (st.url, store.schema, st.collection, st.api_key, store.options, cfg.ray.write_retries)
    return ActorWrites(ray, [actor.remote(*args) for _ in range(max(1, n))])


def _shards(store: Any) -> int:
    try:
        info = store.client.get_collection(store.collection)
        return int(info.config.params.shard_number or 1)
    except Exception:  # local mode and older servers may not say: one writer
        return 1


def on_server(url: str | None) -> bool:
    """Whether a store URL is a Qdrant server that several writers can share (not the embedded
    engine, nor qdrant-client's in-process local mode, which one process holds)."""
    from mmrag.store.server_setup import local_mode

    return url is not None and not local_mode(url)


def begin_bulk(cfg: MMRAGConfig, schema: StoreSchema, options: ServerOptions) -> None:
    """Create a new server collection for a bulk load: HNSW off (`m=0`), payload indexes first.

    A collection that exists with `m=0` is an interrupted bulk load, taken up again.

    Raises:
        MMRAGError: No server is configured, or the collection exists as a searchable one.
    """
    import dataclasses

    from mmrag.store.server import ClientStore
    from mmrag.store.server_setup import connect

    st = cfg.store
    if not on_server(st.url):
        raise MMRAGError("--bulk loads a new collection on a Qdrant server: give --qdrant-url")
    assert st.url is not None
    client, _ = connect(st.url, st.api_key, st.timeout)
    try:
        if client.collection_exists(st.collection):
            m = client.get_collection(st.collection).config.hnsw_config.m
            if m != 0:
                raise MMRAGError(
                    f"--bulk loads a new collection, and {st.collection!r} exists at {st.url}; "
                    "index without --bulk, or into a new collection"
                )
            return
    finally:
        client.close()
    ClientStore(st.url, dataclasses.replace(schema, hnsw_m=0), st.collection, st.api_key, options).close()


def end_bulk(store: Any, m: int) -> None:
    """Build the HNSW graph of a bulk-loaded collection with the configured degree `m`."""
    from mmrag.store.server_setup import import_client

    _, models = import_client()
    store.client.update_collection(store.collection, hnsw_config=models.HnswConfigDiff(m=m))
