"""The noise process, parameterizations, losses and likelihood — no networks, no data."""

from hwaksan.diffusion.schedule import NoiseSchedule, ScheduleConfig

__all__ = ["NoiseSchedule", "ScheduleConfig"]
