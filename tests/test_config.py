"""Config: profiles, TOML, environment and overrides fill one typed object, with clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmrag.config import MMRAGConfig
from mmrag.types import MMRAGError


def test_profiles_differ_in_encoders() -> None:
    off = MMRAGConfig.from_profile("offline")
    dflt = MMRAGConfig.from_profile("default")
    assert off.encoders.image == "efficientnet-lite0"
    assert off.encoders.text == "sentence-transformers/all-MiniLM-L6-v2"
    assert dflt.encoders.image != off.encoders.image
    with pytest.raises(MMRAGError, match="unknown profile"):
        MMRAGConfig.from_profile("nope")


def test_precedence_file_env_overrides(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text('profile = "offline"\nindex = "from-file"\n[ingest]\nclip_seconds = 7.5\n[search]\nk = 4\n')
    env = {"MMRAG_SEARCH_K": "6", "MMRAG_STORE_ON_DISK": "true", "MMRAG_QDRANT_URL": "http://h:6333"}
    cfg = MMRAGConfig.load(
        config_file=f, env=env, **{"search.fusion": "dbsf", "ingest.frames_per_clip": None}
    )
    assert cfg.profile == "offline" and cfg.index == "from-file"
    assert cfg.ingest.clip_seconds == 7.5  # file
    assert cfg.search.k == 6  # env beats file
    assert cfg.store.on_disk is True and cfg.store.url == "http://h:6333"
    assert cfg.search.fusion == "dbsf"  # explicit beats all
    assert cfg.ingest.frames_per_clip == 4  # None override changes nothing
    cfg2 = MMRAGConfig.load(config_file=f, env=env, **{"search.k": 2})
    assert cfg2.search.k == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[ingest]\nclip_secs = 3\n", "unknown config key ingest.clip_secs"),
        ("[search]\nk = 'many'\n", "bad value for search.k"),
        ("[search]\nfusion = 'max'\n", "bad value for search.fusion"),
        ("[nope]\na = 1\n", "unknown config key 'nope'"),
        ("not toml ===", "cannot read config file"),
    ],
)
def test_bad_config_files_name_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(MMRAGError, match=message) as e:
        MMRAGConfig.load(config_file=f, env={})
    assert "bad.toml" in str(e.value)


def test_api_key_never_serialised() -> None:
    cfg = MMRAGConfig.load(env={"MMRAG_QDRANT_API_KEY": "s3cret"})
    assert cfg.store.api_key == "s3cret"
    assert "s3cret" not in str(cfg.to_dict()) and "s3cret" not in repr(cfg)
