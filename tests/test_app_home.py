"""AppTest: the home page opens on a demo run with no training."""
from pathlib import Path

from app_support import ROOT, make_env, open_app, pick_run, texts

from ui.pages import PAGES


def test_home_explains_and_shows_the_active_demo_run(monkeypatch, tmp_path):
    make_env(monkeypatch, tmp_path)
    at = open_app()
    assert not at.exception
    assert texts(at.title) == ["VAE Lab"]
    intro = at.markdown[0].value
    assert "variational autoencoder" in intro and intro.count(". ") + 1 == 3, "three sentences"
    # every page file is in the one page table, and every page but Home is linked from Home
    assert sorted(Path(p.path).name for p in PAGES) == sorted(f.name for f in (ROOT / "app_pages").glob("*.py"))
    links = [p.proto.label for p in at.get("page_link")]
    assert links == [p.title for p in PAGES[1:]] and "Doctor" in links and "Use cases" in links
    # the run picker lists the demo runs, the 2-D demo is active, its metrics are shown
    picker = at.sidebar.selectbox(key="app.run")
    assert picker.value.endswith("mnist-2d")
    assert any("mnist-16d" in o for o in picker.options) and any("mnist-cvae-2d" in o for o in picker.options)
    assert [m.label for m in at.metric] == ["−ELBO", "KL", "Dims used"]
    assert len(at.get("image")) == 1
    # switching runs changes what home shows
    pick_run(at, "mnist-16d")
    assert "16-D latent" in " ".join(texts(at.markdown))
    assert at.metric[2].value == "16/16"
