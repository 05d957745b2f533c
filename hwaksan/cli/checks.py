"""Checks of command-line values that need the loaded model: step counts, class labels, prompts.

They run right after loading, before any sampling, and fail in one sentence (HwaksanError).
"""

from __future__ import annotations

import warnings

from hwaksan.errors import HwaksanError

CUT_WARNING = "prompt .* is longer than the text encoder"  # tokenizer.warn_truncated's words


def check_steps(pipe, steps: int | None) -> None:
    """`--steps` must be at most the model's training timesteps."""
    most = pipe.schedule.num_train_timesteps
    if steps is not None and steps > most:
        raise HwaksanError(f"--steps {steps} is more than the model's {most} timesteps")


def check_class_label(pipe, name: str, label: int | None, num_classes: int | None) -> None:
    """`--class-label` must name one of the model's (or its classifier's) classes."""
    if label is None:
        return
    if num_classes is None:
        raise HwaksanError(f"{name} is unconditional; it takes no --class-label")
    if not 0 <= label < num_classes:
        names = pipe.class_names
        listed = f" ({', '.join(f'{i} {n}' for i, n in enumerate(names))})" if names else ""
        listed = listed if len(listed) < 120 else ""  # a long list of names is not one line
        raise HwaksanError(
            f"--class-label {label} is not a class of {name}: use 0..{num_classes - 1}{listed}"
        )


def check_prompts(
    pipe, prompts: list[str], what: str = "prompt", allow_empty: bool = False
) -> list[str]:
    """Every prompt has a word (unless `allow_empty`: an image prompt says the rest); returns a
    one-line note for each the text encoder will cut (the caller then hides the encoder's own
    Python warning, `CUT_WARNING`)."""
    notes = []
    for prompt in prompts:
        if not prompt.strip() and not allow_empty:
            raise HwaksanError(f"an empty {what}: write what the image shows, e.g. 'a red circle'")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pipe.text_encoder.tokenize([prompt])
        if caught:
            cut = str(caught[0].message).rpartition("cut: ")[2]
            notes.append(
                f"note: the {what} {_short(prompt)} is longer than the text encoder's "
                f"{pipe.text_encoder.max_length} tokens; cut: {_short(cut.strip(chr(39)))}"
            )
    return notes


def _short(prompt: str, limit: int = 40) -> str:
    """The prompt quoted, its start only when it is long."""
    return repr(prompt if len(prompt) <= limit else prompt[:limit] + "...")
