"""A study of your own, outside learnlab: does a wider tanh MLP fit XOR better in the same steps?

python -c "import examples.xor_width"   # or declare it as an entry point (see the README)
"""

import pandas as pd
import torch
from pydantic import Field

import learnlab
from learnlab.config import StudyConfig
from learnlab.reporting.stats import above, difference
from learnlab.studies.base import Claim, Study

X, Y = torch.tensor([[0.0, 0], [0, 1], [1, 0], [1, 1]]), torch.tensor([0.0, 1, 1, 0])


class Config(StudyConfig):
    seeds: int = Field(10, ge=1, description="seeds per arm")
    steps: int = Field(300, gt=0, description="Adam steps")


def measure(cfg: Config, ctx) -> pd.DataFrame:
    rows = []
    for width in (2, 16):
        for seed in cfg.seed_list:
            torch.manual_seed(seed)
            net = torch.nn.Sequential(torch.nn.Linear(2, width), torch.nn.Tanh(), torch.nn.Linear(width, 1))
            opt = torch.optim.Adam(net.parameters(), lr=0.05)
            for _ in range(cfg.steps):
                loss = torch.nn.functional.binary_cross_entropy_with_logits(net(X).squeeze(1), Y)
                opt.zero_grad(), loss.backward(), opt.step()
            rows.append((f"width-{width}", seed, cfg.steps, "test", "loss", loss.item()))
    return pd.DataFrame(rows, columns=["arm", "seed", "step", "split", "metric", "value"])


def wider_is_better(table):
    gap = difference(table, "loss", "width-2", "width-16")  # per seed: narrow minus wide
    lo, hi = gap["ci95"]
    return above(gap), f"loss of width 2 minus width 16: {gap['mean']:+.3f} (95% CI {lo:+.3f} to {hi:+.3f})"


STUDY = learnlab.register_study(
    Study(name="xor-width", title="a wider MLP fits XOR better in equal steps", source="my notebook",
          method="Two tanh MLPs (width 2, 16) per seed, Adam, full-batch XOR.", config=Config,
          presets={"smoke": {"seeds": 3, "steps": 50}, "laptop": {}}, arms=(), measure=measure,
          claims=(Claim("Width 16 ends with a lower loss than width 2", wider_is_better),))
)  # fmt: skip
