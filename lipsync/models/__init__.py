"""Model weights: what each neural engine needs from the Hugging Face Hub, and the manager that downloads,
pins, verifies and removes them. "model" here always means weights; a job's kind is a `kind`.

`spec` is plain data (engines import it); `hub` is the one module that touches huggingface_hub; `manager`
is the policy (status, download, verify, remove); `cli` is `lipsync models ...`. Only `spec` is imported
here, so declaring weights stays cheap."""

from .spec import WeightFile, WeightRepo

__all__ = ["WeightFile", "WeightRepo"]
