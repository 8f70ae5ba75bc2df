"""VAE Lab's core: data, models, losses, training, evaluation, latent tools and run folders.

No Streamlit here: everything is reachable from ``python -m vae ...`` and from a notebook::

    import vae
    run = vae.load_run("assets/runs/mnist-2d")           # a trained run: config, model, metrics
    pics = run.sample(16)                                  # [16, 1, 28, 28] floats in [0, 1]
    data = vae.load_dataset("mnist5k")
    result = vae.train_run(vae.RunConfig(), data, "runs/mine")   # train, evaluate, write a run folder
    result.final.neg_elbo                                  # test -ELBO, nats per image
    with vae.track("runs/mine", my_model, test_images) as lab:   # a VAE in your own code, from your own loop
        ...; lab.log(epoch, loss=loss)
"""
__version__ = "0.2.0"

from .config import DataConfig, ModelConfig, RunConfig, TrainConfig  # noqa: E402
from .data import DataSplit, ImageData, load_dataset  # noqa: E402
from .launch import show  # noqa: E402
from .pipeline import RunResult, train_run  # noqa: E402
from .runs import Run, load_run, save_run  # noqa: E402
from .tracking import Tracker, TrackError, track  # noqa: E402

__all__ = ["DataConfig", "DataSplit", "ImageData", "ModelConfig", "Run", "RunConfig", "RunResult", "TrackError",
           "Tracker", "TrainConfig", "load_dataset", "load_run", "save_run", "show", "track", "train_run"]
