"""`MMRAGLLM`: mmrag's generators (text LLM, HF VLM, projector bridge) as a llama-index `CustomLLM`.

Chat messages are read block by block: `TextBlock`s make the text, `ImageBlock`s (the pictures
of retrieved `ImageNode`s in a multimodal query engine, or the user's own) go to a generator
that reads images, up to `max_images`, in message order. A text LLM gets the conversation
through its own chat template, turn by turn, and no images. The model loads on first use and
is shared with every pipeline of the process (`mmrag.answer.ask.load_generator`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseGen,
    ImageBlock,
    LLMMetadata,
    MessageRole,
    TextBlock,
)
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.constants import DEFAULT_CONTEXT_WINDOW
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.custom import CustomLLM

from .nodes import open_image

if TYPE_CHECKING:
    from PIL import Image

    from mmrag.config import GenerateConfig
    from mmrag.generate.loader import Generator
    from mmrag.pipeline import Pipeline

# Roles a chat template knows; the others are spoken by the user side.
_ROLES = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "chatbot": "assistant",
    "model": "assistant",
}


class MMRAGLLM(CustomLLM):
    """An mmrag generator behind llama-index's LLM interface (`complete`, `chat` and their streams).

    Example:
        >>> llm = MMRAGLLM(model="smollm2-135m", max_new_tokens=32)   # doctest: +SKIP
        >>> llm.complete("Name a primary colour.").text               # doctest: +SKIP

    Attributes:
        model: A packaged LLM (`smollm2-135m`), a hub id or folder of a causal LM or VLM, or a bridge folder.
        device: `auto`, `cpu`, `cuda`, ...
        quantize: 4-bit NF4 for the language model; None: on for CUDA, off on CPU.
        max_new_tokens: Upper bound on generated tokens (`max_tokens=` per call overrides it).
        max_images: Images passed to a generator that reads images, first ones first.
        context_window: Tokens the model reads; None reads it from the model's config (loads the model).
    """

    model: str = Field(default="smollm2-135m", description="Generator id (see GenerateConfig.model).")
    device: str = Field(default="auto", description="auto, cpu, cuda, ...")
    quantize: bool | None = Field(default=None, description="4-bit NF4; None: on for CUDA only.")
    max_new_tokens: int = Field(default=256, gt=0, description="Upper bound on generated tokens.")
    max_images: int = Field(default=2, ge=0, description="Images given to an image-reading generator.")
    context_window: int | None = Field(default=None, description="Context length; None: from the model.")
    _gen: Generator | None = PrivateAttr(default=None)

    @classmethod
    def from_config(cls, cfg: GenerateConfig, **kwargs: Any) -> MMRAGLLM:
        """The generator of a `GenerateConfig` (model, device, quantize, max_new_tokens, max_images)."""
        fields = {
            "model": cfg.model,
            "device": cfg.device,
            "quantize": cfg.quantize,
            "max_new_tokens": cfg.max_new_tokens,
            "max_images": cfg.max_images,
        }
        return cls(**{**fields, **kwargs})

    @classmethod
    def from_pipeline(cls, pipeline: Pipeline, **kwargs: Any) -> MMRAGLLM:
        """The generator configured for a pipeline (`config.generate`)."""
        return cls.from_config(pipeline.config.generate, **kwargs)

    @classmethod
    def class_name(cls) -> str:
        return "MMRAGLLM"

    @property
    def generator(self) -> Generator:
        """The loaded mmrag generator (loads it on first use)."""
        if self._gen is None:
            from mmrag.config import GenerateConfig
            from mmrag.generate.loader import load_generator

            cfg = GenerateConfig(model=self.model, device=self.device, quantize=self.quantize)
            self._gen = load_generator(cfg)
        return self._gen

    @property
    def metadata(self) -> LLMMetadata:
        # is_chat_model: llama-index's multimodal synthesis hands image blocks to chat models only.
        return LLMMetadata(
            context_window=self.context_window or _context_window(self.generator.backend),
            num_output=self.max_new_tokens,
            is_chat_model=True,
            model_name=self.model,
        )

    # -- completion ---------------------------------------------------------------------------------
    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        text = self._run([{"role": "user", "content": self._prompt(prompt, formatted)}], [], False, kwargs)
        assert isinstance(text, str)
        return CompletionResponse(text=text)

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        pieces = self._run([{"role": "user", "content": self._prompt(prompt, formatted)}], [], True, kwargs)

        def gen() -> CompletionResponseGen:
            text = ""
            for piece in pieces:
                text += piece
                yield CompletionResponse(text=text, delta=piece)

        return gen()

    def _prompt(self, prompt: str, formatted: bool) -> str:
        to_prompt = self.completion_to_prompt
        return prompt if formatted or to_prompt is None else to_prompt(prompt)

    # -- chat ---------------------------------------------------------------------------------------
    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        turns, images = self._read_messages(messages)
        text = self._run(turns, images, False, kwargs)
        assert isinstance(text, str)
        return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text))

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        turns, images = self._read_messages(messages)
        pieces = self._run(turns, images, True, kwargs)

        def gen() -> ChatResponseGen:
            text = ""
            for piece in pieces:
                text += piece
                yield ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text), delta=piece)

        return gen()

    def _read_messages(
        self, messages: Sequence[ChatMessage]
    ) -> tuple[list[dict[str, str]], list[Image.Image]]:
        """Turns of text, and the images of every `ImageBlock` when the generator can read them."""
        want = self.max_images if self.generator.reads_images else 0
        turns: list[dict[str, str]] = []
        images: list[Image.Image] = []
        for m in messages:
            texts = []
            for block in m.blocks:
                if isinstance(block, TextBlock):
                    texts.append(block.text)
                elif isinstance(block, ImageBlock) and len(images) < want:
                    images.append(open_image(block.resolve_image()))  # type: ignore[arg-type]
            role = m.role.value if isinstance(m.role, MessageRole) else str(m.role)
            turns.append({"role": _ROLES.get(role, "user"), "content": "\n".join(t for t in texts if t)})
        return turns, images

    def _run(
        self, turns: list[dict[str, str]], images: list[Image.Image], stream: bool, kwargs: dict[str, Any]
    ) -> str | Iterator[str]:
        gen = self.generator
        max_new = int(kwargs.get("max_tokens") or kwargs.get("max_new_tokens") or self.max_new_tokens)
        if not gen.reads_images:
            # A text LLM applies its chat template to the whole conversation.
            out: str | Iterator[str] = gen.backend.generate(turns, max_new_tokens=max_new, stream=stream)
        else:
            out = gen.generate(_flatten(turns), images, max_new_tokens=max_new, stream=stream)
        return out if stream else str(out).strip()


def _flatten(turns: list[dict[str, str]]) -> str:
    """One user turn for generators that take a single prompt with images (VLMs, bridges)."""
    if len(turns) == 1 and turns[0]["role"] == "user":
        return turns[0]["content"]
    return "\n\n".join(f"{t['role'].capitalize()}: {t['content']}" for t in turns if t["content"])


def _context_window(backend: Any) -> int:
    """`max_position_embeddings` of the language model inside any mmrag generator backend."""
    model = getattr(backend, "llm", None) or getattr(backend, "model", None)
    cfg = getattr(model, "config", None)
    cfg = getattr(cfg, "text_config", None) or cfg
    n = getattr(cfg, "max_position_embeddings", None)
    return int(n) if isinstance(n, int) and n > 0 else DEFAULT_CONTEXT_WINDOW
