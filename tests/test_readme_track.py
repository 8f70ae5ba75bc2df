"""The README's "Debug your own VAE" example runs as written: its first code block, executed with the names it leaves
to the reader (a VAE class, a train loader, test images and labels, a number of epochs) bound to the pytorch/examples
VAE and 256 digits, writes a run folder that loads as a tracked run with what the loop logged."""
import re
from pathlib import Path

import torch
from foreign_models import ExamplesVAE
from torch.utils.data import DataLoader, TensorDataset

import vae
from vae.data import load_dataset
from vae.foreign import ForeignVAE

README = Path(__file__).resolve().parents[1] / "README.md"


def example() -> str:
    section = README.read_text(encoding="utf-8").split("## Debug your own VAE", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_example_runs_as_written(tmp_path, monkeypatch):
    code = example()
    assert "vae.track(" in code and "lab.log(" in code and len(code.strip().splitlines()) <= 20
    digits = load_dataset("mnist5k", max_train=256, max_test=100)
    torch.manual_seed(0)
    names = {"VAE": lambda: ExamplesVAE(hidden=64), "epochs": 2, "test_images": digits.test.x,
             "test_labels": digits.test.y,
             "train_loader": DataLoader(TensorDataset(digits.train.x.float() / 255, digits.train.y), batch_size=64)}
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), names)
    run = vae.load_run(tmp_path / "runs" / "mine")
    assert isinstance(run.model, ForeignVAE) and run.config.tracked.source == "ExamplesVAE"
    epochs = run.metrics.history.epochs
    assert [e.epoch for e in epochs] == [1, 2] and set(epochs[-1].train) == {"loss", "recon", "kl"}
    assert epochs[-1].train["loss"] < epochs[0].train["loss"], "the loop trained the model"
    assert run.metrics.status == "completed" and run.decode(torch.zeros(1, 20)).shape == (1, 1, 28, 28)
