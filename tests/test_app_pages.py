"""AppTest: Reconstructions, Latent map, Sliders and Generate on the demo runs."""

from app_support import image_urls, make_env, open_app, pick_run, texts


def test_reconstructions_sorts_by_loss_and_shows_posterior_samples(monkeypatch, tmp_path):
    make_env(monkeypatch, tmp_path)
    at = open_app("app_pages/reconstructions.py")
    assert texts(at.title) == ["Reconstructions"]
    assert "Mean −ELBO over 500 test images" in " ".join(texts(at.markdown))
    pairs = at.get("image")[0]

    def losses(img):
        return [float(c.split("·")[1].split()[0]) for c in img.captions]

    worst = losses(pairs)
    assert len(worst) == 16 and worst == sorted(worst, reverse=True)
    at.get("button_group")[0].set_value("Best first").run()
    best = losses(at.get("image")[0])
    assert best == sorted(best) and best[0] < worst[-1]
    # posterior samples of one input: the count follows the slider
    at.slider(key="recon.samples").set_value(12).run()
    assert not at.exception
    assert any(c.startswith("12 decodes of z ~ q(z | x#") for img in at.get("image") for c in img.captions)


def test_latent_map_interpolates_with_the_requested_number_of_frames(monkeypatch, tmp_path):
    make_env(monkeypatch, tmp_path)
    at = open_app("app_pages/latent_map.py")
    assert texts(at.title) == ["Latent map"]
    assert len(at.get("plotly_chart")) == 1
    assert any("Manifold: decoded over a 15×15 grid" in c for img in at.get("image") for c in img.captions)
    at.slider(key="map.steps").set_value(7)
    at.number_input(key="map.a").set_value(3)
    at.number_input(key="map.b").set_value(42)
    at.run()
    assert not at.exception
    caps = [c for img in at.get("image") for c in img.captions]
    assert "Linear: 7 frames from #3 (left) to #42 (right)" in caps
    assert "Spherical: 7 frames from #3 (left) to #42 (right)" in caps
    assert not at.number_input(key="map.a").disabled
    at.session_state["map.ends_from"] = "Clicked points"      # the ends from clicks: the test-image boxes do not apply
    at.run()
    assert at.number_input(key="map.a").disabled and at.number_input(key="map.b").disabled
    at.session_state["map.ends_from"] = "Test images"
    at.run()
    assert [b.proto.label for b in at.get("download_button")] == [
        "GIF (linear)", "GIF (spherical)", "Run (.zip)", "Latent means (.csv)", "Map (.png)",
        "Embedding Projector (.zip)", "Decoder for the browser (.json)"]
    assert any("python -m vae export" in t for t in texts(at.caption))
    # the 2-D demo also has the latent pad (a browser component: AppTest sees it, cannot run it)
    assert any(getattr(e, "key", None) == "map.pad" for e in at.main)


def test_latent_map_projects_a_16d_run(monkeypatch, tmp_path):
    make_env(monkeypatch, tmp_path)
    at = open_app("app_pages/latent_map.py")
    pick_run(at, "mnist-16d")
    assert at.get("button_group")[0].value == "PCA"
    caps = [c for img in at.get("image") for c in img.captions]
    assert any("other dimensions at 0" in c for c in caps)
    assert not any(getattr(e, "key", None) == "map.pad" for e in at.main), "no pad beyond 2-D"


def test_sliders_precise_values_change_the_decoded_image(monkeypatch, tmp_path):
    make_env(monkeypatch, tmp_path)
    at = open_app("app_pages/sliders.py")
    assert texts(at.title) == ["Sliders"]
    assert any(getattr(e, "key", None) == "sliders.panel" for e in at.main), "the in-browser slider panel"
    pick_run(at, "mnist-16d")
    precise = [n for n in at.number_input if n.label.startswith("z")]
    assert len(precise) == 16
    # the most informative dimension (largest KL) comes first
    assert precise[0].label == "z5"
    before = image_urls(at)
    precise[0].set_value(2.5).run()
    assert not at.exception
    after = image_urls(at)
    assert after != before, "moving z5 must change the decoded image's bytes"
    # send it to the sliders, start from a test image, save points for the interpolation
    at.button(key="sliders.send").click().run()
    assert "precise values you sent" in " ".join(texts(at.caption))
    at.button(key="sliders.to_a").click().run()
    at.button(key="sliders.save").click().run()
    assert not at.exception
    assert any("interpolation A" in c for img in at.get("image") for c in img.captions)
    at.get("button_group")[0].set_value("Test image").run()
    assert "latent mean of test image #0" in " ".join(texts(at.caption))


def test_generate_grid_follows_count_and_seed_and_offers_downloads(monkeypatch, tmp_path):
    make_env(monkeypatch, tmp_path)
    at = open_app("app_pages/generate.py")
    assert texts(at.title) == ["Generate"]
    at.slider(key="gen.n").set_value(12).run()
    assert at.get("image")[0].captions[0].startswith("12 samples · seed 0")
    first = image_urls(at)
    at.button(key="gen.redraw").click().run()
    assert at.get("image")[0].captions[0].startswith("12 samples · seed 1")
    assert image_urls(at) != first
    assert [b.proto.label for b in at.get("download_button")] == ["PNG", "npz"]
    # a conditional run draws one row per class
    pick_run(at, "mnist-cvae-2d")
    assert at.selectbox(key="gen.class").value == -1
    assert "per class, one row per class" in at.get("image")[0].captions[0]


def test_latent_map_layers_holes_and_class_directions(monkeypatch, tmp_path):
    import json
    make_env(monkeypatch, tmp_path)
    at = open_app("app_pages/latent_map.py")
    at.button_group(key="map.layers").set_value(["Posterior ellipses", "Density", "Holes"]).run()
    assert not at.exception
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    traces = spec["data"]
    assert traces[0]["type"] == "heatmap"                       # the density lies under everything
    outlines = [t for t in traces if str(t.get("name", "")).startswith("1σ posteriors")]
    assert len(outlines) == 10                                  # one outline trace per digit
    holes = [t for t in traces if str(t.get("name", "")).startswith("holes")]
    assert len(holes) == 1 and holes[0]["customdata"] == [-1, -2, -3, -4, -5, -6]
    # one legend entry per layer; the interpolation paths keep their colours with layers on
    shown = [t["name"] for t in traces if t.get("showlegend", True) and t.get("type") == "scatter"]
    for entry in ("1σ posterior of each image", "density of the encoded points", "holes of the prior (click one)"):
        assert entry in shown, shown
    assert {t["name"]: t["line"]["color"] for t in traces if str(t.get("name", "")).endswith(" path")} == \
        {"linear path": "#d81b60", "spherical path": "#8e24aa"}
    # a click on hole 2 (the chart's callback stores it; AppTest cannot click a plotly point)
    run_key = next(iter(at.session_state["map.clicks"]))
    at.session_state["map.hole"] = {run_key: 1}
    at.run()
    caps = [c for img in at.get("image") for c in img.captions]
    assert any(c.startswith("Left: decoded at the hole") for c in caps)
    assert any("likelier to sample here than the encoded test images" in t for t in texts(at.caption))
    # more like a ...: from test image A towards the chosen class, as far as the slider says
    at.selectbox(key="map.dir_target").set_value(7)
    at.slider(key="map.dir_strength").set_value(1.5)
    at.run()
    assert not at.exception
    caps = [c for img in at.get("image") for c in img.captions]
    assert any(c.startswith("Test image #0 decoded from strength 0 (left) to 1.5 (right), towards 7") for c in caps)
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert not any(t.get("name") == "towards 7" for t in spec["data"])   # the path is a layer, off until chosen
    at.button_group(key="map.layers").set_value(["Class direction"]).run()
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert [t["type"] for t in spec["data"] if t.get("name") == "towards 7"] == ["scatter"]
    assert not any(str(t.get("name", "")).startswith("holes") for t in spec["data"])
