"""`mmrag caption`, `mmrag vqa` and `mmrag train-projector`.

Mount with `app.command("caption")(caption)`, `app.command("vqa")(vqa)` and
`app.command("train-projector")(train_projector)`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from mmrag.cli.common import JsonOpt, guarded, print_json

DEFAULT_BRIDGE = "~/.cache/mmrag/bridges/efficientnet-smollm2"

GeneratorOpt = Annotated[
    str,
    typer.Option(
        "--generator",
        "-g",
        help="A bridge folder (mmrag train-projector) or a VLM hub id/folder.",
        envvar="MMRAG_GENERATOR",
        rich_help_panel="Model",
    ),
]
NoQuantOpt = Annotated[
    bool,
    typer.Option(
        "--no-quant",
        help="Load the LLM unquantised (4-bit NF4 is the default on CUDA).",
        rich_help_panel="Model",
    ),
]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda, ...", rich_help_panel="Model")]
MaxTokensOpt = Annotated[int, typer.Option("--max-new-tokens", help="Upper bound on generated tokens.")]
PromptsOpt = Annotated[
    Path | None,
    typer.Option(
        "--prompts", help="Folder of prompt templates overriding the packaged ones.", envvar="MMRAG_PROMPTS"
    ),
]


def load_image_generator(spec: str, device: str = "auto", quantize: bool | None = None) -> tuple[Any, str]:
    """`(generator, prompt family)`: a bridge folder loads the bridge, anything else a transformers VLM."""
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
    generator: str,
    device: str,
    no_quant: bool,
    max_new_tokens: int,
    json_out: bool,
    prompt_dir: Path | None,
    **values: str,
) -> None:
    from mmrag.prompts import render_prompt

    img = _open_image(image)
    gen, family = load_image_generator(generator, device, quantize=False if no_quant else None)
    prompt = render_prompt(task, family=family, prompt_dir=prompt_dir, **values)
    if json_out:
        text = gen.generate(prompt, [img], max_new_tokens=max_new_tokens)
        print_json({"image": str(image), "task": task, **values, "answer": text, "generator": generator})
        return
    for piece in gen.generate(prompt, [img], max_new_tokens=max_new_tokens, stream=True):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")


@guarded
def caption(
    image: Annotated[Path, typer.Argument(help="Image file.", exists=True, dir_okay=False)],
    generator: GeneratorOpt = DEFAULT_BRIDGE,
    device: DeviceOpt = "auto",
    no_quant: NoQuantOpt = False,
    max_new_tokens: MaxTokensOpt = 64,
    prompts: PromptsOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Describe an image (streams the caption)."""
    _answer(image, "caption", generator, device, no_quant, max_new_tokens, json_out, prompts)


@guarded
def vqa(
    image: Annotated[Path, typer.Argument(help="Image file.", exists=True, dir_okay=False)],
    question: Annotated[str, typer.Argument(help="Question about the image.")],
    generator: GeneratorOpt = DEFAULT_BRIDGE,
    device: DeviceOpt = "auto",
    no_quant: NoQuantOpt = False,
    max_new_tokens: MaxTokensOpt = 32,
    prompts: PromptsOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Answer a question about an image (streams the answer)."""
    _answer(image, "vqa", generator, device, no_quant, max_new_tokens, json_out, prompts, question=question)


@guarded
def train_projector(
    vision: Annotated[str, typer.Option(help="efficientnet-lite0, or a CLIP/SigLIP id or folder.")] = (
        "efficientnet-lite0"
    ),
    llm: Annotated[str, typer.Option(help="Causal LM: packaged name (smollm2-135m), hub id or folder.")] = (
        "smollm2-135m"
    ),
    data: Annotated[str, typer.Option(help="easy-vqa, a .jsonl file, or a folder of image + .txt pairs.")] = (
        "easy-vqa"
    ),
    out: Annotated[Path, typer.Option(help="Bridge folder to write.")] = Path(DEFAULT_BRIDGE),
    feature: Annotated[str, typer.Option(help="pooled or grid tower features.")] = "pooled",
    visual_tokens: Annotated[int, typer.Option(help="Visual tokens per image.")] = 4,
    max_pairs: Annotated[int, typer.Option(help="Training pairs (one pass).")] = 6000,
    max_images: Annotated[int, typer.Option(help="Draw the pairs from this many images (0: all).")] = 1500,
    batch_size: Annotated[int, typer.Option()] = 32,
    lr: Annotated[float, typer.Option()] = 1e-3,
    seed: Annotated[int, typer.Option()] = 0,
    no_resume: Annotated[bool, typer.Option("--no-resume", help="Ignore an existing checkpoint.")] = False,
    lora: Annotated[
        bool, typer.Option("--lora", help="Stage 2: also train LoRA adapters on the LLM (needs peft).")
    ] = False,
    lora_r: Annotated[int, typer.Option(help="LoRA rank.")] = 8,
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
        data=data,
        out=str(out.expanduser()),
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
