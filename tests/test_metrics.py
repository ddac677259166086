"""Metric formulas on cases computed by hand."""

import math

import numpy as np
import pytest
import torch

from learnlab.metrics import attribute_scores, detect_phases, expected_calibration_error, reliability


def test_attribute_scores_sum_value_tokens_and_need_every_token_right():
    # vocabulary of 3; sequence: 0, [1, 2] value of attribute 0, 0, [2] value of attribute 1
    tokens = torch.tensor([[0, 1, 2, 0, 2]])
    value_attr = torch.tensor([[-1, 0, 0, -1, 1]])
    p = torch.tensor(
        [
            [0.2, 0.5, 0.3],  # predicts token 1 (value 0, first token): right, p=0.5
            [0.1, 0.3, 0.6],  # predicts token 2 (value 0): right, p=0.6
            [0.7, 0.2, 0.1],  # predicts token 0: not a value
            [0.5, 0.1, 0.4],  # predicts token 2 (value 1, first token): wrong, p=0.4, confidence 0.5
            [1 / 3, 1 / 3, 1 / 3],  # no target
        ]
    )
    s = attribute_scores(p.log()[None, None], tokens, value_attr, n_attributes=3)
    assert s.loss.shape == (1, 1, 3)
    torch.testing.assert_close(s.loss[0, 0, :2], torch.tensor([-math.log(0.5) - math.log(0.6), -math.log(0.4)]))
    assert s.correct[0, 0, :2].tolist() == [1.0, 0.0]
    torch.testing.assert_close(s.confidence[0, 0, :2], torch.tensor([0.5, 0.5]))
    assert s.first_correct[0, 0, :2].tolist() == [1.0, 0.0]
    assert all(math.isnan(x[0, 0, 2].item()) for x in (s.loss, s.correct, s.confidence, s.first_correct))


def test_attribute_scores_are_per_member():
    tokens, value_attr = torch.tensor([[0, 1]]), torch.tensor([[-1, 0]])
    logits = torch.tensor([[[[0.0, 5.0], [0.0, 0.0]]], [[[5.0, 0.0], [0.0, 0.0]]]])  # member 0 right, 1 wrong
    s = attribute_scores(logits, tokens, value_attr, n_attributes=1)
    assert s.correct.flatten().tolist() == [1.0, 0.0]
    assert s.loss[0, 0, 0] < s.loss[1, 0, 0]


def test_ece_by_hand():
    conf = np.array([0.95, 0.95, 0.55, 0.55])
    correct = np.array([1, 1, 1, 0])
    # bin 9: accuracy 1, confidence 0.95 -> 0.05 * 1/2; bin 5: accuracy 0.5, confidence 0.55 -> 0.05 * 1/2
    assert expected_calibration_error(conf, correct) == pytest.approx(0.05)
    assert expected_calibration_error(np.array([1.0]), np.array([1])) == 0.0  # 1.0 falls in the top bin
    mean_conf, acc, count = reliability(conf, correct)
    assert count.tolist() == [0, 0, 0, 0, 0, 2, 0, 0, 0, 2]
    assert acc[5] == 0.5 and mean_conf[9] == pytest.approx(0.95) and math.isnan(acc[0])


STEPS = np.arange(100, 1100, 100)  # ten evaluations; baseline 4.0, so the band is 3.6..4.4


def test_phases_a_clear_plateau_is_accepted_with_exact_boundaries():
    loss = np.array([12.0, 8.0, 4.3, 4.1, 4.0, 4.0, 3.95, 2.5, 1.0, 0.5])  # in the band at steps 300..700
    acc = np.array([0.0, 0.0, 0.0, 0.0, 0.01, 0.01, 0.02, 0.3, 0.7, 0.9])
    phases = detect_phases(STEPS, loss, acc, baseline=4.0)
    assert (phases.phase1_end_step, phases.plateau_end_step) == (300, 800)  # 800: the loss leaves the band
    assert phases.plateau and phases.plateau_evals == 5 and phases.reason.startswith("plateau: 5 evaluations")
    assert phases.flatness == pytest.approx(0.0008 / 0.0385, rel=0.01)
    # slope over 300..700: -0.0008/step, far under 1/5 of phase 1's (12 - 4.3) / 200 = 0.0385/step
    knowing = acc.copy()
    knowing[6] = 0.06  # accuracy reaches 5% at step 700 while the loss is still in the band
    phases = detect_phases(STEPS, loss, knowing, baseline=4.0)
    assert (phases.phase1_end_step, phases.plateau_end_step, phases.plateau_evals) == (300, 700, 4)


def test_phases_a_curve_dropping_straight_through_the_baseline_has_no_plateau():
    loss = np.array([12.0, 8.0, 4.2, 2.0, 1.0, 0.5, 0.4, 0.3, 0.3, 0.3])
    acc = np.array([0.0, 0.0, 0.01, 0.2, 0.6, 0.8, 0.9, 0.9, 0.9, 0.9])
    phases = detect_phases(STEPS, loss, acc, baseline=4.0)
    assert phases.phase1_end_step == 300 and math.isnan(phases.plateau_end_step) and not phases.plateau
    why = "the loss left the baseline band (below) and accuracy reached 5% after 1 evaluation(s)"
    assert phases.reason.startswith(f"no plateau: {why}")


def test_phases_a_steady_descent_through_the_band_is_not_a_plateau():
    steps = np.arange(1, 41)
    loss = 12.0 - 0.25 * steps  # in the band at steps 31, 32, 33: three evaluations, but as steep as phase 1
    phases = detect_phases(steps, loss, np.zeros(40), baseline=4.0)
    assert (phases.phase1_end_step, phases.plateau_evals) == (31, 3)
    assert math.isnan(phases.plateau_end_step) and "-2.50e-01 nats/step" in phases.reason
    assert phases.flatness == pytest.approx(1.0)


# One seed of the knowledge-acquisition laptop run of 2026-12-01 (pools of 40, N = 800), held-out templates,
# every 30 steps from step 30 to 690: the loss falls into the band and keeps falling ever faster, with no
# flat stretch between phase 1 and knowledge. Flat against phase 1's steep start, it is not flat against
# the knowledge phase's descent (0.33 of it), so it is not a plateau.
GRADUAL = np.array([13.386, 8.319, 6.855, 5.988, 5.552, 5.309, 5.183, 5.065, 5.028, 4.968, 4.895, 4.845, 4.793,
                    4.672, 4.588, 4.523, 4.478, 4.429, 4.281, 4.153, 4.046, 3.945, 3.803, 3.633, 3.455, 3.343,
                    3.135, 3.063, 2.855, 2.719])  # fmt: skip
GRADUAL_ACC = np.array([0.008, 0.015, 0.015, 0.017, 0.03, 0.028, 0.015, 0.035, 0.033, 0.032, 0.033, 0.033, 0.053,
                        0.043, 0.048, 0.067, 0.057, 0.062, 0.087, 0.098, 0.092, 0.12, 0.155, 0.182, 0.182, 0.178,
                        0.215, 0.23, 0.253, 0.282])  # fmt: skip


def test_phases_a_descent_that_only_speeds_up_is_not_a_plateau():
    steps = 30 * np.arange(1, GRADUAL.size + 1)
    phases = detect_phases(steps, GRADUAL, GRADUAL_ACC, baseline=4.628)
    assert phases.phase1_end_step == 240 and phases.plateau_evals == 5 and not phases.plateau
    assert phases.flatness < 0.2 <= phases.flatness_after  # flat only against phase 1
    assert "not under 0.2 of the knowledge phase's steepest descent" in phases.reason
    clear = detect_phases(STEPS, np.array([12.0, 8.0, 4.3, 4.1, 4.0, 4.0, 3.95, 2.5, 1.0, 0.5]), np.zeros(10), 4.0)
    assert clear.plateau and clear.flatness_after == pytest.approx(0.0008 / 0.0145, rel=0.03)
    # the steepest 3-evaluation window after the plateau: 3.95, 2.5, 1.0 over 700..900, -0.0145/step


def test_phases_a_curve_that_never_reaches_the_band_has_no_boundaries():
    phases = detect_phases(STEPS[:2], np.array([20.0, 19.0]), np.array([0.0, 0.0]), baseline=7.0)
    assert math.isnan(phases.phase1_end_step) and math.isnan(phases.plateau_end_step) and not phases.plateau
    assert "never came within 0.70 nats" in phases.reason


@pytest.mark.parametrize(
    ("loss_tail", "acc_tail", "why"),
    [
        ([4.1, 4.0, 2.0], [0.0, 0.01, 0.03], "the loss left the baseline band (below) after 2"),
        ([4.1, 4.0, 3.9], [0.0, 0.01, 0.06], "accuracy reached 5% after 2"),
        ([4.1, 4.0, 5.0], [0.0, 0.0, 0.0], "the loss left the baseline band (above) after 2"),
    ],
)
def test_phases_a_too_short_plateau_is_rejected(loss_tail, acc_tail, why):
    phases = detect_phases(STEPS[:5], np.array([12.0, 8.0, *loss_tail]), np.array([0.0, 0.0, *acc_tail]), 4.0)
    assert phases.phase1_end_step == 300 and math.isnan(phases.plateau_end_step) and phases.plateau_evals == 2
    assert phases.reason.startswith(f"no plateau: {why} evaluation(s)")


def test_phases_a_plateau_to_the_end_of_training_or_without_a_phase_1_to_compare():
    loss = np.array([12.0, 8.0, 4.1, 4.0, 4.0, 4.05])
    to_the_end = detect_phases(STEPS[:6], loss, np.zeros(6), baseline=4.0)
    assert to_the_end.plateau and to_the_end.phase1_end_step == 300 and math.isnan(to_the_end.plateau_end_step)
    assert "to the end of training" in to_the_end.reason
    at_once = detect_phases(STEPS[:4], loss[2:], np.zeros(4), baseline=4.0)
    assert not at_once.plateau and at_once.phase1_end_step == 100 and "descent rate is unknown" in at_once.reason


def test_power_law_fit_recovers_an_exact_law_and_bootstraps_within_groups():
    from learnlab.metrics import power_law_fit

    xs = [100, 200, 400, 800]
    exact = power_law_fit({x: np.full(3, 0.43 * x**0.81) for x in xs}, n_boot=50)
    assert exact.prefactor == pytest.approx(0.43) and exact.exponent == pytest.approx(0.81) and exact.r2 == 1.0
    assert np.allclose(exact.exponent_boot, 0.81)  # no spread within groups, no spread in the bootstrap
    noisy = power_law_fit({x: 2.0 * x * np.array([0.9, 1.0, 1.1]) for x in xs} | {50: np.array([np.nan])})
    lo, hi = np.percentile(noisy.exponent_boot, [2.5, 97.5])
    assert noisy.exponent == pytest.approx(1.0) and lo < 1.0 < hi  # the all-NaN group is dropped
    assert math.isnan(power_law_fit({1: np.array([1.0])}).exponent)


def test_power_law_fit_keeps_a_group_with_a_zero_among_its_seeds():
    from learnlab.metrics import power_law_fit

    groups = {100: np.array([0.0, 40.0, 50.0]), 200: np.array([60.0, 60.0, 60.0]), 400: np.array([120.0] * 3)}
    law = power_law_fit(groups, n_boot=200)
    log_x, log_y = np.log([100, 200, 400]), np.log([30.0, 60.0, 120.0])
    assert law.exponent == pytest.approx(np.polyfit(log_x, log_y, 1)[0])  # N=100's mean (30) is in the fit
    assert 0 < law.exponent_boot.size < 200  # the resamples of N=100 that are all 0 have no logarithm
    assert np.isfinite(law.exponent_boot).all()


def test_power_law_interval_widens_with_lack_of_fit_that_a_seed_bootstrap_cannot_see():
    from learnlab.metrics import power_law_fit

    xs = [100, 200, 400, 800, 1600]
    noise = np.array([0.95, 1.0, 1.05])  # the same seed spread at every x
    wiggle = {x: 1 + 0.02 * (-1) ** i for i, x in enumerate(xs)}  # a mean's seed noise, ±2%
    clean = power_law_fit({x: x**0.8 * wiggle[x] * noise for x in xs}, n_boot=200)
    kinked = power_law_fit({x: (x if x <= 400 else 400 * (x / 400) ** 0.1) * noise for x in xs}, n_boot=200)
    width = {name: law.exponent_ci[1] - law.exponent_ci[0] for name, law in (("clean", clean), ("kinked", kinked))}
    assert clean.exponent_ci[0] <= 0.8 <= clean.exponent_ci[1] and clean.groups == 5
    assert width["kinked"] > 10 * width["clean"] and width["kinked"] > 0.5
    seed_only = np.ptp(np.percentile(kinked.exponent_boot, [2.5, 97.5]))
    assert seed_only < width["kinked"] / 10  # resampling seeds within each x cannot see the bend


def test_power_law_slope_interval_is_the_textbook_one_and_needs_three_groups():
    from scipy import stats

    from learnlab.metrics import power_law_fit

    xs, ys = np.array([1.0, 2.0, 4.0, 8.0]), np.array([1.0, 2.5, 3.5, 9.0])
    law = power_law_fit({x: np.array([y]) for x, y in zip(xs, ys, strict=True)}, n_boot=0)
    fit = stats.linregress(np.log(xs), np.log(ys))
    half = stats.t.ppf(0.975, 2) * fit.stderr
    assert law.exponent_se == pytest.approx(fit.stderr)
    assert law.exponent_ci == pytest.approx((fit.slope - half, fit.slope + half))
    two = power_law_fit({1: np.array([1.0]), 2: np.array([2.0])}, n_boot=0)
    assert two.exponent == pytest.approx(1.0) and all(math.isnan(v) for v in two.exponent_ci) and two.groups == 2
