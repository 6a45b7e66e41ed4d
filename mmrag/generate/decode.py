"""The decoding loop every backend shares (text LLM, HF VLM, bridge): `generate_from`.

It runs `model.generate` greedily with the generation hygiene of `mmrag.generate.stopping` (stop on
repetition, the chat template's stop tokens, the penalty on generated tokens only) and, when asked,
the label constraint of `mmrag.generate.labels`; streamed or not, the text is cut the same way.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


def generate_from(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    inputs: dict[str, Any],
    max_new_tokens: int,
    stream: bool,
    stop_on_repetition: bool | None = None,
    repeat_ngram: int | None = None,
    repetition_penalty: float | None = None,
    cite_labels: int | None = None,
    answer_starts: Sequence[str] | None = None,
    **gen_kw: Any,
) -> str | Iterator[str]:
    """Run `model.generate(**inputs)`, returning the new text (or streaming it); shared by every backend.

    Generation stops at a repeated sentence or n-gram and at the chat template's end of turn, and
    the text is cut there, streamed or not, the same way (`mmrag.generate.stopping`). None takes
    `GenerateConfig`'s default for `stop_on_repetition`, `repeat_ngram` and `repetition_penalty`.
    `cite_labels` > 0: each sentence ends with a label `[1]`..`[cite_labels]` that the model picks
    (`mmrag.generate.labels`); 0: there are no sources, and no label may be written; None: no
    constraint. `answer_starts`: the answer opens with one of these texts, the model's pick
    (`mmrag.generate.starts`).
    """
    import torch
    from transformers import LogitsProcessorList, StoppingCriteriaList, TextIteratorStreamer

    from mmrag.config import GenerateConfig
    from mmrag.generate.stopping import (
        RepetitionStop,
        cancel_stop,
        clean,
        penalty_processor,
        rules_for,
        stream_clean,
        template_stops,
    )

    d = GenerateConfig
    enabled = d.stop_on_repetition if stop_on_repetition is None else stop_on_repetition
    rules = rules_for(tokenizer, enabled, repeat_ngram)
    # Models fed `inputs_embeds` return only the new tokens; with `input_ids` the prompt comes first.
    start = inputs["input_ids"].shape[1] if "input_ids" in inputs else 0
    kw: dict[str, Any] = {
        "do_sample": False,
        "max_new_tokens": max_new_tokens,
        "pad_token_id": tokenizer.pad_token_id,
        **gen_kw,
    }
    end_ids, _ = template_stops(tokenizer)
    if end_ids and "eos_token_id" not in gen_kw:
        eos = getattr(model.generation_config, "eos_token_id", None)
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        kw["eos_token_id"] = list(dict.fromkeys([*eos, *end_ids]))
    penalty = penalty_processor(
        d.repetition_penalty if repetition_penalty is None else repetition_penalty, start
    )
    if cite_labels is not None:
        from mmrag.generate.labels import LabelAfterSentence

        ends = kw.get("eos_token_id", getattr(model.generation_config, "eos_token_id", None))
        penalty = LabelAfterSentence(
            tokenizer, cite_labels, start, inner=penalty, end_ids=ends, max_new_tokens=max_new_tokens
        )
    processors = [*kw.get("logits_processor", []), *([penalty] if penalty is not None else [])]
    if answer_starts:
        from mmrag.generate.starts import StartWith

        processors.append(StartWith(tokenizer, answer_starts, start))  # last: its mask is final
    if processors:
        kw["logits_processor"] = LogitsProcessorList(processors)
    if rules.active:
        stop = RepetitionStop(tokenizer, rules, start)
        kw["stopping_criteria"] = StoppingCriteriaList([*kw.get("stopping_criteria", []), stop])
    cancel = cancel_stop()  # read here, on the caller's thread: the streaming thread has no context
    if cancel is not None:
        kw["stopping_criteria"] = StoppingCriteriaList([*kw.get("stopping_criteria", []), cancel])
    if not stream:
        with torch.inference_mode():
            out = model.generate(**inputs, **kw)
        return clean(str(tokenizer.decode(out[0, start:], skip_special_tokens=True)), rules).strip()
    from mmrag.device import warm_torch_threads

    warm_torch_threads()  # the caller's thread first: see its docstring
    streamer = TextIteratorStreamer(tokenizer, skip_prompt="input_ids" in inputs, skip_special_tokens=True)

    def run() -> None:
        with torch.inference_mode():
            model.generate(**inputs, **kw, streamer=streamer)

    thread = threading.Thread(target=run, daemon=True, name="mmrag-generate")
    thread.start()
    return stream_clean(_joined(streamer, thread), rules)


def reuse_cache(model: Any, out: Any, repeat: int = 1) -> dict[str, Any]:
    """`out`'s key/value cache, each row repeated `repeat` times, as the keyword `model`'s forward
    takes it: `cache` from transformers 5.25 (`past_key_values`, deprecated there, goes in 5.40)."""
    import inspect

    cache = getattr(out, "cache", None)
    if cache is None:
        cache = out.past_key_values
    if repeat > 1:
        cache.batch_repeat_interleave(repeat)
    params = inspect.signature(model.forward).parameters
    return {"cache" if "cache" in params else "past_key_values": cache}


def _joined(streamer: Iterator[str], thread: threading.Thread) -> Iterator[str]:
    yield from (piece for piece in streamer if piece)
    thread.join()
