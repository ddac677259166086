"""The study catalogue: one module per study, each reading like the method section of a paper."""

from __future__ import annotations

from learnlab.errors import LearnlabError
from learnlab.studies import (
    attention_patching,
    calibration_robustness,
    compositional,
    data_imbalance,
    emergence,
    fact_editing,
    fine_tuning_forgetting,
    generative_collapse,
    hard_negatives,
    inductive_bias,
    knowledge_acquisition,
    looped_introspection,
    mixture_of_experts,
    model_collapse,
    plateau_scaling,
    rare_combinations,
    robustness,
    softmax_negatives,
    subliminal,
    super_weights,
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
        super_weights.STUDY,
        fact_editing.STUDY,
        mixture_of_experts.STUDY,
    )
}


def get_study(name: str) -> Study:
    if name not in STUDIES:
        raise LearnlabError(f"unknown study {name!r} (available: {', '.join(STUDIES)})")
    return STUDIES[name]


def register_study(study: Study) -> Study:
    """Add a study defined outside learnlab, so that list, show, run, resume, report and reproduce find it.
    Another study of the same name is an error (the same object again is not)."""
    if not isinstance(study, Study):
        raise LearnlabError(f"register_study: {study!r} is not a learnlab.studies.base.Study")
    if STUDIES.get(study.name, study) is not study:
        raise LearnlabError(f"register_study: a study named {study.name!r} is already registered")
    STUDIES[study.name] = study
    return study


def register_entry_points() -> None:
    """Studies that installed packages declare under the `learnlab.studies` entry-point group: each entry
    names a Study (or a module with a STUDY). One that fails to load is a warning naming it, not a crash.
    Called once the API is loaded (by learnlab.api), so that a plugin may use `learnlab.register_study`."""
    import warnings
    from importlib.metadata import entry_points

    for entry in entry_points(group="learnlab.studies"):
        try:
            found = entry.load()
            register_study(getattr(found, "STUDY", found))
        except Exception as err:  # a broken plugin must not take the lab down with it
            warnings.warn(f"learnlab.studies entry point {entry.name!r} ({entry.value}): {err}", stacklevel=2)
