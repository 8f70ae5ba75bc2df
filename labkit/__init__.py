"""What the tests and the benchmarks share, kept out of both: start the app as ``./run.sh app`` serves it and Debian's
Chromium (``appserver``), put the shipped nginx in front of it (``nginxfront``), drive a server over Streamlit's
websocket protocol (``stclient``), build the hostile files the data loader must refuse (``hostile_files``), and
write the pytorch/examples VAE as its users copy it (``examples_vae``).

Tests import it from the repository root (pytest's pythonpath); a benchmark run as ``python bench/NAME.py`` gets the
root on its path from ``bench/_root.py``.
"""
