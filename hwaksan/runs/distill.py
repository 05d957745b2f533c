"""Few-step students of a trained model folder, end to end: what `hwaksan distill` calls.

- "progressive": halvings from the teacher's `teacher_steps` DDIM steps down to `final_steps`
  (Salimans & Ho 2022); each halving is a training run of its own in `<out>/steps_<N>/`, its
  student saved there as a model folder, so an interrupted distillation resumes where it stopped.
- "consistency": consistency distillation from the teacher's ODE (Song et al. 2023).
- "consistency-training": consistency training from the teacher's data alone (Song & Dhariwal
  2023); the teacher folder only names the data, the U-Net's shape and the schedule.
Each saves `<out>/model`, a model folder that names the sampler and step count it was made for.
The teacher's folder is only read.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from hwaksan.errors import HwaksanError
from hwaksan.pipeline import Pipeline
from hwaksan.train.conditioners import ClassLabels, Conditioner, Unconditional
from hwaksan.train.data import training_data_of
from hwaksan.train.loop import TrainConfig, TrainResult, channels_last_default, train
from hwaksan.train.loop_state import seed_everything

METHODS = ("progressive", "consistency", "consistency-training")


@dataclass
class DistillRun:
    """The choices of a distillation run (TrainConfig holds the loop's; `train.steps` counts
    each halving's steps for "progressive")."""

    method: str = "consistency"  # one of METHODS
    teacher: str = "digits"  # a shipped name or a model folder
    guidance_scale: float = 1.0  # the teacher's classifier-free guidance, folded into the student
    cond_drop_prob: float = 0.0  # the student learns the conditional model only
    teacher_steps: int = 16  # progressive: the teacher's DDIM steps the first student halves
    final_steps: int = 1  # progressive: the last student's steps
    num_levels: int = 18  # consistency distillation: N of the Karras grid
    target_decay: float = 0.95  # consistency distillation: mu of the target EMA
    loss: str = "l2"  # consistency distillation: "l2" | "pseudo_huber" | "lpips"
    init_from_teacher: bool = False  # consistency training: start from the teacher's weights
    dropout: float = 0.0  # consistency training's fresh U-Net (iCT used 0.3 on CIFAR-10)
    sample_steps: int = 1  # consistency: the step count the saved folder defaults to
    ema_decay: float | None = None  # the student saved: an EMA of its weights (None: the last)
    num_samples: int = 16  # images in each progress grid
    train: TrainConfig = field(default_factory=TrainConfig)


def run_distill(run: DistillRun) -> tuple[Pipeline, TrainResult]:
    """Distill (or consistency-train), save `<out>/model`; (the student's pipeline, the last
    training run's result)."""
    from hwaksan.model_folder import load

    if run.method not in METHODS:
        raise HwaksanError(f"unknown distillation method {run.method!r}; use {', '.join(METHODS)}")
    seed_everything(run.train.seed)
    teacher = load(run.teacher)
    if teacher.autoencoder is not None or teacher.text_encoder is not None:
        raise HwaksanError("distillation takes a pixel-space unconditional or class model")
    if teacher.prediction_type != "v_prediction":
        raise HwaksanError(
            f"distillation starts from a v-prediction teacher (stable as SNR -> 0); "
            f"{run.teacher} predicts {teacher.prediction_type}"
        )
    if run.dropout and (run.method != "consistency-training" or run.init_from_teacher):
        raise HwaksanError("--dropout goes with consistency-training from fresh weights")
    if run.method == "progressive":
        return _progressive(run, teacher)
    return _consistency(run, teacher)


def _conditioner(teacher: Pipeline, cond_drop_prob: float) -> Conditioner:
    if teacher.num_classes is None:
        return Unconditional()
    return ClassLabels(teacher.num_classes, cond_drop_prob)


def _data(teacher: Pipeline):
    """The teacher's own training data (the same scenes: 1-3 objects for `shapes32`)."""
    return training_data_of(teacher.data, teacher.image_shape[-1]).dataset


def _config(run: DistillRun, out_dir: Path, min_lr_ratio: float) -> TrainConfig:
    """The loop's settings: the run's, in `out_dir`, cosine lr decay, the run's EMA (none by
    default: the student is the trained weights), channels-last where it wins."""
    return dataclasses.replace(
        run.train, out_dir=str(out_dir), lr_schedule="cosine", min_lr_ratio=min_lr_ratio,
        ema_decay=run.ema_decay, channels_last=channels_last_default(run.train.bf16),
    )  # fmt: skip


def _save(run: DistillRun, teacher: Pipeline, student, out: Path, recipe: dict | None = None,
          **fields) -> Pipeline:  # fmt: skip
    """The student as a model folder in `out`, saying how it was made (`recipe`: the recipe's
    settings) and how to sample it."""
    data = {**teacher.data, "teacher": str(run.teacher), "method": run.method,
            "teacher_train_steps": teacher.data.get("steps"), "steps": run.train.steps,
            "batch_size": run.train.batch_size}  # fmt: skip
    if recipe:
        data["recipe"] = recipe
    if run.ema_decay:
        data["ema_decay"] = run.ema_decay
    if run.method == "progressive":  # steps are per halving
        data["halvings_from"] = run.teacher_steps
    pipe = Pipeline(
        unet=student.eval(), schedule=teacher.schedule, image_shape=teacher.image_shape,
        num_classes=teacher.num_classes, class_names=teacher.class_names,
        timestep_spacing="trailing", data=data, **fields,
    )  # fmt: skip
    pipe.save(out)
    return pipe


def _progressive(run: DistillRun, teacher: Pipeline) -> tuple[Pipeline, TrainResult | None]:
    from hwaksan.model_folder import load
    from hwaksan.train.progressive import ProgressiveDistillation

    _check_halvings(run.teacher_steps, run.final_steps)
    dataset, conditioner = _data(teacher), _conditioner(teacher, run.cond_drop_prob)
    net, guidance, steps, result = teacher.unet, run.guidance_scale, run.teacher_steps // 2, None
    out = Path(run.train.out_dir)
    while steps >= run.final_steps:
        stage = out / f"steps_{steps:04d}"
        if (stage / "model" / "config.json").exists():  # a finished halving: its student teaches
            net = load(stage / "model").unet
        else:
            student = copy.deepcopy(net).train().requires_grad_(True)
            recipe = ProgressiveDistillation(
                student, net, teacher.schedule, teacher.image_shape, conditioner,
                student_steps=steps, prediction_type=teacher.prediction_type,
                guidance_scale=guidance, num_samples=run.num_samples,
            )  # fmt: skip
            config = _config(run, stage, min_lr_ratio=0.0)  # lr decays to 0 in each halving
            config.resume = (stage / "checkpoints").exists()
            result = train(recipe, dataset, config)
            net = result.ema_model or result.model
            fields = dict(prediction_type=teacher.prediction_type, sampler="euler", steps=steps)
            _save(run, teacher, copy.deepcopy(net), stage / "model", recipe.describe(), **fields)
            net.eval().requires_grad_(False)
        guidance, steps = 1.0, steps // 2  # the guidance is folded in after the first halving
    fields = dict(prediction_type=teacher.prediction_type, sampler="euler", steps=run.final_steps)
    return _save(run, teacher, net, out / "model", **fields), result


def _check_halvings(teacher_steps: int, final_steps: int) -> None:
    ratio = teacher_steps // max(final_steps, 1)
    if final_steps < 1 or ratio < 2 or ratio * final_steps != teacher_steps or ratio & (ratio - 1):
        raise HwaksanError(
            f"--teacher-steps ({teacher_steps}) must be --final-steps ({final_steps}) times a "
            "power of two, at least 2"
        )


def _consistency(run: DistillRun, teacher: Pipeline) -> tuple[Pipeline, TrainResult]:
    from hwaksan.nets.consistency import ConsistencyUNet
    from hwaksan.train.consistency import ConsistencyDistillation, ConsistencyTraining

    student = ConsistencyUNet.from_unet(teacher.unet, teacher.schedule)
    conditioner = _conditioner(teacher, run.cond_drop_prob)
    common = dict(sample_steps=run.sample_steps, num_samples=run.num_samples)
    if run.method == "consistency":
        recipe = ConsistencyDistillation(
            student, teacher.unet, teacher.schedule, teacher.image_shape, conditioner,
            guidance_scale=run.guidance_scale, num_levels=run.num_levels,
            target_decay=run.target_decay, loss=run.loss, **common,
        )  # fmt: skip
    else:
        if not run.init_from_teacher:  # no teacher at all: the same network, freshly initialized
            unet = dataclasses.replace(student.config.unet, dropout=run.dropout)
            student = ConsistencyUNet(dataclasses.replace(student.config, unet=unet))
        recipe = ConsistencyTraining(student, teacher.schedule, teacher.image_shape, conditioner,
                                     total_steps=run.train.steps, **common)  # fmt: skip
    student.train().requires_grad_(True)
    out = Path(run.train.out_dir)
    result = train(recipe, _data(teacher), _config(run, out, min_lr_ratio=0.1))
    fields = dict(prediction_type="sample", sampler="consistency", steps=run.sample_steps)
    student = result.ema_model or result.model
    return _save(run, teacher, student, out / "model", recipe.describe(), **fields), result
