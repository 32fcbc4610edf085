"""Model weights: what each neural engine needs from the Hugging Face Hub, and the manager that downloads,
pins, verifies and removes them. "model" here always means weights; a job's kind is a `kind`."""

from .spec import WeightFile, WeightRepo

__all__ = ["WeightFile", "WeightRepo"]
