"""Config values are strictly typed: a bool or a string is not a number, an integral float is an int."""

import pytest

from learnlab import api
from learnlab.cli import main
from learnlab.config import config_from_yaml, config_to_yaml, parse_overrides
from learnlab.errors import LearnlabError

# two families of configs (sortedness LSTMs, biographies) and a grid study with list-valued fields
STUDIES = ["hard-negatives", "knowledge-acquisition", "data-imbalance", "fine-tuning-forgetting"]


def resolve(study: str, *sets: str):
    return api.resolve(study, preset="smoke", overrides=list(sets))[1]


@pytest.mark.parametrize("study", STUDIES)
@pytest.mark.parametrize("value", ["true", "false", "yes", '"10"', "'10'", "1.5", "[10]", "null", ".nan", "1e400"])
def test_a_non_integer_for_an_int_key_is_refused_naming_the_key(study, value):
    with pytest.raises(LearnlabError, match="'steps'") as err:
        resolve(study, f"steps={value}")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("study", STUDIES)
@pytest.mark.parametrize("value", ["true", '"0.001"', "[0.1]", "null"])
def test_a_non_number_for_a_float_key_is_refused_naming_the_key(study, value):
    key = "ft_lr" if study == "fine-tuning-forgetting" else "lr"
    with pytest.raises(LearnlabError, match=f"'{key}'"):
        resolve(study, f"{key}={value}")


@pytest.mark.parametrize("study", STUDIES)
def test_integral_floats_are_ints_and_ints_are_floats(study):
    cfg = resolve(study, "steps=1e4", "seed=2.0", "lr=1")
    assert (cfg.steps, cfg.seed, cfg.lr) == (10_000, 2, 1.0)
    assert type(cfg.steps) is int and type(cfg.seed) is int and type(cfg.lr) is float
    assert resolve(study, "lr=1e-3").lr == 0.001 and resolve(study, "lr=2E-4").lr == 0.0002


def test_a_bool_key_takes_only_a_bool():
    assert resolve("fine-tuning-forgetting", "frozen_attention=false").frozen_attention is False
    for value in ("1", "0", '"true"'):
        with pytest.raises(LearnlabError, match="'frozen_attention'"):
            resolve("fine-tuning-forgetting", f"frozen_attention={value}")


def test_list_items_are_typed_like_scalars():
    cfg = resolve("data-imbalance", "n_values=[1e2, 200.0]", "alphas=[0, 1]")
    assert cfg.n_values == [100, 200] and cfg.alphas == [0.0, 1.0]
    for value, key in (("n_values=[100, 1.5]", "n_values"), ("alphas=[0, true]", "alphas"), ('n_values=["9"]', "n")):
        with pytest.raises(LearnlabError, match=key):
            resolve("data-imbalance", value)


def test_exponents_without_a_dot_are_yaml_floats():
    assert parse_overrides(["a=1e4", "b=-2.5E-3", "c=+1e+2", "d=1_000", "e=e4", "f=1e", "g=[1e1, 2]"]) == {
        "a": 1e4, "b": -2.5e-3, "c": 100.0, "d": 1000, "e": "e4", "f": "1e", "g": [10.0, 2],
    }  # fmt: skip


@pytest.mark.parametrize("study", [s.name for s in api.list_studies()])
def test_every_preset_survives_a_save_and_a_strict_reload(tmp_path, study):
    """A resume validates the saved config.yaml again: what was written must be read back the same."""
    for preset in api.get_study(study).presets:
        spec, cfg = api.resolve(study, preset=preset, device="cpu")
        (tmp_path / "config.yaml").write_text(config_to_yaml(cfg))
        assert spec.config.model_validate(config_from_yaml(tmp_path / "config.yaml")) == cfg


def test_a_hand_written_config_file_reads_exponents_as_numbers(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("lr: 1e-3\nsteps: 2e2\n")
    cfg = api.resolve("hard-negatives", preset="smoke", overrides=config_from_yaml(path))[1]
    assert (cfg.lr, cfg.steps) == (0.001, 200)


def test_a_saved_configs_preset_or_study_cannot_be_relabelled():
    """The values of a saved smoke config run as "laptop" would be a lie in summary.json."""
    with pytest.raises(LearnlabError, match="preset is 'smoke' but the run's is 'laptop'"):
        api.resolve("hard-negatives", preset="laptop", overrides={"preset": "smoke", "steps": 5})
    with pytest.raises(LearnlabError, match="study is 'model-collapse'"):
        api.resolve("hard-negatives", preset="smoke", overrides={"study": "model-collapse"})
    assert api.resolve("hard-negatives", preset="smoke", overrides={"preset": "smoke"})[1].preset == "smoke"


@pytest.mark.parametrize("value", ["true", '"10"', "1.5"])
def test_the_cli_refuses_in_one_line_with_exit_2(in_tmp, capsys, value):
    assert main(["run", "hard-negatives", "--preset", "smoke", "--quiet", "--set", f"steps={value}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'steps'" in err and "Traceback" not in err
    assert not any(in_tmp.iterdir())
