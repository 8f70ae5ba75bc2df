"""Thin layers over ``vae.track`` for the training frameworks people already use (each an optional extra)."""
