"""`mmrag index --ray`: encoding and ingest on Ray Data, into the index's own store and file table.

The driver lists the sources (local folders and fsspec URLs, `mmrag.index.sources`) and skips the
files whose listing stamp matches the file table without reading them. The rest flow through a
Ray Data pipeline (`mmrag.index.ray_stages`): read tasks (one file each: copy to scratch, hash,
chunks), then a pool of encoder actors (`ray.encoders` of them, `ray.gpus_per_encoder` GPUs each)
that encode batches spanning files. The driver takes the points as they come, writes them in
byte-capped requests (itself for the embedded store; writer actors for a Qdrant server,
`mmrag.index.ray_write`), and records each file once all its points are acknowledged, through the
same `FileRecorder` as `mmrag index` (a flush of the store, then the file table).

What holds after a failure:
- a killed read task or encoder actor is retried once by Ray (`max_retries`, `max_task_retries`); a
  file whose rows never all come back (a worker died on it twice) is reported failed, its partial
  points dropped, and the run goes on (`max_errored_blocks = -1`);
- a killed driver leaves recorded files recorded: the same command skips them and redoes the rest,
  and the deterministic point ids (content hash and locator) make the redone writes overwrite.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.index.indexer import discover_files
from mmrag.index.progress import progress_bar
from mmrag.index.ray_stages import ChunkEncoder, Encoded, FileDone, read_file, stage_rows, unpack
from mmrag.index.ray_write import (
    LocalWrites,
    begin_bulk,
    end_bulk,
    on_server,
    point_bytes,
    request_batches,
    start_writers,
)
from mmrag.index.record import FileRecorder
from mmrag.index.sources import RAY_EXTRA, Source, is_url, local_sources, remote_sources
from mmrag.types import FileError, IndexReport, MMRAGError

if TYPE_CHECKING:
    from mmrag.config import MMRAGConfig
    from mmrag.index.folder import FileTable
    from mmrag.index.updates import IndexUpdates
    from mmrag.types import PointData

# Files that share an input block past this many files (a block is what Ray retries or gives up).
MAX_BLOCKS = 10_000
INCOMPLETE = "a Ray worker died twice on it (not all of its chunks came back); see the Ray logs"


def import_ray() -> Any:
    """The `ray` module with Ray Data, or an error naming the extra to install."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise MMRAGError(f"--ray needs Ray Data: {RAY_EXTRA}") from e
    return ray


def start_ray(ray: Any, address: str) -> tuple[bool, float]:
    """Join the cluster at `address` (`local`: start one here) unless this process already has one;
    whether it was started here, and the seconds it took."""
    if ray.is_initialized():
        return False, 0.0
    t0 = time.perf_counter()
    if address == "local":
        ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING)
    else:
        ray.init(address=address, logging_level=logging.WARNING)
    return True, time.perf_counter() - t0


@dataclass
class StageStats:
    """What each stage did and the seconds it spent: task and actor seconds are summed over workers,
    so `files / read_seconds` is one read task's rate and `chunks / encode_seconds` one actor's."""

    ray_start_seconds: float = 0.0
    wall_seconds: float = 0.0
    first_row_seconds: float = 0.0
    """From submitting the pipeline to its first row: worker start-up and model loading."""
    files_read: int = 0
    bytes_read: int = 0
    read_seconds: float = 0.0
    chunks_encoded: int = 0
    encode_seconds: float = 0.0
    points_written: int = 0
    write_seconds: float = 0.0
    write_requests: int = 0
    write_retries: int = 0
    _t0: float = field(default_factory=time.perf_counter, repr=False)

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in dataclasses.asdict(self).items() if not k.startswith("_")}
        d["read_files_per_task_s"] = _rate(self.files_read, self.read_seconds)
        d["encode_chunks_per_actor_s"] = _rate(self.chunks_encoded, self.encode_seconds)
        d["write_points_per_s"] = _rate(self.points_written, self.write_seconds)
        d["points_per_wall_s"] = _rate(self.points_written, self.wall_seconds)
        return d

    def status(self) -> str:
        """The live line after the progress bar: points, and each stage's rate over the run so far."""
        s = max(1e-9, time.perf_counter() - self._t0)
        return (
            f"{self.points_written} points · per s: read {self.files_read / s:.1f} files, "
            f"encode {self.chunks_encoded / s:.1f} chunks"
        )


def _rate(n: float, seconds: float) -> float | None:
    return round(n / seconds, 3) if seconds > 0 else None


def ray_index(
    updates: IndexUpdates, paths: Sequence[str | Path], progress: bool = False, strict: bool = False
) -> tuple[IndexReport, StageStats]:
    """Index `paths` (folders, files, fsspec URLs) on the Ray cluster at `config.ray.address`.

    The caller finishes the index afterwards (search graphs, banks, manifest: `IndexUpdates.finish`).

    Raises:
        MMRAGError: Ray is not installed, the cluster cannot be joined, a write failed after its
            retries, or (`strict`) a file failed.
    """
    cfg, folder = updates.config, updates.folder
    ray = import_ray()
    t0 = time.perf_counter()
    files = folder.files  # (makes the folder)
    folder.save()  # the manifest first: an index interrupted before its first point still opens
    found, report = discover_files(cfg, files, [p for p in paths if not is_url(p)], strict)
    local, errors = local_sources(found)
    remote, remote_errors = remote_sources([str(p) for p in paths if is_url(p)])
    report.files_seen += len(remote) + len(remote_errors)
    report.errors.extend(errors + remote_errors)
    if strict and report.errors:
        raise MMRAGError(f"{report.errors[0].path}: {report.errors[0].reason}")
    todo, known = plan(local + remote, files, report)
    stats = StageStats()
    if cfg.ray.bulk:
        schema = folder.embedders.schema(cfg.store.hnsw_m, cfg.store.hnsw_ef_construct, cfg.store.on_disk)
        begin_bulk(cfg, schema, _server_options(cfg))
    if todo:
        _run(ray, cfg, updates, todo, known, report, stats, progress, strict)
    if cfg.ray.bulk:
        end_bulk(folder.store, cfg.store.hnsw_m)
    report.seconds = stats.wall_seconds = time.perf_counter() - t0
    return report, stats


def plan(
    sources: Sequence[Source], files: FileTable, report: IndexReport
) -> tuple[list[tuple[Source, str]], dict[str, int]]:
    """The sources to read, each with the hash recorded for it (""), leaving out (and counting as
    skipped) those whose stamp matches the record; and the points recorded for each file."""
    records = {r.path: r for r in files.all()}
    todo = []
    for s in sorted(sources, key=lambda s: s.key):
        rec = records.get(s.key)
        if rec is not None and s.stamp is not None and rec.stamp == s.stamp:
            report.files_skipped += 1
        else:
            todo.append((s, rec.hash if rec is not None else ""))
    return todo, {k: r.points for k, r in records.items()}


def _server_options(cfg: MMRAGConfig) -> Any:
    from mmrag.store.server_setup import ServerOptions

    return ServerOptions.from_config(cfg.store)


def _run(
    ray: Any,
    cfg: MMRAGConfig,
    updates: IndexUpdates,
    todo: list[tuple[Source, str]],
    known: dict[str, int],
    report: IndexReport,
    stats: StageStats,
    progress: bool,
    strict: bool,
) -> None:
    store = updates.folder.store
    embedded = not on_server(cfg.store.url)
    started, stats.ray_start_seconds = start_ray(ray, cfg.ray.address or "local")
    writes: Any = None
    quiet = logging.getLogger("ray.data")  # its INFO and WARNING lines would break the progress bar
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        writes = LocalWrites(store, cfg.ray.write_retries) if embedded else start_writers(ray, store, cfg)
        submitted = time.perf_counter()
        rows = dataset(ray, todo, cfg).iter_rows()
        with progress_bar(progress, len(todo), "indexing (ray)", status=stats.status) as bar:
            recorder = FileRecorder(store, updates.folder.files, cfg.ingest.commit_seconds)
            driver = Driver(recorder, writes, cfg, report, stats, known, bar, strict)
            driver.run(rows, [s.key for s, _ in todo], submitted)
    finally:
        quiet.setLevel(level)
        if writes is not None:
            writes.close()
        if started:
            ray.shutdown()


def dataset(ray: Any, todo: list[tuple[Source, str]], cfg: MMRAGConfig) -> Any:
    """The Ray Data pipeline: one read task per file, then the pool of encoder actors."""
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the driver draws its own
    ctx.print_on_execution_start = False
    ctx.max_errored_blocks = -1  # a block a worker died on twice: its files are reported, the run goes on
    rc = cfg.ray
    shared = dataclasses.replace(cfg, store=dataclasses.replace(cfg.store, api_key=None))
    ds = ray.data.from_items(stage_rows(todo), override_num_blocks=min(len(todo), MAX_BLOCKS))
    with warnings.catch_warnings():
        # Ray 2.60 has no named parameter for task and actor retries; these still work (until 2.64).
        warnings.filterwarnings("ignore", message=".*ray_remote_args.*")
        ds = ds.flat_map(read_file, fn_kwargs={"cfg": shared}, num_cpus=rc.read_cpus, max_retries=1)
        bs = max(1, cfg.encoders.batch_size)
        return ds.map_batches(
            ChunkEncoder,
            fn_constructor_kwargs={"encoders": cfg.encoders, "batch_size": bs},
            batch_size=bs,
            compute=ray.data.ActorPoolStrategy(size=max(1, min(rc.encoders, len(todo)))),
            num_cpus=rc.encoder_cpus,
            num_gpus=rc.gpus_per_encoder or None,
            max_restarts=-1,
            max_task_retries=1,
        )


@dataclass(eq=False)
class _File:
    key: str
    done: FileDone | None = None
    written: list[str] = field(default_factory=list)  # acknowledged point ids
    outstanding: int = 0  # points buffered or in flight
    failed: bool = False
    finished: bool = False


class Driver:
    """Takes the pipeline's rows: buffers points into requests, counts acknowledgements, records
    finished files, drops failed ones. `run` consumes the rows and settles every file."""

    def __init__(
        self,
        recorder: FileRecorder,
        writes: Any,
        cfg: MMRAGConfig,
        report: IndexReport,
        stats: StageStats,
        known: dict[str, int],
        advance: Any,
        strict: bool,
    ) -> None:
        self.recorder, self.store, self.writes = recorder, recorder.store, writes
        self.report, self.stats, self.known, self.advance, self.strict = report, stats, known, advance, strict
        self.max_points, self.max_bytes = max(1, cfg.ray.write_points), max(1, cfg.ray.write_bytes)
        self.every = cfg.ingest.commit_seconds
        self.files: dict[str, _File] = {}
        self.buffer: list[tuple[str, PointData]] = []
        self.weights: list[int] = []  # `point_bytes` of each buffered point, weighed once
        self.buffer_bytes = 0
        self.last_send = time.monotonic()
        self.stop: MMRAGError | None = None

    def run(self, rows: Iterable[dict[str, Any]], keys: Sequence[str], submitted: float) -> None:
        try:
            for r in rows:
                if not self.stats.first_row_seconds:
                    self.stats.first_row_seconds = time.perf_counter() - submitted
                self.take(r)
                if self.stop is not None:
                    break
            self.send(everything=True)
            while self.writes.busy():
                self.acked(self.writes.poll(block=True))
            self.sync_stats()
            for key in keys:  # what never came back in full, after Ray's retries
                f = self.files.setdefault(key, _File(key))
                if not f.finished and self.stop is None:
                    self.fail(f, INCOMPLETE)
        finally:
            for f in self.files.values():
                if not f.finished and f.written:
                    self.store.delete_ids(f.written)
            self.recorder.commit(force=True)
        if self.stop is not None:
            raise self.stop

    def take(self, r: dict[str, Any]) -> None:
        key, kind = str(r["key"]), str(r["kind"])
        f = self.files.setdefault(key, _File(key))
        if f.failed or f.finished:
            return  # late rows of a file that failed
        value = unpack(r["blob"])
        if kind == "points":
            self.points(f, value)
        elif kind in ("done", "same"):
            st = self.stats
            st.files_read, st.bytes_read, st.read_seconds = (
                st.files_read + 1, st.bytes_read + value.bytes_read, st.read_seconds + value.read_seconds
            )  # fmt: skip
            f.done = value
            self.complete(f, same=kind == "same")
        elif kind == "ignored":
            self.drop(f)
            self.report.ignored.append(FileError(key, str(value)))
            self.settle(f)
        else:
            self.fail(f, str(value))
        if self.buffer and time.monotonic() - self.last_send >= self.every:
            self.send(everything=True)  # files waiting on a part-filled request get recorded

    def points(self, f: _File, enc: Encoded) -> None:
        self.stats.chunks_encoded += len(enc.points)
        self.stats.encode_seconds += enc.seconds
        f.outstanding += len(enc.points)
        for p in enc.points:
            self.buffer.append((f.key, p))
            self.weights.append(point_bytes(p))
            self.buffer_bytes += self.weights[-1]
        self.send(everything=False)

    def send(self, everything: bool) -> None:
        """Send full requests (`everything`: the part-filled last one too), and take acknowledgements."""
        while self.buffer and (
            everything or len(self.buffer) >= self.max_points or self.buffer_bytes >= self.max_bytes
        ):
            batch = next(request_batches(self.buffer, self.max_points, self.max_bytes, self.weights))
            self.buffer_bytes -= sum(self.weights[: len(batch)])
            del self.buffer[: len(batch)], self.weights[: len(batch)]
            self.acked(self.writes.send(batch))
            self.last_send = time.monotonic()
        self.acked(self.writes.poll(block=False))
        self.sync_stats()

    def sync_stats(self) -> None:
        w, st = self.writes, self.stats
        st.write_seconds, st.write_requests, st.write_retries = w.seconds, w.requests, w.retried

    def acked(self, acks: list[tuple[str, str]]) -> None:
        touched: dict[str, _File] = {}
        stale: list[str] = []
        for key, pid in acks:
            f = self.files[key]
            f.outstanding -= 1
            (stale if f.failed else f.written).append(pid)
            touched[key] = f
        if stale:
            self.store.delete_ids(stale)  # in flight when their file failed
        for f in touched.values():
            self.complete(f)

    def complete(self, f: _File, same: bool = False) -> None:
        """Record the file if its points are all acknowledged (or its content is unchanged)."""
        d = f.done
        if d is None or f.failed or f.finished or f.outstanding or len(f.written) < d.chunks:
            return
        if same:  # unchanged content under a new stamp: record the stamp, keep the points
            self.recorder.record(f.key, d.digest, d.version, self.known.get(f.key, 0), d.stamp)
            self.report.files_skipped += 1
        else:
            self.recorder.delete_stale(f.key, d.digest)
            self.recorder.record(f.key, d.digest, d.version, d.chunks, d.stamp)
            self.report.files_indexed += 1
            self.report.points_written += d.chunks
            self.stats.points_written += d.chunks
        self.settle(f)

    def fail(self, f: _File, reason: str) -> None:
        self.drop(f)
        if self.strict:
            self.stop = self.stop or MMRAGError(f"{f.key}: {reason}")
        else:
            self.report.errors.append(FileError(f.key, reason))
        self.settle(f)

    def drop(self, f: _File) -> None:
        """Forget a file's buffered points and delete those written."""
        f.failed = True
        kept = [i for i, (k, _) in enumerate(self.buffer) if k != f.key]
        self.buffer, self.weights = [self.buffer[i] for i in kept], [self.weights[i] for i in kept]
        self.buffer_bytes = sum(self.weights)
        if f.written:
            self.store.delete_ids(f.written)
            f.written = []

    def settle(self, f: _File) -> None:
        f.finished = True
        self.advance(1, Path(f.key).name[:30])
