"""A router like app.py with the Use cases and Doctor pages, so the browser tests of those pages
do not depend on app.py's navigation list (which registers them too)."""
from pathlib import Path

import streamlit as st

from ui import shell

PAGES = Path(__file__).resolve().parents[3] / "app_pages"

st.set_page_config(page_title=shell.PAGE_TITLE, layout="wide")
shell.setup()
page = st.navigation([st.Page(str(PAGES / "use_cases.py"), title="Use cases", default=True),
                      st.Page(str(PAGES / "doctor.py"), title="Doctor")])
shell.sidebar()
page.run()
