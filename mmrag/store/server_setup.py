"""Setting up a Qdrant server collection: `ServerOptions`, the collection's layout, connecting, checks.

`ClientStore` (`mmrag.store.server`) opens its collection through these: `connect` makes the
client (a server URL, `:memory:` or `local:/folder`), `collection_config` lays out a new collection,
`schema_differences` compares an existing one with the schema, and `explain` turns the client's
errors into messages that name the server and what to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mmrag.store.base import BM25, INT8_QUANTILE, SearchOptions, StoreSchema
from mmrag.types import IndexLockedError, MMRAGError

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

LOCAL_PREFIX = "local:"


def local_mode(url: str) -> bool:
    """Whether a store URL is qdrant-client's in-process local mode (`:memory:`, `local:<folder>`)."""
    return url == ":memory:" or url.startswith(LOCAL_PREFIX)


@dataclass(frozen=True)
class ServerOptions(SearchOptions):
    """Settings that only a Qdrant server applies (collection layout, timeouts), plus the search
    options both backends share.

    The layout fields take effect when the collection is created; an existing collection keeps
    its own. None leaves a setting to the server's default.
    """

    shard_number: int | None = None
    """Shards of a new collection: spread points over cluster nodes (set it to a multiple of the
    node count, so shards can be rebalanced as nodes are added)."""
    replication_factor: int | None = None
    """Copies of each shard; 2 survives the loss of one node."""
    write_consistency_factor: int | None = None
    """Replicas that must acknowledge a write before it succeeds (at most `replication_factor`)."""
    on_disk_payload: bool | None = None
    """Keep payloads on disk (memory-mapped) rather than in RAM."""
    timeout: int = 30
    """Seconds to wait for one request before giving up with an error naming the server."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("shard_number", "replication_factor", "write_consistency_factor"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise MMRAGError(f"store.{name} must be at least 1, got {value}")
        if self.timeout < 1:
            raise MMRAGError(f"store.timeout must be at least 1 second, got {self.timeout}")
        wcf, rf = self.write_consistency_factor, self.replication_factor
        if wcf is not None and wcf > (rf or 1):
            raise MMRAGError(
                f"store.write_consistency_factor ({wcf}) cannot exceed store.replication_factor ({rf or 1})"
            )


def collection_config(schema: StoreSchema, options: ServerOptions) -> dict[str, Any]:
    """The keyword arguments of `QdrantClient.create_collection` for `schema` under `options`."""
    _, m = import_client()
    quantization = None
    if options.quantization == "int8":
        quantization = m.ScalarQuantization(
            scalar=m.ScalarQuantizationConfig(
                type=m.ScalarType.INT8, quantile=INT8_QUANTILE, always_ram=options.quantization_always_ram
            )
        )
    return {
        "vectors_config": {
            name: m.VectorParams(size=dim, distance=m.Distance.COSINE, on_disk=schema.on_disk or None)
            for name, dim in schema.dense.items()
        }
        | {
            # Late interaction: MaxSim over token vectors, no HNSW graph (the space reranks a prefetch).
            name: m.VectorParams(
                size=dim,
                distance=m.Distance.COSINE,
                on_disk=schema.on_disk or None,
                multivector_config=m.MultiVectorConfig(comparator=m.MultiVectorComparator.MAX_SIM),
                hnsw_config=m.HnswConfigDiff(m=0),
            )
            for name, dim in schema.multi.items()
        },
        "sparse_vectors_config": {BM25: m.SparseVectorParams(modifier=m.Modifier.IDF)},
        "hnsw_config": m.HnswConfigDiff(m=schema.hnsw_m, ef_construct=schema.hnsw_ef_construct),
        "shard_number": options.shard_number,
        "replication_factor": options.replication_factor,
        "write_consistency_factor": options.write_consistency_factor,
        "on_disk_payload": options.on_disk_payload,
        "quantization_config": quantization,
    }


def import_client() -> tuple[Any, Any]:
    try:
        from qdrant_client import QdrantClient, models
    except ImportError as e:  # pragma: no cover - a core dependency
        raise MMRAGError("a Qdrant server store needs qdrant-client: pip install qdrant-client") from e
    return QdrantClient, models


def connect(url: str, api_key: str | None, timeout: int) -> tuple[QdrantClient, bool]:
    """The client for `url`, and whether it is qdrant-client's local (in-process) mode."""
    client_cls, _ = import_client()
    if url == ":memory:":
        return client_cls(location=":memory:"), True
    if url.startswith(LOCAL_PREFIX):
        folder = url[len(LOCAL_PREFIX) :]
        try:
            return client_cls(path=folder), True
        except RuntimeError as e:  # local mode locks its folder with a file lock
            raise IndexLockedError(f"{folder}: the store is open in another process: {e}") from e
    # The key goes to the client only: never into a message, a repr or a log line. The client's
    # own version check runs in a thread and can only warn; opening the collection below fails
    # with a clear message instead when the server is unreachable or refuses the key.
    return client_cls(url=url, api_key=api_key, timeout=timeout, check_compatibility=False), False


def explain(e: BaseException, url: str, timeout: int, api_key_given: bool) -> str:
    """What went wrong talking to the server at `url`, in words a user can act on."""
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    if isinstance(e, UnexpectedResponse) and e.status_code in (401, 403):
        if not api_key_given:
            code = e.status_code
            return f"the Qdrant server at {url} wants an API key (HTTP {code}): set MMRAG_QDRANT_API_KEY"
        return (
            f"the Qdrant server at {url} rejected the API key (HTTP {e.status_code}): "
            "check MMRAG_QDRANT_API_KEY"
        )
    cause = e.source if isinstance(e, ResponseHandlingException) else e
    name = type(cause).__name__
    if "Timeout" in name:
        return f"the Qdrant server at {url} did not answer within {timeout} s ({name}); raise store.timeout"
    if "Connect" in name or isinstance(cause, ConnectionError | OSError):
        return (
            f"cannot reach a Qdrant server at {url} ({name}: {cause}); is it running, "
            "and is --qdrant-url / MMRAG_QDRANT_URL right?"
        )
    return f"the Qdrant server at {url} failed: {type(e).__name__}: {e}"


def schema_differences(info: Any, schema: StoreSchema) -> list[str]:
    """What differs between an existing collection's vectors and `schema` (empty when compatible)."""
    _, models = import_client()
    params = info.config.params
    vectors = params.vectors if isinstance(params.vectors, dict) else {}
    if params.vectors is not None and not isinstance(params.vectors, dict):
        return ["the collection has one unnamed dense vector; mmrag needs named vectors"]
    diffs = []
    wanted = {**schema.dense, **schema.multi}
    for name in sorted(set(vectors) | set(wanted)):
        have, want = vectors.get(name), wanted.get(name)
        if have is None:
            diffs.append(f"dense vector {name!r} (dim {want}) is missing from the collection")
        elif want is None:
            diffs.append(f"the collection has dense vector {name!r} (dim {have.size}) that the schema lacks")
        elif have.size != want:
            diffs.append(f"dense vector {name!r} has dim {have.size} in the collection, {want} in the schema")
        elif have.distance != models.Distance.COSINE:
            diffs.append(f"dense vector {name!r} uses {have.distance} distance, not cosine")
        elif (have.multivector_config is not None) != (name in schema.multi):
            kind = "a multi-vector" if name in schema.multi else "a single vector"
            diffs.append(f"vector {name!r} is {kind} in the schema but not in the collection")
    sparse = (params.sparse_vectors or {}).get(BM25)
    if sparse is None:
        diffs.append(f"sparse vector {BM25!r} is missing from the collection")
    elif sparse.modifier != models.Modifier.IDF:
        diffs.append(f"sparse vector {BM25!r} has modifier {sparse.modifier}, not IDF")
    return diffs
