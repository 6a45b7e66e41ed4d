"""`mmrag caption`, `mmrag vqa` and `mmrag train-projector`.

Mount with `app.command("caption")(caption)`, `app.command("vqa")(vqa)` and
`app.command("train-projector")(train_projector)`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from mmrag.cli.common import guarded, print_json
from mmrag.cli.options import (
    DEFAULT_BRIDGE,
    BatchSizeOpt,
    DeviceOpt,
    GeneratorOpt,
    JsonOpt,
    MaxNewTokensOpt,
    OutOpt,
    PromptsOpt,
    QuantOpt,
)
from mmrag.cli.options_eval import (
    DataOpt,
    FeatureOpt,
    LlmOpt,
    LoraOpt,
    LoraROpt,
    LrOpt,
    MaxImagesOpt,
    MaxPairsOpt,
    NoResumeOpt,
    SeedOpt,
    VisionOpt,
    VisualTokensOpt,
)


def load_image_generator(spec: str, device: str = "auto", quantize: bool | None = None) -> tuple[Any, str]:
    """`(generator, prompt family)`: a bridge folder loads the bridge, anything else a transformers VLM."""
    from mmrag.generate.loader import require_generator

    require_generator(spec)  # an untrained bridge or an uncached hub id: one line saying what to run
    folder = Path(spec).expanduser()
    if (folder / "bridge.json").is_file():
        from mmrag.generate.bridge import BridgeModel

        return BridgeModel.load(folder, device=device, quantize=quantize), "bridge"
    from mmrag.generate.vlm import VLMGenerator

    return VLMGenerator.load(spec, device=device, quantize=quantize), "vlm"


def _open_image(path: Path) -> Any:
    from PIL import Image, UnidentifiedImageError

    from mmrag.types import MMRAGError

    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (OSError, UnidentifiedImageError) as e:
        raise MMRAGError(f"{path}: cannot read image: {e}") from e


def _answer(
    image: Path,
    task: str,
    generator: str | None,
    device: str,
    quant: bool | None,
    max_new_tokens: int | None,
    json_out: bool,
    prompt_dir: Path | None,
    **values: str,
) -> None:
    from mmrag.prompts import render_prompt

    img = _open_image(image)
    spec = generator or DEFAULT_BRIDGE
    gen, family = load_image_generator(spec, device, quantize=quant)
    prompt = render_prompt(task, family=family, prompt_dir=prompt_dir, **values)
    limit = {} if max_new_tokens is None else {"max_new_tokens": max_new_tokens}
    if json_out:
        text = gen.generate(prompt, [img], **limit)
        print_json({"image": str(image), "task": task, **values, "answer": text, "generator": spec})
        return
    for piece in gen.generate(prompt, [img], stream=True, **limit):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")


@guarded
def caption(
    image: Annotated[Path, typer.Argument(help="Image file.", exists=True, dir_okay=False)],
    generator: GeneratorOpt = DEFAULT_BRIDGE,
    device: DeviceOpt = "auto",
    quant: QuantOpt = None,
    max_new_tokens: MaxNewTokensOpt = 64,
    prompts: PromptsOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Describe an image (streams the caption)."""
    _answer(image, "caption", generator, device, quant, max_new_tokens, json_out, prompts)


@guarded
def vqa(
    image: Annotated[Path, typer.Argument(help="Image file.", exists=True, dir_okay=False)],
    question: Annotated[str, typer.Argument(help="Question about the image.")],
    generator: GeneratorOpt = DEFAULT_BRIDGE,
    device: DeviceOpt = "auto",
    quant: QuantOpt = None,
    max_new_tokens: MaxNewTokensOpt = 32,
    prompts: PromptsOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Answer a question about an image (streams the answer)."""
    _answer(image, "vqa", generator, device, quant, max_new_tokens, json_out, prompts, question=question)


@guarded
def train_projector(
    vision: VisionOpt = "efficientnet-lite0",
    llm: LlmOpt = "smollm2-135m",
    data: DataOpt = "easy-vqa",
    out: OutOpt = Path(DEFAULT_BRIDGE),
    feature: FeatureOpt = "pooled",
    visual_tokens: VisualTokensOpt = 4,
    max_pairs: MaxPairsOpt = 6000,
    max_images: MaxImagesOpt = 1500,
    batch_size: BatchSizeOpt = 32,
    lr: LrOpt = 1e-3,
    seed: SeedOpt = 0,
    no_resume: NoResumeOpt = False,
    lora: LoraOpt = False,
    lora_r: LoraROpt = 8,
    device: DeviceOpt = "auto",
    json_out: JsonOpt = False,
) -> None:
    """Train a projector (LLaVA stage 1: frozen tower and LLM; --lora: stage 2) and save the bridge folder."""
    from mmrag.generate.bridge import BridgeConfig
    from mmrag.train.projector import TrainConfig
    from mmrag.train.projector import train_projector as run

    bridge = BridgeConfig.from_dict(
        {"vision": vision, "llm": llm, "vision_feature": feature, "n_visual_tokens": visual_tokens},
        source="options",
    )
    cfg = TrainConfig(
        bridge=bridge,
        data=data or "easy-vqa",
        out=str((out or Path(DEFAULT_BRIDGE)).expanduser()),
        max_pairs=max_pairs,
        max_images=max_images,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        resume=not no_resume,
        device=device,
        lora=lora,
        lora_r=lora_r,
        lora_alpha=2 * lora_r,
    )
    metrics = run(cfg, show_progress=not json_out)
    if json_out:
        print_json({k: v for k, v in metrics.items() if k != "config"})
    else:
        typer.echo(
            f"saved {cfg.out}: {metrics['steps']} steps in {metrics['train_seconds']} s, "
            f"loss {metrics['loss_first10']} -> {metrics['loss_last10']}"
        )
