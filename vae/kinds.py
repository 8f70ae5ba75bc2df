"""The kinds of run (``config.kind``) and how each rebuilds its model from its config and folder."""
from __future__ import annotations

import importlib

#: How to rebuild a run's model from its config, keyed by ``config.kind``: ``"module:function"``, imported
#: when a run of that kind is loaded, called as ``builder(config, folder)``. Every builder returns a model of the
#: contract ``vae.models.LatentModel``: a ``VAE`` (or a subclass, such as ``vae.usecases.semisup.SemiSupervisedVAE``)
#: or, for a run logged from its user's own code, ``vae.foreign.ForeignVAE``. Named, not imported: the use cases
#: are built on the core, so the core must not import them.
BUILDERS = {"vae": "vae.models:build_model_for", "semisup": "vae.usecases.semisup:build_semisup",
            "tracked": "vae.foreign:build_foreign"}


def builder(kind: str):
    module, _, name = BUILDERS[kind].partition(":")
    return getattr(importlib.import_module(module), name)
