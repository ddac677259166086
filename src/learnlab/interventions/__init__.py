"""Interventions on trained models: perturb a copy of the weights, then measure what survives.

Model-agnostic: they address parameters by name (`model.get_parameter(name)`) and follow learnlab's
convention that an ensemble stacks its K independent models on axis 0 of every parameter. A member's
result never depends on the other members, so an intervention on an ensemble equals the intervention on
each model alone.
"""

from learnlab.interventions.dropconnect import dropconnect_copy
from learnlab.interventions.quantization import quantize_symmetric, quantized_copy

__all__ = ["dropconnect_copy", "quantize_symmetric", "quantized_copy"]
