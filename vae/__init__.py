"""VAE Lab's core: data, models, losses, training, evaluation, latent tools and run folders.

No Streamlit here: everything is reachable from ``python -m vae ...`` and from a notebook::

    from vae import data, train, runs
    split = data.load_dataset("mnist5k")
    result = train.fit(RunConfig(), split)
"""
__version__ = "0.1.0"
