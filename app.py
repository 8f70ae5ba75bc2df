"""VAE Lab: the router. Page config, the shared sidebar, and st.navigation over app_pages/.

    streamlit run app.py          (or ./run.sh app)

The page files live in app_pages/, not pages/: Streamlit (1.67) treats a pages/ folder beside
the entry script as an old-style multipage app until the first st.navigation call, so on a
fresh server a first visit to e.g. /sliders would run that page alone, without this router
and its sidebar, for every session after it.
"""
import streamlit as st

from ui import shell

st.set_page_config(page_title=shell.PAGE_TITLE, page_icon=":material/blur_on:", layout="wide")
shell.setup()
pages = [
    st.Page("app_pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("app_pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("app_pages/reconstructions.py", title="Reconstructions", icon=":material/compare:"),
    st.Page("app_pages/latent_map.py", title="Latent map", icon=":material/scatter_plot:"),
    st.Page("app_pages/sliders.py", title="Sliders", icon=":material/tune:"),
    st.Page("app_pages/generate.py", title="Generate", icon=":material/auto_awesome:"),
    st.Page("app_pages/use_cases.py", title="Use cases", icon=":material/lightbulb:"),
    st.Page("app_pages/doctor.py", title="Doctor", icon=":material/stethoscope:"),
]
page = st.navigation(pages)
shell.sidebar()
page.run()
