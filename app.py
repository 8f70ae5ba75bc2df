"""VAE Lab: the router. Page config, the shared sidebar, and st.navigation over app_pages/.

    streamlit run app.py          (or ./run.sh app)

The page files live in app_pages/, not pages/: Streamlit (1.67) treats a pages/ folder beside
the entry script as an old-style multipage app until the first st.navigation call, so on a
fresh server a first visit to e.g. /sliders would run that page alone, without this router
and its sidebar, for every session after it.
"""
import streamlit as st

from ui import settings  # noqa: I001  (first of ui: before any module imports torch)

settings.pin_native_threads()
from ui import links, shell  # noqa: E402
from ui.pages import PAGES  # noqa: E402

st.set_page_config(page_title=shell.PAGE_TITLE, page_icon=shell.icon(), layout="wide")
shell.setup()
pages = [st.Page(p.path, title=p.title, icon=p.icon, default=i == 0) for i, p in enumerate(PAGES)]
page = st.navigation(pages)
links.begin(st.container(), page.url_path)
shell.sidebar()
page.run()
