"""A light Streamlit client: drives a running server over its websocket the way a browser tab does.

Written against Streamlit 1.67. One ``Session`` is one browser tab: one websocket to
``/_stcore/stream``, protobuf ``BackMsg`` out, ``ForwardMsg`` in, and the HTTP GETs of the
pictures it shows. It keeps the element tree and the widget states the way the frontend does,
so a rerun carries the same ``WidgetStates`` a browser would send. Nothing is rendered and no
JavaScript runs, so one process can hold dozens of sessions: a load benchmark without Chromium.

    import asyncio
    from labkit import stclient

    async def main():
        async with stclient.Session("http://127.0.0.1:8501", page="generate") as s:
            r = await s.click("New samples")            # a button, by label or user key
            r = await s.set_value("Temperature", 0.5)   # slider/number_input/selectbox/...
            r = await s.set_component_state("sliders.panel", "value", {...})  # components v2
            r = await s.select_points("map.chart", [point])                   # plotly on_select
            r = await s.switch_page("sliders")          # like a sidebar link (st.navigation)
            print(r.seconds, r.status, r.exceptions, s.images())

    asyncio.run(main())

Modules: ``protocol`` (run results, the WidgetState each widget kind sends), ``tree`` (the page
as the frontend holds it), ``session`` (websocket, reruns, media), ``vaelab`` (VAE Lab's pages
and the interactions the load benchmark and its test drive).
"""
from .protocol import RunResult, plotly_point, plotly_traces, state_value, user_key
from .session import Session

__all__ = ["RunResult", "Session", "plotly_point", "plotly_traces", "state_value", "user_key"]
