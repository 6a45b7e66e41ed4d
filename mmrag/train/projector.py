"""Projector training, LLaVA stage 1: the tower and the LM stay frozen, only the projector learns.

With `lora=True` it is stage 2 instead: LoRA adapters on the LM's attention (peft) train together
with the projector; the base LM weights still never change, and the adapters are saved in the
bridge folder beside the projector.

The tower never changes, so its features are computed once per image and cached on disk; a step
is then one LM forward/backward on short sequences. The loss covers the answer tokens only.
Checkpoints (projector, optimiser, step, RNG) let an interrupted run resume where it stopped.

Example:
    >>> metrics = train_projector(TrainConfig(out="./bridge", max_pairs=6000))
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.generate.bridge import BridgeConfig
from mmrag.generate.llm import cache_dir
from mmrag.train.data import Pair, load_pairs
from mmrag.types import MMRAGError

if TYPE_CHECKING:
    import torch

    from mmrag.generate.bridge import BridgeModel

CHECKPOINT = "checkpoint.pt"


@dataclass
class TrainConfig:
    """One projector training run."""

    bridge: BridgeConfig = field(default_factory=BridgeConfig)
    """What to build (tower, LM, tokens); the projector starts random."""
    data: str = "easy-vqa"
    """`easy-vqa`, a `.jsonl` of image/question/answer (or caption) lines, or a captioned-image folder."""
    out: str = str(cache_dir() / "bridges" / "efficientnet-smollm2")
    """Bridge folder to write (config, projector weights, checkpoint, metrics)."""
    max_pairs: int = 6000
    """Pairs drawn (seeded) from the data; one pass over them."""
    max_images: int = 0
    """Draw the pairs from this many images only (0: all). Tower features cost per image (~0.1 s
    each for EfficientNet-Lite0 on one CPU core), so fewer images with several questions each is cheaper."""
    batch_size: int = 32
    lr: float = 1e-3
    warmup_steps: int = 10
    """Linear warm-up, then cosine decay to zero."""
    seed: int = 0
    checkpoint_every: int = 50
    """Steps between checkpoints."""
    resume: bool = True
    """Continue from `out/checkpoint.pt` when present."""
    device: str = "auto"
    quantize: bool | None = False
    """4-bit LM while training (slower on CPU; saves memory on a GPU)."""
    lora: bool = False
    """Stage 2: also train LoRA adapters on the LM (needs peft)."""
    lora_r: int = 8
    """Rank of the LoRA update matrices."""
    lora_alpha: int = 16
    """LoRA scaling numerator: the update is scaled by `lora_alpha / lora_r`."""
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    """LM Linear layers (by name suffix) that get adapters."""


def feature_cache(
    bridge: BridgeModel, images: list[str], batch: int = 64, progress: Any = None
) -> torch.Tensor:
    """Tower features (N, T, D) for `images`, cached under `<cache>/features/` by tower and image list."""
    import torch
    from PIL import Image
    from safetensors.torch import load_file, save_file

    c = bridge.config
    key = hashlib.sha256(
        "\n".join([c.vision, c.vision_feature, str(c.vision_layer), str(c.n_visual_tokens), *images]).encode()
    ).hexdigest()[:20]
    path = cache_dir() / "features" / f"{key}.safetensors"
    if path.is_file():
        return load_file(str(path))["features"]
    task = progress.add_task("tower features", total=len(images), info="") if progress else None
    chunks = []
    for i in range(0, len(images), batch):
        ims = [Image.open(p).convert("RGB") for p in images[i : i + batch]]
        chunks.append(bridge.vision_features(ims).float().cpu())
        if progress:
            progress.advance(task, len(ims))
    feats = torch.cat(chunks)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"features": feats.contiguous()}, str(path))
    return feats


def encode_pair(bridge: BridgeModel, pair: Pair) -> tuple[list[int], list[int]]:
    """`(input_ids, labels)`: chat-templated prompt with one image, then the answer (the only labels)."""
    prompt, answer = bridge.chat_parts(pair.question, 1, pair.answer)
    p, a = bridge._ids(prompt), bridge._ids(answer)
    return p + a, [-100] * len(p) + a


def _collate(rows: list[tuple[list[int], list[int]]], pad: int) -> dict[str, torch.Tensor]:
    import torch

    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    labels = torch.full_like(ids, -100)
    mask = torch.zeros_like(ids)
    for i, (x, y) in enumerate(rows):
        ids[i, : len(x)], labels[i, : len(y)], mask[i, : len(x)] = torch.tensor(x), torch.tensor(y), 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def _lr_factor(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def _trained_state(bridge: BridgeModel) -> dict[str, Any]:
    state: dict[str, Any] = {"projector": bridge.projector.state_dict()}
    if bridge.has_lora:
        from peft import get_peft_model_state_dict

        state["adapter"] = get_peft_model_state_dict(bridge.llm)
    return state


def _save_checkpoint(
    path: Path, bridge: BridgeModel, opt: Any, sched: Any, step: int, losses: list[float]
) -> None:
    import torch

    state = {**_trained_state(bridge), "optimizer": opt.state_dict(), "scheduler": sched.state_dict()}
    torch.save({**state, "step": step, "losses": losses}, str(path))


def _load_checkpoint(path: Path, bridge: BridgeModel, opt: Any, sched: Any) -> tuple[int, list[float]]:
    """Restore projector, adapters, optimiser and schedule; `(next step, losses so far)`."""
    import torch

    state = torch.load(str(path), map_location="cpu", weights_only=True)
    bridge.projector.load_state_dict(state["projector"])
    if bridge.has_lora != ("adapter" in state):
        raise MMRAGError(f"{path}: checkpoint and run disagree on LoRA; pass --no-resume to start over")
    if bridge.has_lora:
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(bridge.llm, state["adapter"])
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    return int(state["step"]), list(state["losses"])


def train_projector(cfg: TrainConfig, show_progress: bool = True) -> dict[str, Any]:
    """Train the bridge's projector (and LoRA adapters when `cfg.lora`) and save the bridge to `cfg.out`.

    Returns:
        Metrics: pairs, steps, seconds (features and training), first and last loss (mean of 10 steps).
    """
    import torch
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from mmrag.generate.bridge import BridgeModel

    t0 = time.perf_counter()
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    pairs = load_pairs(cfg.data, "train")
    rng = random.Random(cfg.seed)
    if cfg.max_images:
        all_images = sorted({p.image for p in pairs})
        keep = set(rng.sample(all_images, min(cfg.max_images, len(all_images))))
        pairs = [p for p in pairs if p.image in keep]
    pairs = rng.sample(pairs, min(cfg.max_pairs, len(pairs)))
    bridge = BridgeModel.from_config(cfg.bridge, device=cfg.device, quantize=cfg.quantize)
    if cfg.lora:
        bridge.add_lora(cfg.lora_r, cfg.lora_alpha, cfg.lora_targets)
    images = sorted({p.image for p in pairs})
    index = {img: i for i, img in enumerate(images)}
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    steps = math.ceil(len(pairs) / cfg.batch_size)
    # the projector, plus the LoRA adapters in stage 2: everything else is frozen
    params = [p for p in bridge.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, cfg.warmup_steps, steps))
    start, losses = 0, list[float]()
    ckpt = out / CHECKPOINT
    if cfg.resume and ckpt.is_file():
        start, losses = _load_checkpoint(ckpt, bridge, opt, sched)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[info]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, disable=not show_progress) as progress:
        t_feat = time.perf_counter()
        feats = feature_cache(bridge, images, progress=progress)
        t_feat = time.perf_counter() - t_feat
        encoded = [encode_pair(bridge, p) for p in pairs]
        pad = int(bridge.tokenizer.pad_token_id or 0)
        task = progress.add_task("projector", total=steps, completed=start, info="")
        t_train = time.perf_counter()
        bridge.projector.train()
        for step in range(start, steps):
            lo = step * cfg.batch_size
            batch = _collate(encoded[lo : lo + cfg.batch_size], pad)
            vf = feats[[index[p.image] for p in pairs[lo : lo + cfg.batch_size]]]
            loss = bridge(**{k: v.to(bridge.device) for k, v in batch.items()}, vision_features=vf).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            progress.update(task, advance=1, info=f"loss {sum(losses[-10:]) / len(losses[-10:]):.3f}")
            if (step + 1) % cfg.checkpoint_every == 0 and step + 1 < steps:
                _save_checkpoint(ckpt, bridge, opt, sched, step + 1, losses)
        t_train = time.perf_counter() - t_train
    bridge.projector.eval()
    bridge.save(out)
    ckpt.unlink(missing_ok=True)
    metrics = {
        "pairs": len(pairs),
        "images": len(images),
        "steps": steps,
        "resumed_from": start,
        "batch_size": cfg.batch_size,
        "lr": cfg.lr,
        "seed": cfg.seed,
        "lora": cfg.lora,
        "trainable_params": sum(p.numel() for p in params),
        "feature_seconds": round(t_feat, 1),
        "train_seconds": round(t_train, 1),
        "total_seconds": round(time.perf_counter() - t0, 1),
        "loss_first10": round(sum(losses[:10]) / max(1, len(losses[:10])), 4),
        "loss_last10": round(sum(losses[-10:]) / max(1, len(losses[-10:])), 4),
        "config": {**asdict(cfg), "bridge": cfg.bridge.to_dict()},
    }
    (out / "train_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return metrics
