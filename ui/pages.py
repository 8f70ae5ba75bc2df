"""The app's pages, once: the router (app.py) builds its navigation from this table and the Home page
lists it, so a new page appears in both by adding one row here."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PageInfo:
    path: str      # the page file, relative to app.py
    title: str
    icon: str
    blurb: str     # one sentence for the Home page


PAGES = (
    PageInfo("app_pages/home.py", "Home", ":material/home:",
             "What a VAE is, what each page does, and the active run at a glance."),
    PageInfo("app_pages/train.py", "Train", ":material/model_training:",
             "Pick data and a model, press Start, and watch the losses, the KL per dimension and the "
             "reconstructions improve live. The finished run becomes the active run."),
    PageInfo("app_pages/inside.py", "Inside a VAE", ":material/account_tree:",
             "One input through the whole model: μ, σ, ε, z and the decoded image with this input's numbers, "
             "the two loss terms, and a cloud of posterior draws on the map. Try your own picture."),
    PageInfo("app_pages/loss_forces.py", "Loss forces", ":material/open_with:",
             "Train a 2-D VAE one step at a time and see where the reconstruction and KL terms push each code, as "
             "arrows on the map; raise β and watch the codes collapse onto the prior."),
    PageInfo("app_pages/reconstructions.py", "Reconstructions", ":material/compare:",
             "Test images beside their reconstructions, the worst first, and what the encoder is unsure of."),
    PageInfo("app_pages/latent_map.py", "Latent map", ":material/scatter_plot:",
             "Every test image as a point; click one, see the decoded manifold, interpolate between two points."),
    PageInfo("app_pages/sliders.py", "Sliders", ":material/tune:",
             "One slider per latent dimension; the image is decoded in your browser as you drag."),
    PageInfo("app_pages/dimensions.py", "Dimensions", ":material/view_list:",
             "What each latent dimension carries: its traversal, its KL, the factor (or class) it tells most about, "
             "a heat map of mutual information, and a second run beside it."),
    PageInfo("app_pages/generate.py", "Generate", ":material/auto_awesome:",
             "New images from random points of the prior, as a grid to download."),
    PageInfo("app_pages/compare.py", "Compare", ":material/compare_arrows:",
             "Two to four runs side by side: curves on shared axes, final figures, the same digits reconstructed "
             "by each, their maps; and one run's training replayed epoch by epoch."),
    PageInfo("app_pages/use_cases.py", "Use cases", ":material/lightbulb:",
             "Semi-supervised learning, latent probes, compression, rate-distortion, augmentation and anomaly "
             "scores, each measured on held-out data with the command that reproduces it."),
    PageInfo("app_pages/doctor.py", "Doctor", ":material/stethoscope:",
             "Reads the active run's history and flags posterior collapse, a KL blow-up, NaNs, blur or a "
             "learning rate that is too high, with the change to try."),
)
