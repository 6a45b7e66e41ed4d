"""The projector bridge: a frozen vision tower, a LLaVA-style MLP projector and a causal LM, in one module.

Read top to bottom: `BridgeConfig` says what to build; the vision towers (`towers.py`) turn pixels
into features; `Projector` maps features into the LM's embedding space; `BridgeModel` splices them into the
prompt's embeddings and runs the LM (forward, generate, score_choices, save/load).

    image --tower--> (N, T, D) --projector--> (N, n_visual_tokens, H)
    prompt "...<image><image><image><image> what colour is the shape?..." --embed--> (B, L, H)
    the rows at <image> positions are replaced, in order, by the projected visual tokens --> LM

The prompt carries the placeholder `<image>` once per image; `BridgeModel.expand` repeats it
`n_visual_tokens` times so each visual token has a position. The placeholder is added to the
tokenizer only: its id never reaches the LM's embedding table (it is masked before the lookup),
so the LM is used unchanged and the saved bridge is just a config and the projector weights, plus
LoRA adapters on the LM (`adapter/`, peft's format) after LLaVA stage-2 training (`add_lora`).

This module imports torch at import time (its classes are `nn.Module`s); `mmrag.generate` imports
it lazily.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import torch
from torch import nn

from mmrag.device import resolve_device
from mmrag.generate.decode import generate_from, reuse_cache
from mmrag.generate.llm import load_causal_lm
from mmrag.generate.towers import EfficientNetTower, HFVisionTower, load_vision_tower
from mmrag.missing import bridge_missing
from mmrag.types import MMRAGError

if TYPE_CHECKING:
    from PIL import Image
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "BridgeConfig",
    "BridgeModel",
    "EfficientNetTower",
    "HFVisionTower",
    "Projector",
    "load_vision_tower",
    "read_config",
]

CONFIG_FILE = "bridge.json"
PROJECTOR_FILE = "projector.safetensors"
ADAPTER_DIR = "adapter"


@dataclass
class BridgeConfig:
    """What a bridge is made of; saved as `bridge.json` beside the projector weights."""

    vision: str = "efficientnet-lite0"
    """`efficientnet-lite0` (the packaged tower) or a transformers CLIP/SigLIP model id or folder."""
    llm: str = "smollm2-135m"
    """Causal LM: hub id, local folder, or a packaged short name."""
    vision_feature: Literal["pooled", "grid"] = "pooled"
    """`pooled`: one vector per image, expanded by the projector into `n_visual_tokens` tokens.
    `grid`: the spatial feature map average-pooled to a sqrt(n) x sqrt(n) grid, one token per cell."""
    vision_layer: int = -2
    """Hidden-state layer of a transformers tower for `grid` (LLaVA uses the penultimate one)."""
    n_visual_tokens: int = 4
    """Visual tokens per image in the LM's input (a square number for `grid`)."""
    projector_hidden: int = 1024
    """Width of the projector's hidden layer."""
    image_token: str = "<image>"
    """Placeholder token marking where an image goes in the prompt."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> BridgeConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise MMRAGError(f"{source}: unknown bridge config keys {sorted(unknown)}")
        cfg = cls(**data)
        if cfg.vision_feature == "grid" and math.isqrt(cfg.n_visual_tokens) ** 2 != cfg.n_visual_tokens:
            raise MMRAGError(
                f"{source}: grid features need a square n_visual_tokens, got {cfg.n_visual_tokens}"
            )
        return cfg


# --- projector: (N, T, D) -> (N, T * k, H) --------------------------------------------------------


class Projector(nn.Module):
    """LLaVA-1.5's projector: Linear -> GELU -> Linear.

    With a pooled feature (T = 1) the second layer is `tokens_per_feature` times wider and its output
    is split into that many LM tokens.
    """

    def __init__(self, in_dim: int, hidden: int, out_dim: int, tokens_per_feature: int = 1) -> None:
        super().__init__()
        self.out_dim = out_dim
        self.fc1 = nn.Linear(in_dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, out_dim * tokens_per_feature)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        out = self.fc2(self.act(self.fc1(features)))
        return out.reshape(features.shape[0], -1, self.out_dim)


# --- the bridge -----------------------------------------------------------------------------------


class BridgeModel(nn.Module):
    """Vision tower (frozen) + projector (trained) + causal LM (frozen), spliced at `<image>` tokens."""

    def __init__(
        self, config: BridgeConfig, tower: nn.Module, llm: PreTrainedModel, tokenizer: PreTrainedTokenizerBase
    ) -> None:
        super().__init__()
        self.config = config
        # Typed Any: transformers' and the towers' attribute types are too loose for mypy to follow.
        self.tower = cast(Any, tower.eval().requires_grad_(False))
        self.llm = cast(Any, llm.eval().requires_grad_(False))
        self.tokenizer = cast(Any, tokenizer)
        if config.image_token not in tokenizer.get_vocab():
            tokenizer.add_tokens([config.image_token], special_tokens=True)
        self.image_token_id = int(self.tokenizer.convert_tokens_to_ids(config.image_token))
        k = config.n_visual_tokens if config.vision_feature == "pooled" else 1
        emb = self.llm.get_input_embeddings()
        self.projector = Projector(int(self.tower.dim), config.projector_hidden, emb.embedding_dim, k)
        # The projector stays in the embedding dtype (16/32 bits) even when the LM is 4-bit.
        self.projector.to(device=emb.weight.device, dtype=emb.weight.dtype)

    @classmethod
    def from_config(
        cls, config: BridgeConfig, device: str = "auto", dtype: str = "auto", quantize: bool | None = None
    ) -> BridgeModel:
        """Build a bridge with a fresh (random) projector from the tower and LM the config names."""
        device = resolve_device(device)
        llm, tok = load_causal_lm(config.llm, device=device, dtype=dtype, quantize=quantize)
        return cls(config, load_vision_tower(config, device), llm, tok)

    @property
    def device(self) -> torch.device:
        return self.llm.get_input_embeddings().weight.device

    def add_lora(self, r: int = 8, alpha: int = 16, targets: Sequence[str] = ("q_proj", "v_proj")) -> None:
        """Wrap the LM with trainable LoRA adapters on the `targets` Linear layers (LLaVA stage 2).

        The base weights stay frozen; only the adapters (and the projector) have gradients.
        """
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError as e:
            raise MMRAGError("LoRA training needs peft: pip install 'mmrag[train]'") from e

        cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules=list(targets), bias="none")
        self.llm = get_peft_model(self.llm, cfg)

    @property
    def has_lora(self) -> bool:
        return hasattr(self.llm, "peft_config")

    # -- features and embeddings

    def vision_features(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Frozen tower output (N, T, D) for PIL images; cacheable, since the tower never trains."""
        pixels = self.tower.preprocess(images)
        return self.tower_forward(pixels)

    def tower_forward(self, pixels: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            tower_param = next(self.tower.parameters())
            return self.tower(pixels.to(tower_param.device, tower_param.dtype))

    def embed(
        self,
        input_ids: torch.Tensor,
        pixel_values: torch.Tensor | None = None,
        vision_features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Token embeddings with the projected visual tokens written over the `<image>` positions.

        Args:
            input_ids: (B, L) ids; each image occupies `n_visual_tokens` consecutive `<image>` ids.
            pixel_values: (N, C, H, W) images, in the order they appear in the batch.
            vision_features: Precomputed tower output (N, T, D) instead of `pixel_values`.
        """
        is_image = input_ids == self.image_token_id
        # The placeholder id may lie outside the LM's table; look up a harmless id instead.
        embeds = self.llm.get_input_embeddings()(input_ids.masked_fill(is_image, 0))
        if not is_image.any():
            return embeds
        if vision_features is None:
            if pixel_values is None:
                raise MMRAGError("the prompt has <image> tokens but no image was given")
            vision_features = self.tower_forward(pixel_values)
        visual = self.projector(vision_features.to(embeds.device, embeds.dtype))  # (N, n, H)
        if int(is_image.sum()) != visual.shape[0] * visual.shape[1]:
            raise MMRAGError(
                f"{int(is_image.sum())} <image> tokens in the prompt for {visual.shape[0]} image(s) of "
                f"{visual.shape[1]} tokens each"
            )
        # masked_scatter fills the masked rows in row-major order: images in order of appearance.
        return embeds.masked_scatter(is_image[..., None], visual.reshape(-1, visual.shape[-1]))

    def forward(
        self,
        input_ids: torch.Tensor,
        pixel_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        vision_features: torch.Tensor | None = None,
    ) -> Any:
        """The LM's output (`.logits`, and `.loss` when `labels` are given) on the spliced embeddings."""
        embeds = self.embed(input_ids, pixel_values, vision_features)
        return self.llm(inputs_embeds=embeds, attention_mask=attention_mask, labels=labels)

    # -- prompts

    def expand(self, text: str) -> str:
        """Repeat each `<image>` placeholder `n_visual_tokens` times."""
        return text.replace(self.config.image_token, self.config.image_token * self.config.n_visual_tokens)

    def chat_parts(self, question: str, n_images: int = 1, answer: str | None = None) -> tuple[str, str]:
        """`(prompt, answer_text)` rendered with the tokenizer's chat template.

        The prompt ends with the assistant turn's opening; `answer_text` is what the template puts
        after it for `answer` (the answer plus the end-of-turn marker), empty when no answer.
        """
        user = self.config.image_token * n_images + ("\n" if n_images else "") + question
        messages: list[dict[str, str]] = [{"role": "user", "content": user}]
        tok = self.tokenizer
        prompt = str(tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
        if answer is None:
            return self.expand(prompt), ""
        full = str(
            tok.apply_chat_template([*messages, {"role": "assistant", "content": answer}], tokenize=False)
        )
        if not full.startswith(prompt):
            raise MMRAGError("the chat template renders the assistant turn in a way the bridge cannot split")
        return self.expand(prompt), full[len(prompt) :]

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    # -- tasks

    def generate(
        self,
        question: str,
        images: Sequence[Image.Image] = (),
        max_new_tokens: int = 64,
        stream: bool = False,
        **gen_kw: Any,
    ) -> str | Iterator[str]:
        """Answer `question` about `images` (none for a text-only answer); greedy by default."""
        prompt, _ = self.chat_parts(question, len(images))
        ids = torch.tensor([self._ids(prompt)], device=self.device)
        feats = self.vision_features(images) if images else None
        with torch.inference_mode():
            embeds = self.embed(ids, vision_features=feats)
        inputs = {"inputs_embeds": embeds, "attention_mask": torch.ones_like(ids)}
        return generate_from(self.llm, self.tokenizer, inputs, max_new_tokens, stream, **gen_kw)

    def score_choices(
        self,
        image: Image.Image | None,
        question: str,
        choices: Sequence[str],
        vision_features: torch.Tensor | None = None,
    ) -> list[float]:
        """Log-likelihood of each answer (its tokens and the end-of-turn marker) given image and question.

        `image=None` (and no `vision_features`) scores the LM alone: the text-only baseline. The
        prompt runs once; the answers then run as one batch on its key/value cache.
        """
        has_image = image is not None or vision_features is not None
        prompt, _ = self.chat_parts(question, int(has_image))
        if vision_features is None and image is not None:
            vision_features = self.vision_features([image])
        prompt_ids = torch.tensor([self._ids(prompt)], device=self.device)
        answers = [self._ids(self.chat_parts(question, int(has_image), c)[1]) for c in choices]
        width = max(len(a) for a in answers)
        ids = torch.full((len(answers), width), int(self.tokenizer.pad_token_id or 0), dtype=torch.long)
        for i, a in enumerate(answers):
            ids[i, : len(a)] = torch.tensor(a)
        n_prompt = prompt_ids.shape[1]
        mask = torch.zeros(len(answers), n_prompt + width, dtype=torch.long)
        for i, a in enumerate(answers):
            mask[i, : n_prompt + len(a)] = 1  # answers are right-padded: padding sees nothing after it
        with torch.inference_mode():
            out = self.llm(
                inputs_embeds=self.embed(prompt_ids, vision_features=vision_features), use_cache=True
            )
            cache = reuse_cache(self.llm, out, repeat=len(answers))
            rest = self.llm(input_ids=ids.to(self.device), attention_mask=mask.to(self.device), **cache)
        # logits predicting answer token j: the prompt's last position for j = 0, else answer position j - 1
        logits = torch.cat([out.logits[:, -1:].expand(len(answers), 1, -1), rest.logits[:, :-1]], dim=1)
        logp = logits.float().log_softmax(-1).gather(-1, ids.to(logits.device)[..., None])[..., 0].cpu()
        return [float(logp[i, : len(a)].sum()) for i, a in enumerate(answers)]

    # -- persistence

    def save(self, folder: str | Path) -> Path:
        """Write `bridge.json`, `projector.safetensors` and any LoRA adapters; tower and LM are referenced."""
        from safetensors.torch import save_file

        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        (out / CONFIG_FILE).write_text(json.dumps(self.config.to_dict(), indent=2) + "\n", encoding="utf-8")
        state = {k: v.detach().float().cpu().contiguous() for k, v in self.projector.state_dict().items()}
        save_file(state, str(out / PROJECTOR_FILE), metadata={"format": "pt"})
        if self.has_lora:
            self.llm.save_pretrained(str(out / ADAPTER_DIR))
        return out

    @classmethod
    def load(
        cls, folder: str | Path, device: str = "auto", dtype: str = "auto", quantize: bool | None = None
    ) -> BridgeModel:
        """Rebuild a saved bridge: load its tower and LM by reference, then the trained projector."""
        from safetensors.torch import load_file

        src = Path(folder)
        config = read_config(src)
        bridge = cls.from_config(config, device=device, dtype=dtype, quantize=quantize)
        bridge.load_projector(load_file(str(src / PROJECTOR_FILE)), source=str(src / PROJECTOR_FILE))
        if (src / ADAPTER_DIR).is_dir():
            bridge.load_lora(src / ADAPTER_DIR)
        return bridge

    def load_lora(self, folder: str | Path) -> None:
        """Put saved LoRA adapters (peft's `save_pretrained` folder) on the LM, frozen, for inference."""
        try:
            from peft import PeftModel
        except ImportError as e:
            raise MMRAGError(f"{folder}: LoRA adapters need peft: pip install 'mmrag[train]'") from e
        try:
            self.llm = PeftModel.from_pretrained(self.llm, str(folder)).eval()
        except (OSError, ValueError, RuntimeError) as e:
            raise MMRAGError(f"{folder}: cannot load LoRA adapters: {e}") from e

    def load_projector(self, state: dict[str, torch.Tensor], source: str = "projector") -> None:
        """Load projector weights, refusing ones trained for another tower or LM width."""
        own = self.projector.state_dict()
        for k, v in own.items():
            if k not in state or state[k].shape != v.shape:
                got = tuple(state[k].shape) if k in state else "missing"
                raise MMRAGError(
                    f"{source}: projector weight {k} is {got}, this bridge needs {tuple(v.shape)}"
                )
        self.projector.load_state_dict(state, strict=True)


def read_config(folder: Path) -> BridgeConfig:
    """The `BridgeConfig` saved in a bridge folder."""
    path = folder / CONFIG_FILE
    if not folder.expanduser().exists():
        raise bridge_missing(folder)
    if not path.is_file():
        raise MMRAGError(f"{folder}: not a bridge folder (no {CONFIG_FILE})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise MMRAGError(f"{path}: cannot read bridge config: {e}") from e
    return BridgeConfig.from_dict(data, source=str(path))
