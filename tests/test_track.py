"""vae.track: VAEs written in their users' own code, logged from their own loops, stored as ONNX programs + safetensors
weights and opened by VAE Lab without their code; every bad input is one line at the first call."""
import copy
import json

import numpy as np
import pytest
import torch
from foreign_models import ConvRGBVAE, ExamplesVAE, GaussianVAE, train_and_log
from helpers import blobs

import vae
from vae import jobs
from vae.data import load_dataset
from vae.foreign import ENCODE, ForeignVAE, ProgramError, read_program
from vae.tracking import TEST_IMAGES, TrackError, read_test_images


@pytest.fixture(scope="module")
def digits():
    d = load_dataset("mnist5k", max_train=512, max_test=200)
    return d.train.x.float() / 255, d.test


def _check_opened(path, model, encode, decode, images, atol=1e-4):
    """The run opens as a ForeignVAE whose programs compute what the user's model computes."""
    run = vae.load_run(path)
    assert isinstance(run.model, ForeignVAE) and run.config.kind == "tracked" and run.metrics.status == "completed"
    was = model.training
    model.eval()
    with torch.no_grad():
        x = images.float() / 255
        mu, logvar = encode(x)
        want = decode(mu.flatten(1)).reshape(len(x), *x.shape[1:])
    model.train(was)
    got = run.encode(images)
    np.testing.assert_allclose(got["mu"], mu.flatten(1).numpy(), atol=atol)
    np.testing.assert_allclose(got["logvar"], logvar.flatten(1).numpy(), atol=atol)
    if run.config.tracked.output == "logits":
        want = torch.sigmoid(want)
    np.testing.assert_allclose(run.decode(got["mu"]), want.clamp(1e-6, 1 - 1e-6).numpy(), atol=atol)
    return run


def test_the_pytorch_examples_vae(tmp_path, digits):
    x, test = digits
    model = ExamplesVAE()
    with vae.track(tmp_path / "ex", model, test.x, labels=test.y, output="probs") as lab:
        train_and_log(lab, model, x.view(-1, 784))
    assert model.training, "the user's mode is left as it was"
    run = _check_opened(tmp_path / "ex", model, lambda t: model.encode(t.view(len(t), -1)), model.decode, test.x[:16])
    epochs = run.metrics.history.epochs
    assert [e.epoch for e in epochs] == [1, 2] and {"loss", "recon", "kl"} <= set(epochs[-1].train)
    assert 50 < epochs[-1].test["neg_elbo"] < epochs[0].test["neg_elbo"] < 600, "the test -ELBO VAE Lab measured"
    assert run.metrics.kl_per_dim(20) is not None and run.config.model.latent_dim == 20
    assert jobs.read_status(tmp_path / "ex")["state"] == "done"
    snap = jobs.read_snapshot(tmp_path / "ex" / "snapshots" / "epoch-0002.npz")
    assert snap.mu.shape == (200, 20) and snap.recons.shape == (8, 1, 28, 28) and snap.y.shape == (200,)
    kept = read_test_images(tmp_path / "ex", 1, 28)              # the images the pages show for this run
    assert torch.equal(kept.x, test.x) and torch.equal(kept.y, test.y.long())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_a_model_on_cuda_is_logged_and_opens_on_the_cpu(tmp_path, digits):
    """The user's model and batches on the GPU: track moves its test images to the model's device and the codes
    back; the stored programs run on the CPU and compute what the model computes."""
    x, test = digits
    model = ExamplesVAE().cuda()
    with vae.track(tmp_path / "gpu", model, test.x, labels=test.y, output="probs") as lab:
        train_and_log(lab, model, x.view(-1, 784).cuda())
    assert next(model.parameters()).is_cuda and model.training, "the user's device and mode are left as they were"
    cpu = copy.deepcopy(model).cpu()
    run = _check_opened(tmp_path / "gpu", cpu, lambda t: cpu.encode(t.view(len(t), -1)), cpu.decode, test.x[:16],
                        atol=1e-3)
    assert [e.epoch for e in run.metrics.history.epochs] == [1, 2]


def test_stored_test_images_are_checked_from_the_header_before_they_are_read(tmp_path):
    from safetensors.torch import save_file
    save_file({"x": torch.zeros(3, 1, 8, 8, dtype=torch.uint8)}, str(tmp_path / TEST_IMAGES))
    assert read_test_images(tmp_path, 1, 8).x.shape == (3, 1, 8, 8)
    with pytest.raises(ValueError, match=r"must hold x: uint8 \[N, 3, 8, 8\]"):
        read_test_images(tmp_path, 3, 8)                             # another model's shape
    # a header declaring 10^9 images is refused without reading (or allocating) them
    header = json.dumps({"x": {"dtype": "U8", "shape": [10**9, 1, 8, 8], "data_offsets": [0, 64 * 10**9]}}).encode()
    (tmp_path / TEST_IMAGES).write_bytes(len(header).to_bytes(8, "little") + header)
    with pytest.raises(ValueError, match="N = 1..10,000"):
        read_test_images(tmp_path, 1, 8)
    (tmp_path / TEST_IMAGES).write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="not a valid safetensors file"):
        read_test_images(tmp_path, 1, 8)


def test_a_conv_rgb_vae_adapted_with_encode_and_decode(tmp_path):
    data = blobs(96, side=16, channels=3, classes=2)
    model = ConvRGBVAE()

    def enc(t):
        return tuple(model.encoder(t).flatten(1).chunk(2, dim=1))
    with vae.track(tmp_path / "conv", model, data.x[:64], output="logits", encode=enc, decode=model.generate) as lab:
        train_and_log(lab, model, data.x.float() / 255, epochs=2, batch=32)
        model.train()
        norm = nn_frozen(model)
        lab.log(3, loss=0.0)
        assert model.training and not norm.training, "each module keeps its own mode, a frozen norm too"
    run = _check_opened(tmp_path / "conv", model, enc, model.generate, data.x[:8], atol=2e-4)
    assert run.config.model.channels == 3 and run.config.model.image_size == 16


def nn_frozen(model):
    """The user freezes one GroupNorm in eval mode (as one does with a pretrained batch norm)."""
    norm = model.enc[1]
    norm.eval()
    return norm


def test_a_gaussian_vae_returning_means(tmp_path, digits):
    x, test = digits
    model = GaussianVAE()
    with vae.track(tmp_path / "g", model, test.x, output="mean", sigma=0.2) as lab:
        train_and_log(lab, model, x)
    run = _check_opened(tmp_path / "g", model, model.encode, model.decode, test.x[:16])
    assert run.config.model.likelihood == "gaussian" and run.config.model.gaussian_sigma == 0.2
    assert set(run.metrics.history.epochs[-1].train) == {"loss", "mse", "kl"}


def test_a_failing_loop_is_recorded_and_the_error_goes_on(tmp_path, digits):
    x, test = digits
    model = ExamplesVAE()
    with pytest.raises(RuntimeError, match="boom"):
        with vae.track(tmp_path / "f", model, test.x, output="probs") as lab:
            lab.log(1, loss=float("nan"), kl=3.0)
            raise RuntimeError("boom")
    run = vae.load_run(tmp_path / "f")
    assert run.metrics.status == "failed" and "boom" in run.metrics.message
    assert run.metrics.history.epochs[0].nonfinite == ["loss"] and run.metrics.history.epochs[0].train == {"kl": 3.0}


class NoEncode(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 784)

    def decode(self, z):
        return torch.sigmoid(self.lin(z))


@pytest.mark.parametrize("case, needle", [
    ("no encode", "has no encode(); pass encode="),
    ("wrong images", "test_images has shape [5, 2, 7, 7]"),
    ("nan codes", "non-finite codes"),
    ("wrong size", "decode(z) returned [2, 100]"),
    ("bad output", "output='pixels'; accepted: logits, probs, mean"),
    ("probs out of range", "needs finite values in [0, 1]"),
    ("encode not a pair", "must return (mu, logvar)"),
    ("labels", "labels has 3 entries for 200 test images"),
])
def test_bad_input_is_one_line_at_the_first_call_and_writes_nothing(tmp_path, digits, case, needle):
    _, test = digits
    m = ExamplesVAE()

    def enc(t):
        return m.encode(t.view(len(t), -1))
    kw = {"output": "probs", "encode": enc}
    images, model = test.x, m
    if case == "no encode":
        model, kw = NoEncode(), {"output": "probs"}
    elif case == "wrong images":
        images = torch.zeros(5, 2, 7, 7, dtype=torch.uint8)
    elif case == "nan codes":
        kw["encode"] = lambda t: (enc(t)[0] * float("nan"), enc(t)[1])
    elif case == "wrong size":
        kw["decode"] = lambda z: torch.zeros(len(z), 100)
    elif case == "bad output":
        kw["output"] = "pixels"
    elif case == "probs out of range":
        kw["decode"] = lambda z: m.fc4(torch.relu(m.fc3(z))) * 100
    elif case == "encode not a pair":
        kw["encode"] = lambda t: enc(t)[0]
    elif case == "labels":
        kw["labels"] = [1, 2, 3]
    with pytest.raises(TrackError) as e:
        vae.track(tmp_path / "r", model, images, **kw)
    assert needle in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "r").exists()


def test_a_stored_program_that_reaches_outside_is_refused(tmp_path, digits):
    """The loader never opens a path named by the program and runs only a VAE's standard operators."""
    import onnx
    from onnx import TensorProto, helper
    x, test = digits
    model = ExamplesVAE()
    with vae.track(tmp_path / "ok", model, test.x, output="probs") as lab:
        train_and_log(lab, model, x.view(-1, 784), epochs=1)
    run = tmp_path / "ok"
    good = onnx.load_model_from_string((run / ENCODE).read_bytes())
    evil = onnx.ModelProto()
    evil.CopyFrom(good)
    t = helper.make_tensor("stolen", TensorProto.FLOAT, [1], [0.0])
    t.data_location = TensorProto.EXTERNAL
    t.external_data.add(key="location", value="secret.txt")
    evil.graph.initializer.append(t)
    (run / ENCODE).write_bytes(evil.SerializeToString())
    with pytest.raises(ProgramError, match="points at external data"):
        read_program(run / ENCODE, {})
    evil.CopyFrom(good)
    evil.graph.node.append(helper.make_node("PyOp", ["x"], ["y"], domain="com.microsoft"))
    (run / ENCODE).write_bytes(evil.SerializeToString())
    with pytest.raises(ProgramError, match="operators outside what a VAE needs: PyOp"):
        read_program(run / ENCODE, {})
    with pytest.raises(vae.runs.RunError, match="PyOp"):
        vae.load_run(run)
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["kind"] == "tracked" and cfg["model"]["arch"] == "foreign"


def test_a_chain_decoder_runs_in_the_browser_and_a_conv_one_on_the_server(tmp_path, digits):
    """The stored decoder of the pytorch/examples VAE translates into the in-browser layer list and decodes there as
    torch does; the conv VAE's (GroupNorm, upsampling) says in one line why it cannot."""
    from vae.export import UnsupportedForBrowser, numpy_decode
    from vae.onnx_spec import foreign_decoder_spec
    x, test = digits
    model = ExamplesVAE()
    with vae.track(tmp_path / "ex", model, test.x, output="probs") as lab:
        train_and_log(lab, model, x.view(-1, 784), epochs=1)
    run = vae.load_run(tmp_path / "ex")
    spec = foreign_decoder_spec(run.model)
    assert [layer["type"] for layer in spec["layers"]] == ["linear", "relu", "linear", "unflatten", "sigmoid"]
    z = np.random.default_rng(0).normal(size=(50, 20)).astype(np.float32) * 2
    np.testing.assert_allclose(numpy_decode(spec, z).reshape(50, 1, 28, 28), run.decode(z), atol=1e-5)
    data = blobs(32, side=16, channels=3, classes=2)
    conv = ConvRGBVAE()
    with vae.track(tmp_path / "conv", conv, data.x, encode=lambda t: tuple(conv.encoder(t).flatten(1).chunk(2, 1)),
                   decode=conv.generate) as lab:
        lab.log(1)
    with pytest.raises(UnsupportedForBrowser, match="no browser layer for"):
        foreign_decoder_spec(vae.load_run(tmp_path / "conv").model)


def test_a_lightning_module_logged_by_the_callback(tmp_path, digits):
    """The Lightning callback: one record an epoch with the module's own logged metrics, validation included; no record
    from the sanity check; the run opens like any other."""
    L = pytest.importorskip("lightning")
    from torch.utils.data import DataLoader, TensorDataset

    from vae.integrations.lightning import VAELabCallback
    x, test = digits

    class Lit(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.vae = ExamplesVAE()

        def training_step(self, batch, _):
            loss, parts = self.vae.loss(batch[0].view(-1, 784))
            self.log_dict({"loss": loss, **parts}, on_epoch=True, on_step=False)
            return loss

        def validation_step(self, batch, _):
            self.log("val_loss", self.vae.loss(batch[0].view(-1, 784))[0], on_epoch=True)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    loader = DataLoader(TensorDataset(x), batch_size=64)
    cb = VAELabCallback(tmp_path / "lit", test.x, labels=test.y, model=lambda m: m.vae, output="probs")
    trainer = L.Trainer(max_epochs=2, callbacks=[cb], logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
                        num_sanity_val_steps=1, limit_val_batches=2)
    lit = Lit()
    trainer.fit(lit, loader, DataLoader(TensorDataset(x[:128]), batch_size=64))
    run = vae.load_run(tmp_path / "lit")
    epochs = run.metrics.history.epochs
    assert [e.epoch for e in epochs] == [1, 2] and {"loss", "recon", "kl", "val_loss"} <= set(epochs[-1].train)
    assert run.metrics.status == "completed" and isinstance(run.model, ForeignVAE)
