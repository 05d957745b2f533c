"""A diffusers scheduler config as hwaksan's `NoiseSchedule`, prediction type and sampler flags,
and the other way for export. The schedule is the model's (its training betas); the scheduler
class only names the default sampler, since every hwaksan sampler follows diffusers' trajectories.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from hwaksan.diffusion.schedule import NoiseSchedule, ScheduleConfig
from hwaksan.errors import HwaksanError
from hwaksan.interop.require import require_diffusers
from hwaksan.pipeline.parts import Part, Plan
from hwaksan.sampling.registry import sampler_spec
from hwaksan.sampling.timesteps import TIMESTEP_SPACINGS

# diffusers scheduler class -> the hwaksan sampler on the same trajectory (others: "ddim")
SAMPLER_OF: dict[str, str] = {
    "DDIMScheduler": "ddim",
    "DDPMScheduler": "ddpm",
    "DPMSolverMultistepScheduler": "dpmpp_2m",
    "EulerDiscreteScheduler": "euler",
    "HeunDiscreteScheduler": "heun",
}
SCHEDULER_OF = {sampler: name for name, sampler in SAMPLER_OF.items()}
# diffusers' beta_schedule -> ours
BETA_SCHEDULES = {
    "linear": "linear",
    "scaled_linear": "scaled_linear",
    "squaredcos_cap_v2": "cosine",
}
PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")


@dataclass
class SchedulerSettings:
    """What a diffusers scheduler config says, in hwaksan's words."""

    schedule: NoiseSchedule
    prediction_type: str
    timestep_spacing: str
    sampler: str  # the hwaksan sampler of the folder's scheduler class
    steps_offset: int = 0
    clip_sample: float | None = None  # DDPM/DDIM clamp x0 to [-c, c]
    set_alpha_to_one: bool = True  # DDIM's last step lands on alpha = 1 (else alphas_cumprod[0])
    use_karras_sigmas: bool = False


def read_scheduler(folder: Path, class_name: str) -> SchedulerSettings:
    """The settings of `folder/scheduler_config.json`, with diffusers' defaults for what it omits;
    a one-line HwaksanError for what hwaksan cannot reproduce (trained betas, thresholding,
    learned variance)."""
    diffusers = require_diffusers()
    cls = getattr(diffusers, class_name, None)
    if cls is None or not class_name.endswith("Scheduler"):
        raise HwaksanError(f"{folder}: unknown scheduler class {class_name!r}")
    path = folder / "scheduler_config.json"
    try:
        config = dict(cls.from_config(json.loads(path.read_text())).config)
    except (OSError, ValueError, TypeError, RecursionError) as e:
        raise HwaksanError(f"{path} is not a readable scheduler config ({e})") from e
    _check(config, path)
    schedule = NoiseSchedule.from_config(
        ScheduleConfig(
            num_train_timesteps=int(config["num_train_timesteps"]),
            beta_schedule=BETA_SCHEDULES[config["beta_schedule"]],
            beta_start=float(config["beta_start"]),
            beta_end=float(config["beta_end"]),
            rescale_zero_terminal_snr=bool(config.get("rescale_betas_zero_snr", False)),
        )
    )
    clip = config.get("clip_sample", False)
    return SchedulerSettings(
        schedule=schedule,
        prediction_type=config["prediction_type"],
        timestep_spacing=config.get("timestep_spacing", "leading"),
        sampler=SAMPLER_OF.get(class_name, "ddim"),
        steps_offset=int(config.get("steps_offset", 0)),
        clip_sample=float(config.get("clip_sample_range", 1.0)) if clip else None,
        set_alpha_to_one=bool(config.get("set_alpha_to_one", True)),
        use_karras_sigmas=bool(config.get("use_karras_sigmas", False)),
    )


def _check(config: dict, path: Path) -> None:
    """One line naming the first setting hwaksan's schedule and samplers cannot reproduce."""
    spacing, variance = config.get("timestep_spacing", "leading"), config.get("variance_type")
    beta_schedule, prediction_type = config["beta_schedule"], config["prediction_type"]
    checks = [
        (config.get("trained_betas") is not None, "trained_betas"),
        (bool(config.get("thresholding", False)), "thresholding"),
        (beta_schedule not in BETA_SCHEDULES, f"beta_schedule {beta_schedule!r}"),
        (prediction_type not in PREDICTION_TYPES, f"prediction_type {prediction_type!r}"),
        (spacing not in TIMESTEP_SPACINGS, f"timestep_spacing {spacing!r}"),
        (variance in ("learned", "learned_range"), f"variance_type {variance!r}"),
    ]
    for bad, what in checks:
        if bad:
            raise HwaksanError(f"{path}: {what} is not supported by hwaksan's samplers")


class SchedulerFlags(Part):
    """The folder's scheduler flags (`steps_offset`, `clip_sample`, `set_alpha_to_one`, Karras
    sigmas) handed to `hk.sample` for the samplers that honour them, as diffusers' scheduler of
    that sampler would read them from the same config."""

    def __init__(self, settings: SchedulerSettings):
        self.settings = settings

    def prepare(self, pipe, plan: Plan, inputs: dict) -> None:
        s, spec = self.settings, sampler_spec(plan.sampler)
        plan.sample_args["steps_offset"] = s.steps_offset
        if spec.space == "vp":  # DDPM / DDIM clip x0; DPM-Solver and Euler do not
            plan.sample_args["clip_sample"] = s.clip_sample
        if "set_alpha_to_one" in spec.options:
            plan.sample_args["set_alpha_to_one"] = s.set_alpha_to_one
        if spec.karras:
            plan.sample_args["use_karras_sigmas"] = s.use_karras_sigmas


def scheduler_config(schedule: NoiseSchedule, prediction_type: str, spacing: str, sampler: str):
    """(class name, config) of the diffusers scheduler that runs `sampler` on `schedule` as
    hwaksan does (DDIM for samplers diffusers' unconditional pipelines cannot run)."""
    ours = schedule.config
    beta_schedule = {v: k for k, v in BETA_SCHEDULES.items()}[ours.beta_schedule]
    name = "DDPMScheduler" if sampler == "ddpm" else "DDIMScheduler"
    config = dict(
        num_train_timesteps=ours.num_train_timesteps, beta_start=ours.beta_start,
        beta_end=ours.beta_end, beta_schedule=beta_schedule, prediction_type=prediction_type,
        timestep_spacing=spacing, steps_offset=0, clip_sample=False,
        rescale_betas_zero_snr=ours.rescale_zero_terminal_snr,
    )  # fmt: skip
    if name == "DDIMScheduler":
        config["set_alpha_to_one"] = True
    else:
        config["variance_type"] = "fixed_small"
    return name, config
