"""The study catalogue: one module per study, each reading like the method section of a paper."""

from __future__ import annotations

from learnlab.errors import LearnlabError
from learnlab.studies import (
    attention_patching,
    calibration_robustness,
    compositional,
    data_imbalance,
    emergence,
    fine_tuning_forgetting,
    generative_collapse,
    hard_negatives,
    inductive_bias,
    knowledge_acquisition,
    looped_introspection,
    model_collapse,
    plateau_scaling,
    rare_combinations,
    robustness,
    softmax_negatives,
    subliminal,
    test_time_compute,
    warmup_curriculum,
)
from learnlab.studies.base import Study

STUDIES: dict[str, Study] = {
    s.name: s
    for s in (
        hard_negatives.STUDY,
        model_collapse.STUDY,
        robustness.STUDY,
        inductive_bias.STUDY,
        softmax_negatives.STUDY,
        subliminal.STUDY,
        knowledge_acquisition.STUDY,
        plateau_scaling.STUDY,
        data_imbalance.STUDY,
        warmup_curriculum.STUDY,
        attention_patching.STUDY,
        fine_tuning_forgetting.STUDY,
        looped_introspection.STUDY,
        compositional.STUDY,
        emergence.STUDY,
        rare_combinations.STUDY,
        generative_collapse.STUDY,
        calibration_robustness.STUDY,
        test_time_compute.STUDY,
    )
}


def get_study(name: str) -> Study:
    if name not in STUDIES:
        raise LearnlabError(f"unknown study {name!r} (available: {', '.join(STUDIES)})")
    return STUDIES[name]
