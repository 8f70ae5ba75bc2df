"""``python tests/apps/faulty_train.py RANK STEP train ...``: ``python -m vae train ...`` whose loss turns NaN on rank
RANK at optimizer step STEP (1-based), so the tests can show that a NaN on one rank ends every rank cleanly. The fault
lives here, in test code, as an objective wrapping the real one: the production loop has no hook for it."""
import sys

from vae import train
from vae.cli import main
from vae.objectives import Elbo

RANK, STEP = int(sys.argv[1]), int(sys.argv[2])


class Faulty(Elbo):
    def loss(self, net, batch, beta):
        out = super().loss(net, batch, beta)
        if self.trainer.dist.rank == RANK and self.trainer.global_step + 1 == STEP:
            out.loss = out.loss * float("nan")
        return out


train.for_config = lambda cfg, model: Faulty(cfg)   # vae_plan builds a run's objective through this name
sys.exit(main(sys.argv[3:]))
