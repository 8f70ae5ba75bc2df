"""AppTest: the Inside page follows one input, with this input's numbers, eps resampled or frozen."""
from __future__ import annotations

import io
import json
import re

import numpy as np
from app_support import ROOT, make_env, open_app, pick_run, plotly_values, texts
from PIL import Image

from vae import inside, load_run
from vae.data import load_dataset


def _html(at) -> str:
    return " ".join(e.proto.body for e in at.get("html"))



def _draw(at) -> int:
    cap = next(c for c in texts(at.caption) if c.startswith("Following "))
    return int(re.search(r"ε draw #(\d+)", cap).group(1))


def test_the_numbers_shown_are_this_inputs_forward_pass(monkeypatch, tmp_path):
    make_env(monkeypatch, tmp_path)
    at = open_app("app_pages/inside.py")
    assert texts(at.title) == ["Inside a VAE"] and not at.exception
    at.number_input(key="inside.index").set_value(7).run()
    seed = _draw(at)
    run = load_run(ROOT / "assets" / "runs" / "mnist-2d")
    p = inside.forward_pass(run.model, load_dataset("mnist5k").test.x[7], seed=seed)
    body = _html(at)
    for testid in ("vae-inside-x", "vae-inside-mu", "vae-inside-sigma", "vae-inside-eps", "vae-inside-z",
                   "vae-inside-xhat", "vae-inside-recon", "vae-inside-kl"):
        assert f"data-testid='{testid}'" in body
    assert f"{p.recon:.2f}</span> nats" in body and f"{p.kl:.2f}</span> nats" in body
    for j in range(2):
        assert f"{p.z[j]:+.3f}" in body and f"{p.mu[j]:+.3f}" in body
    latex = " ".join(e.value for e in at.get("latex"))
    assert f"= {p.neg_elbo:.2f}" in latex and f"{p.kl:.2f}" in latex
    assert any("How unusual is this input?" in t for t in texts(at.markdown))
    caps = [c for img in at.get("image") for c in img.captions]
    assert any(c.startswith("Decodes of the first 50 draws") for c in caps)
    assert len(at.get("plotly_chart")) == 2        # KL bars and the map with the cloud


def test_resample_moves_z_and_not_mu_and_freeze_keeps_eps_across_inputs(monkeypatch, tmp_path):
    make_env(monkeypatch, tmp_path)
    at = open_app("app_pages/inside.py")
    first, body0 = _draw(at), _html(at)
    at.button(key="inside.resample").click().run()
    assert _draw(at) == first + 1
    body1 = _html(at)
    mu = lambda b: re.search(r"vae-inside-mu'.*?</table>", b).group(0)  # noqa: E731
    z = lambda b: re.search(r"vae-inside-z'.*?</table>", b).group(0)  # noqa: E731
    assert mu(body0) == mu(body1) and z(body0) != z(body1)
    # a new input draws a new eps, unless frozen
    at.number_input(key="inside.index").set_value(1).run()
    assert _draw(at) == first + 2
    at.toggle(key="inside.freeze").set_value(True).run()
    at.number_input(key="inside.index").set_value(2).run()
    assert _draw(at) == first + 2 and not at.exception


def test_an_uploaded_picture_is_followed_and_a_bad_file_is_one_line(monkeypatch, tmp_path):
    make_env(monkeypatch, tmp_path)
    at = open_app("app_pages/inside.py")
    at.get("button_group")[0].set_value("Your own image").run()
    pic = Image.new("L", (60, 60), 255)
    pic.paste(0, (25, 5, 35, 55))               # a dark stroke on white paper: a "1"
    buf = io.BytesIO()
    pic.save(buf, "PNG")
    at.file_uploader(key="inside.upload").set_value([("one.png", buf.getvalue(), "image/png")]).run()
    at.toggle(key="inside.invert").set_value(True).run()
    assert not at.exception and not at.error
    assert any(c.startswith("Following your picture one.png") for c in texts(at.caption))
    assert "data-testid='vae-inside-xhat'" in _html(at)
    at.file_uploader(key="inside.upload").set_value([("bad.png", b"not a picture", "image/png")]).run()
    assert len(at.error) == 1 and "accepted: PNG, JPEG, BMP, GIF or WebP" in at.error[0].value
    assert "\n" not in at.error[0].value


def test_a_16d_run_shows_its_posterior_along_the_principal_components(monkeypatch, tmp_path):
    make_env(monkeypatch, tmp_path)
    at = open_app("app_pages/inside.py")
    pick_run(at, "mnist-16d")
    assert not at.exception
    assert any("first two principal components" in c for c in texts(at.caption))
    assert "+8 more" in _html(at)                  # 8 of 16 dimensions in the diagram
    pick_run(at, "mnist-cvae-2d")                   # a conditional run takes the test image's label
    assert not at.exception and "vae-inside-z" in _html(at)


def test_ellipses_on_the_map_are_the_posteriors(monkeypatch, tmp_path):
    make_env(monkeypatch, tmp_path)
    at = open_app("app_pages/inside.py")
    traces = [t for c in at.get("plotly_chart") for t in json.loads(c.proto.spec)["data"]]
    one = next(t for t in traces if t.get("name", "").startswith("posterior 1σ"))
    pts = np.stack([plotly_values(one["x"]), plotly_values(one["y"])], 1)
    seed = _draw(at)
    run = load_run(ROOT / "assets" / "runs" / "mnist-2d")
    p = inside.forward_pass(run.model, load_dataset("mnist5k").test.x[0], seed=seed)
    r = np.sqrt((((pts - p.mu) / p.sigma) ** 2).sum(1))      # a 2-D latent is drawn as is: axis-aligned
    np.testing.assert_allclose(r, 1.0, rtol=1e-3)


def test_draw_mounts_the_pad_and_waits_for_a_drawing(monkeypatch, tmp_path):
    make_env(monkeypatch, tmp_path)
    at = open_app("app_pages/inside.py")
    at.get("button_group")[0].set_value("Draw one").run()
    assert not at.exception
    assert any(getattr(e, "key", None) == "inside.pad" for e in at.main), "the pad component"
    assert any(t.startswith("Draw with the mouse, a pen or a finger") for t in texts(at.caption))
    assert "data-testid='vae-inside'" not in _html(at), "nothing to follow before the first stroke"


def test_a_vampprior_run_shows_its_own_prior(monkeypatch, tmp_path):
    """A run trained with --prior vamp: Inside writes the KL against the VampPrior (estimated, not split by
    dimension), the sidebar names the prior, Generate samples it and Loss forces steps a N(0, I) model instead."""
    from vae.config import DataConfig, ModelConfig, RunConfig, TrainConfig
    from vae.evaluate import evaluate
    from vae.runs import save_run
    from vae.train import fit
    runs_dir = make_env(monkeypatch, tmp_path)
    data = load_dataset("mnist5k", max_train=300, max_test=50)
    cfg = RunConfig(model=ModelConfig(latent_dim=2, hidden=(64,), prior="vamp", prior_components=20),
                    train=TrainConfig(epochs=1, batch_size=64, threads=1),
                    data=DataConfig(name="mnist5k", max_train=300, max_test=50))
    r = fit(cfg, data)
    save_run(runs_dir / "vamp2", r.model, cfg, {"status": r.status, "history": r.history,
                                                "final": evaluate(r.model, data.test)})
    at = pick_run(open_app("app_pages/inside.py"), "vamp2")
    assert "VampPrior" in " ".join(texts(at.sidebar.caption))
    assert "KL</b>(q(z|x) ‖ VampPrior, 20 components) ≈" in _html(at)
    assert any("learned pseudo-inputs" in t for t in texts(at.get("latex")))
    assert any("do not add up to the total" in c for c in texts(at.caption)) and not at.exception
    at.switch_page("app_pages/generate.py").run()
    assert not at.exception and at.get("image")
    at.switch_page("app_pages/loss_forces.py").run()
    assert at.get("button_group")[0].value == "Scratch (untrained)", "not the run itself by default"
    at.get("button_group")[0].set_value("The active run").run()
    assert any("The active run has a VampPrior" in i.value for i in at.info) and not at.exception
    assert any(c.startswith("Step 0 ·") for c in texts(at.caption))


def test_how_unusual_says_which_side_of_the_test_images_an_input_falls():
    """An input whose −ELBO beats 96% of the test images is not called typical (a blank one scores low too)."""
    from ui.inside_view import unusual_note
    run = load_run(ROOT / "assets" / "runs" / "mnist-2d")
    p = inside.forward_pass(run.model, load_dataset("mnist5k").test.x[7], seed=0)
    test_logvar = np.zeros((101, 2))

    def said(share_below: float) -> str:            # test images' −ELBO placed so that this share is below p's
        test_nll = p.neg_elbo + np.linspace(-100.0, 100.0, 101) + (0.5 - share_below) * 200.0
        return unusual_note(p, [0, 1], test_logvar, test_nll)

    low, mid, high, far = said(0.04), said(0.5), said(0.95), said(1.0)
    assert "above 4% of the test images" in low and "easier for this model than most" in low
    assert "a typical input for this model" not in low
    assert "a typical input for this model" in mid and "unusual for this model" in high
    assert "nothing the model learned" in far
